"""Running processes inside one OS process: a thread per ``def``, a task per ``async def``.

Shared by the ``local`` domain (in the kernel's interpreter) and by the child
side of the ``process`` domain, so a process behaves the same on every rung.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import contextvars
import ctypes
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .._core._endpoint import Endpoint
from .._core._exit import ExitReason
from .._core._owner import EndpointOwner, current_owner
from .._core._process import ProcessContext, ProcessKilled, set_current

Report = Callable[[int, ExitReason], None]
KILL_COOPERATIVE = 0.25
"""Seconds a killed thread has to stop at its own next sipkernel call before a kill
is injected into it (a thread that makes none, a CPU loop, waits this long)."""
KILL_REPEAT_EVERY = 0.05
"""Seconds between injected kills of a thread that has not ended yet."""
KILL_REPEAT_FOR = 5.0
"""How long a kill is repeated before the thread is left to the grace period."""


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


_DONE_LOCK = threading.Lock()


class _Done:
    """A one-shot event, made cheaply: most processes are never waited for."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def set(self) -> None:
        self._set = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None) -> bool:
        if self._set:
            return True
        with _DONE_LOCK:  # two waiters must share one event
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._set:  # set() may have run before the event existed
            return True
        return event.wait(timeout)


class _Running:
    """One process as this OS process runs it."""

    __slots__ = (
        "ctx",
        "done",
        "injected",
        "interruptible",
        "kill_reason",
        "killed_at",
        "owner",
        "task",
        "thread",
    )

    def __init__(self, owner: EndpointOwner, ctx: ProcessContext) -> None:
        self.owner = owner
        self.ctx = ctx
        self.killed_at = 0.0
        self.interruptible = False
        self.injected = False
        self.kill_reason: ExitReason | None = None
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task[None] | None = None
        self.done = _Done()


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
        self._killed: set[int] = set()
        self._repeater: threading.Thread | None = None
        self._repeat_until = 0.0

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
        ctx = ProcessContext(pid, name, self._isolation, exit_signals)
        running = _Running(owner, ctx)
        with self._lock:
            self._running[pid] = running
        if is_async:
            loop = self._loop()
            coro = self._run_async(pid, running, fn, args)
            try:
                if asyncio_events._get_running_loop() is loop:  # spawned from the loop itself
                    self._create_task(loop, pid, running, coro)
                else:
                    loop.call_soon_threadsafe(self._create_task, loop, pid, running, coro)
            except BaseException:  # the loop is closed: the process never existed
                coro.close()
                with self._lock:
                    self._running.pop(pid, None)
                raise
        else:
            thread = threading.Thread(
                target=self._run_sync,
                args=(pid, running, fn, args),
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
        self, pid: int, running: _Running, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        set_current(running.ctx)
        current_owner.set(running.owner)
        reason = self._call(running, fn, args)
        self._finish(pid, running, reason)

    def _call(self, running: _Running, fn: Callable[..., Any], args: tuple[Any, ...]) -> ExitReason:
        """Run the function and say why it ended.

        A kill is injected only while the function runs, but it may be injected
        more than once (see ``_repeat_until_gone``) and land anywhere up to
        ``_seal``: each step here is safe to retry, so a late landing just
        repeats it.
        """
        outcome: list[ExitReason] = []
        started = False
        while True:
            try:
                if not started:
                    started = True
                    self._invoke(running, fn, args, outcome)
                self._seal(running)
                break
            except ProcessKilled:
                continue
        return running.kill_reason or (outcome[0] if outcome else ExitReason.killed())

    def _invoke(
        self,
        running: _Running,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        outcome: list[ExitReason],
    ) -> None:
        with self._lock:
            if running.kill_reason is not None:  # killed before it started
                return
            running.interruptible = True
        try:
            fn(*args)
            outcome.append(ExitReason.normal())
        except ProcessKilled:
            outcome.append(ExitReason.killed())
        except BaseException as exc:  # every exit gets a typed reason
            outcome.append(self._reason_for(exc))

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
        self, pid: int, running: _Running, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        set_current(running.ctx)
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
        # The process is over: what follows runs for the runtime, not for it.
        set_current(None)
        # Report before forgetting: whoever waits on ``done`` (stop_all) may close
        # the way reports travel as soon as it returns.
        running.owner.close_all(reason)
        self._report(pid, reason)
        with self._lock:
            self._running.pop(pid, None)
        running.done.set()

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
            running.ctx.kill_requested = True  # its next sipkernel call raises
            running.killed_at = time.monotonic()
            self._repeat_until_gone(pid)
        return True

    def _interrupt(self, running: _Running) -> None:
        with self._lock:
            thread = running.thread
            if running.interruptible and not running.injected and thread is not None:
                running.injected = True
                _raise_in_thread(thread.ident or 0)

    def _repeat_until_gone(self, pid: int) -> None:
        """Interrupt a killed thread that does not stop by itself, until it ends.

        A kill is first cooperative: the process's next sipkernel call raises
        ``ProcessKilled``. A thread that makes none (a CPU loop) gets the
        exception injected asynchronously after ``KILL_COOPERATIVE``; since an
        injected exception can be lost (one landing in a finaliser is reported
        and dropped; ``except BaseException`` can swallow it), it is injected
        again while the thread lives, for at most ``KILL_REPEAT_FOR`` seconds.
        One helper thread per runner does this, only while a kill is pending.
        """
        with self._lock:
            self._killed.add(pid)
            self._repeat_until = time.monotonic() + KILL_REPEAT_FOR
            if self._repeater is not None:
                return
            self._repeater = threading.Thread(
                target=self._repeat, name="sipkernel-kill-repeater", daemon=True
            )
        self._repeater.start()

    def _repeat(self) -> None:
        while True:
            with self._lock:
                self._killed = {p for p in self._killed if p in self._running}
                if not self._killed or time.monotonic() >= self._repeat_until:
                    self._killed.clear()
                    self._repeater = None
                    return
                pending = [self._running[p] for p in self._killed]
            if pending[0].done.wait(KILL_REPEAT_EVERY):
                continue
            now = time.monotonic()
            for running in pending:
                if now - running.killed_at < KILL_COOPERATIVE:
                    continue  # still its turn to stop by itself
                with self._lock:
                    running.injected = False
                self._interrupt(running)

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
