"""Running processes inside one OS process: a thread per ``def``, a task per ``async def``.

Shared by the ``local`` domain (in the kernel's interpreter) and by the child
side of the ``process`` domain, so a process behaves the same on every rung.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .._core._endpoint import Endpoint
from .._core._exit import ExitReason
from .._core._owner import EndpointOwner, current_owner
from .._core._process import ProcessContext, ProcessKilled, set_current

Report = Callable[[int, ExitReason], None]


class LoopThread:
    """An asyncio event loop running in a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def close(self) -> None:
        """Cancel what is left, stop the loop and join its thread."""
        if self.loop.is_closed():
            return

        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_cancel_rest(), self.loop).result()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


class _Running:
    """One process as this OS process runs it."""

    __slots__ = ("done", "injected", "interruptible", "kill_reason", "owner", "task", "thread")

    def __init__(self, owner: EndpointOwner) -> None:
        self.owner = owner
        self.interruptible = False
        self.injected = False
        self.kill_reason: ExitReason | None = None
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task[None] | None = None
        self.done = threading.Event()


class ProcessRunner:
    """Starts, kills and reports the processes of one domain inside this OS process."""

    def __init__(
        self,
        isolation: str,
        report: Report,
        loop: Callable[[], asyncio.AbstractEventLoop],
        *,
        memory_limited: bool = False,
    ) -> None:
        self._isolation = isolation
        self._memory_limited = memory_limited
        self._report = report
        self._loop = loop
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._running)

    def start(
        self,
        pid: int,
        name: str,
        fn: Callable[..., Any],
        *,
        args: tuple[Any, ...],
        carried: list[Endpoint],
        is_async: bool,
        exit_signals: Endpoint | None = None,
    ) -> None:
        """Run ``fn(*args)`` as process ``pid``; ``carried`` are its endpoints."""
        owner = EndpointOwner(f"{name}<{pid}>")
        for endpoint in [*carried, *([exit_signals] if exit_signals else [])]:
            endpoint.live_core().set_owner(owner)
        running = _Running(owner)
        ctx = ProcessContext(pid, name, self._isolation, exit_signals)
        with self._lock:
            self._running[pid] = running
        if is_async:
            loop = self._loop()
            coro = self._run_async(pid, running, ctx, fn, args)
            loop.call_soon_threadsafe(self._create_task, loop, pid, running, coro)
        else:
            thread = threading.Thread(
                target=self._run_sync,
                args=(pid, running, ctx, fn, args),
                name=f"sipkernel-{name}-{pid}",
                daemon=True,
            )
            running.thread = thread
            thread.start()

    def _create_task(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        running: _Running,
        coro: Coroutine[Any, Any, None],
    ) -> None:
        if running.kill_reason is not None:  # killed before it could take a step
            coro.close()
            self._finish(pid, running, running.kill_reason)
            return
        running.task = loop.create_task(coro, context=contextvars.Context())

    def _run_sync(
        self,
        pid: int,
        running: _Running,
        ctx: ProcessContext,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        set_current(ctx)
        current_owner.set(running.owner)
        reason = self._call(running, fn, args)
        self._finish(pid, running, reason)

    def _call(self, running: _Running, fn: Callable[..., Any], args: tuple[Any, ...]) -> ExitReason:
        """Run the function; a kill is injected (at most once) only while it runs."""
        reason: ExitReason
        try:
            try:
                with self._lock:
                    if running.kill_reason is not None:  # killed before it started
                        return running.kill_reason
                    running.interruptible = True
                fn(*args)
                reason = running.kill_reason or ExitReason.normal()
            except ProcessKilled:
                reason = running.kill_reason or ExitReason.killed()
            except BaseException as exc:  # every exit gets a typed reason
                reason = running.kill_reason or self._reason_for(exc)
        except ProcessKilled:  # the one injected kill landed inside a handler above
            reason = running.kill_reason or ExitReason.killed()
        self._seal(running)
        return reason

    def _seal(self, running: _Running) -> None:
        """No kill may interrupt this thread from here on (drop one still pending)."""
        while True:
            try:
                with self._lock:
                    running.interruptible = False
                _clear_pending_kill(threading.get_ident())
                return
            except ProcessKilled:
                continue

    async def _run_async(
        self,
        pid: int,
        running: _Running,
        ctx: ProcessContext,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        set_current(ctx)
        current_owner.set(running.owner)
        reason: ExitReason
        try:
            await fn(*args)
            reason = running.kill_reason or ExitReason.normal()
        except (asyncio.CancelledError, ProcessKilled):
            reason = running.kill_reason or ExitReason.killed("cancelled")
        except BaseException as exc:  # every exit gets a typed reason
            reason = running.kill_reason or self._reason_for(exc)
        self._finish(pid, running, reason)

    def _reason_for(self, exc: BaseException) -> ExitReason:
        if isinstance(exc, MemoryError) and self._memory_limited:
            return ExitReason.limit_exceeded("memory", "the domain's memory limit was reached")
        return ExitReason.from_exception(exc)

    def _finish(self, pid: int, running: _Running, reason: ExitReason) -> None:
        running.owner.close_all(reason)
        with self._lock:
            self._running.pop(pid, None)
        running.done.set()
        self._report(pid, reason)

    def kill(self, pid: int, reason: ExitReason) -> bool:
        """Stop process ``pid``: close its endpoints, then interrupt it. False if gone."""
        with self._lock:
            running = self._running.get(pid)
            if running is None:
                return False
            if running.kill_reason is None:
                running.kill_reason = reason
        running.owner.close_all(reason)
        if running.task is not None:
            task = running.task
            task.get_loop().call_soon_threadsafe(task.cancel)
        else:
            with self._lock:
                thread = running.thread
                if running.interruptible and not running.injected and thread is not None:
                    running.injected = True
                    _raise_in_thread(thread.ident or 0)
        return True

    def stop_all(self, reason: ExitReason, grace: float) -> list[int]:
        """Kill every process and wait up to ``grace`` s; returns pids still running."""
        with self._lock:
            pids = list(self._running)
        for pid in pids:
            self.kill(pid, reason)
        with self._lock:
            remaining = list(self._running.items())
        stuck = []
        for pid, running in remaining:
            if not running.done.wait(grace):
                stuck.append(pid)
        return stuck


def _raise_in_thread(ident: int) -> None:
    """Raise ``ProcessKilled`` in a thread at its next bytecode.

    A thread blocked in a sipkernel wait is woken by the closing of its
    endpoints first; one blocked inside other C code sees it only on return.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(ProcessKilled)
    )


def _clear_pending_kill(ident: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
