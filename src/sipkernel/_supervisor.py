"""Erlang/OTP supervisors, built only on the kernel's public interface.

A :class:`Supervisor` starts its children in order, watches their exits and
restarts them by its :class:`~sipkernel.Strategy` and each child's
:class:`~sipkernel.Restart` type, within a restart intensity (at most
``intensity`` restarts in ``period`` seconds). One restart more and it gives
up: it stops every child, emits ``SUPERVISOR_GAVE_UP`` and exits with a
``LIMIT`` reason, which its own parent (a nested supervisor's) handles like
any child exit.

How it runs: exit notifications arrive on whatever thread the kernel reports
them on; they only put a message on the supervisor's queue. One thread of
the supervisor's own takes the messages one at a time and makes every
decision, so strategies are applied in order and never overlap. Each
incarnation of a child is told apart from the previous ones, so the exit of a
child the supervisor stopped itself (as part of a strategy) is recognised as
stale and restarts nothing.

In the kernel a supervisor is present as a process of its own (its
``handle``, named after it): an idle task in the local domain that lives as
long as the supervisor. It gives the supervisor a pid, a place in
``Kernel.processes()`` and the registry, and an exit that can be monitored or
linked; the supervisor ends it with its own exit reason. Ending it from
outside (``Kernel.stop``, ``Kernel.kill``, the kernel's shutdown) stops the
supervisor and its children in order.

A kernel shutdown ends children with ``shutdown`` reasons; the supervisor sees
``Kernel.closing`` and exits with a ``shutdown`` reason, restarting nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from ._core._errors import DomainError, JoinTimeout, KernelClosedError, RegistryError, UsageError
from ._core._events import Event, EventBus, EventKind
from ._core._exit import ExitReason
from ._core._kernel import Kernel
from ._core._process import ProcessHandle
from ._supervisor_spec import (
    ChildRestart,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
    check_children,
    check_limits,
)

logger = logging.getLogger("sipkernel")

_T = TypeVar("_T")

PUBLISH_TIMEOUT = 5.0
"""Seconds to wait for the kernel to publish the exit of a process we stopped."""


async def supervisor_process() -> None:
    """The kernel-side presence of a supervisor: idles until the supervisor ends it."""
    await asyncio.get_running_loop().create_future()


# -- the supervisor's private bookkeeping ---------------------------------------------


@dataclass(eq=False)
class _Incarnation:
    """One start of a child: its process, and its supervisor when it is one."""

    handle: ProcessHandle
    supervisor: Supervisor | None = None


@dataclass(eq=False)
class _Child:
    spec: ChildSpec | SupervisorSpec
    current: _Incarnation | None = None

    @property
    def pid(self) -> int | None:
        return None if self.current is None else self.current.handle.pid


@dataclass(frozen=True)
class _Exited:
    """``child`` exited; ``incarnation`` None means its restart failed (try again)."""

    child: _Child
    incarnation: _Incarnation | None
    reason: ExitReason


@dataclass(frozen=True)
class _ProcessDown:
    """The supervisor's own process ended (someone else killed it)."""

    reason: ExitReason


@dataclass(frozen=True)
class _StopRequest:
    pass


@dataclass(frozen=True)
class _Call:
    """Run ``fn`` on the supervisor's thread, after every message queued before it."""

    fn: Callable[[], Any]
    future: Future[Any]


_Message = _Exited | _ProcessDown | _StopRequest | _Call


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    DONE = "done"


class _ExitLog:
    """Tells when the kernel has published a process's ``EXITED`` event.

    ``join`` returns as soon as an exit is recorded, a moment before the
    kernel publishes it; an ordered stop waits for the event too, so that the
    event log shows the order in which children were stopped.
    """

    def __init__(self, bus: EventBus) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, threading.Event] = {}
        self._unsubscribe = bus.subscribe(self._seen)

    def expect(self, pid: int) -> threading.Event:
        with self._lock:
            return self._waiting.setdefault(pid, threading.Event())

    def forget(self, pid: int) -> None:
        with self._lock:
            self._waiting.pop(pid, None)

    def _seen(self, event: Event) -> None:
        if event.kind is EventKind.EXITED and event.pid is not None:
            with self._lock:
                published = self._waiting.pop(event.pid, None)
            if published is not None:
                published.set()

    def close(self) -> None:
        self._unsubscribe()


# -- the supervisor ---------------------------------------------------------------------


class Supervisor:
    """Starts children, restarts them by a strategy, gives up past an intensity.

    ``Supervisor(kernel, children, strategy=..., intensity=1, period=5.0)``:
    at most ``intensity`` restarts within ``period`` seconds (OTP's
    defaults); ``clock`` (seconds, default ``time.monotonic``) is what the
    period is measured with, for tests to drive by hand. Use ``start()`` and
    ``stop()``, or the supervisor as a context manager.
    """

    def __init__(
        self,
        kernel: Kernel,
        children: Sequence[ChildSpec | SupervisorSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5.0,
        name: str = "supervisor",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_limits(strategy, intensity, period)
        check_children(children)
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self._kernel = kernel
        self._clock = clock
        self._children = [_Child(spec) for spec in children]
        self._queue: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._state = _State.NEW
        self._deciding: int | None = None  # ident of the thread making decisions
        self._window: deque[float] = deque()
        self._restarts: list[ChildRestart] = []
        self._handle: ProcessHandle | None = None
        self._exit_log: _ExitLog | None = None
        self._exit_reason: ExitReason | None = None
        self._finishing = False
        self._done = threading.Event()
        self._on_done: list[Callable[[ExitReason], None]] = []

    def __repr__(self) -> str:
        state = self._exit_reason.describe() if self._exit_reason else self._state.value
        return f"<Supervisor {self.name} {self.strategy.value}: {state}>"

    # -- public interface ---------------------------------------------------------------

    def start(self) -> Supervisor:
        """Start the children in order; if one fails to start, stop the others and raise."""
        with self._lock:
            if self._state is not _State.NEW:
                raise UsageError(f"supervisor {self.name} was already started")
            self._state = _State.RUNNING
            self._deciding = threading.get_ident()
        try:
            self._start_process()
            for child in self._children:
                self._start_child(child)
        except BaseException as exc:
            self._shutdown(ExitReason.from_exception(exc))
            raise
        thread = threading.Thread(target=self._run, name=f"sipkernel-{self.name}", daemon=True)
        with self._lock:
            self._deciding = None
        thread.start()
        return self

    def stop(self) -> ExitReason:
        """Ordered shutdown: children in reverse start order, each with its grace.

        Returns the supervisor's exit reason (``shutdown``, unless it had
        already exited for another reason). Idempotent.
        """
        with self._lock:
            never_started = self._state is _State.NEW
            if never_started:
                self._state = _State.RUNNING
            elif self._state is _State.RUNNING and self._deciding == threading.get_ident():
                raise UsageError(f"supervisor {self.name} cannot be stopped from its own thread")
        if never_started:
            self._finish(ExitReason.shutdown("stopped before it started"))
        else:
            self._queue.put(_StopRequest())
        return self.wait()

    def wait(self, timeout: float | None = None) -> ExitReason:
        """Block until the supervisor has exited; its reason. ``JoinTimeout`` if later."""
        if not self._done.wait(timeout):
            raise JoinTimeout(f"supervisor {self.name} still running after {timeout} s")
        assert self._exit_reason is not None  # set before _done
        return self._exit_reason

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the supervisor exited (``limit`` when it gave up), or None while it runs."""
        return self._exit_reason

    @property
    def handle(self) -> ProcessHandle | None:
        """The supervisor's own process in the kernel (None before ``start``)."""
        return self._handle

    @property
    def restarts(self) -> tuple[ChildRestart, ...]:
        """Every restart of a child so far, oldest first (``len`` is the count)."""
        with self._lock:
            return tuple(self._restarts)

    def which_children(self) -> list[tuple[str, ProcessHandle | None]]:
        """``(id, handle)`` of every child in start order; None for a child that is down.

        Answered by the supervisor's thread after every exit already reported
        to it, so the answer reflects the decisions taken on those exits.
        """
        return self._call(lambda: [(c.spec.id, _handle_of(c)) for c in self._children])

    def child(self, child_id: str) -> ProcessHandle | None:
        """The current process of the child ``child_id``, or None while it is down."""
        child = self._find(child_id)
        return self._call(lambda: _handle_of(child))

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- starting ---------------------------------------------------------------------

    def _start_process(self) -> None:
        self._handle = self._kernel.spawn(supervisor_process, name=self.name)
        self._handle.on_exit(lambda reason: self._queue.put(_ProcessDown(reason)))
        self._exit_log = _ExitLog(self._kernel.events)

    def _start_child(self, child: _Child) -> _Incarnation:
        spec = child.spec
        if isinstance(spec, SupervisorSpec):
            incarnation = self._start_nested(spec)
        else:
            domain = spec.domain() if callable(spec.domain) else spec.domain
            handle = self._kernel.spawn(spec.fn, *spec.start_args(), domain=domain, name=spec.id)
            incarnation = _Incarnation(handle)
        with self._lock:
            child.current = incarnation
        self._watch(child, incarnation)
        if isinstance(spec, ChildSpec) and spec.register_as is not None:
            self._register(child, spec.register_as)
        return incarnation

    def _start_nested(self, spec: SupervisorSpec) -> _Incarnation:
        nested = Supervisor(
            self._kernel,
            spec.children,
            strategy=spec.strategy,
            intensity=spec.intensity,
            period=spec.period,
            name=spec.id,
            clock=self._clock,
        )
        nested.start()
        assert nested.handle is not None  # set by start
        return _Incarnation(nested.handle, nested)

    def _watch(self, child: _Child, incarnation: _Incarnation) -> None:
        def exited(reason: ExitReason) -> None:
            self._queue.put(_Exited(child, incarnation, reason))

        if incarnation.supervisor is not None:
            incarnation.supervisor._when_done(exited)  # after its children are down
        else:
            incarnation.handle.on_exit(exited)

    def _register(self, child: _Child, name: str) -> None:
        assert child.current is not None
        handle = child.current.handle
        try:
            self._kernel.register(name, handle)
        except RegistryError:
            if not handle.is_alive:
                return  # it exited already; its exit is on the queue
            self._stop_child(child)
            raise

    # -- the decision thread ----------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            self._deciding = threading.get_ident()
        while not self._done.is_set():
            message = self._queue.get()
            try:
                self._handle_message(message)
            except Exception as exc:
                logger.exception("supervisor %s failed; stopping its children", self.name)
                self._fail(ExitReason.from_exception(exc))

    def _fail(self, reason: ExitReason) -> None:
        """A decision raised (a bug): stop what can be stopped, and exit in any case."""
        try:
            self._stop_children()
        finally:
            self._finish(reason)

    def _handle_message(self, message: _Message) -> None:
        if isinstance(message, _Exited):
            self._child_exited(message)
        elif isinstance(message, _ProcessDown):
            self._shutdown(message.reason)
        elif isinstance(message, _StopRequest):
            self._shutdown(ExitReason.shutdown("supervisor stopped"))
        else:
            _answer(message)

    def _child_exited(self, message: _Exited) -> None:
        child = message.child
        if child.current is not message.incarnation:
            return  # stale: an incarnation we stopped ourselves, or already restarted
        with self._lock:
            child.current = None
        if not child.spec.restart.wants_restart(message.reason):
            return
        if self._kernel.closing:
            self._shutdown(ExitReason.shutdown("the kernel is shutting down"))
            return
        if self._intensity_exceeded():
            self._give_up(child, message.reason)
            return
        gone = message.incarnation
        self._restart(child, None if gone is None else gone.handle.pid, message.reason)

    def _intensity_exceeded(self) -> bool:
        now = self._clock()
        self._window.append(now)
        while self._window[0] < now - self.period:
            self._window.popleft()
        return len(self._window) > self.intensity

    def _restart_group(self, child: _Child) -> list[_Child]:
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        return self._children[self._children.index(child) :]

    def _restart(self, failed: _Child, failed_pid: int | None, reason: ExitReason) -> None:
        group = self._restart_group(failed)
        old_pids = {id(c): c.pid for c in group} | {id(failed): failed_pid}
        for sibling in reversed(group):
            self._stop_child(sibling)
        for member in group:
            if member is not failed and member.spec.restart is Restart.TEMPORARY:
                continue  # stopped by the strategy, never restarted
            if not self._restart_one(member, old_pids[id(member)], failed, reason):
                return

    def _restart_one(
        self, child: _Child, old_pid: int | None, cause: _Child, reason: ExitReason
    ) -> bool:
        """Start ``child`` again; False if that failed (the rest of its group waits)."""
        try:
            new = self._start_child(child)
        except KernelClosedError:
            self._shutdown(ExitReason.shutdown("the kernel is shutting down"))
            return False
        except Exception as exc:
            logger.warning("supervisor %s: restarting %s failed: %s", self.name, child.spec.id, exc)
            self._queue.put(_Exited(child, None, ExitReason.from_exception(exc)))
            return False
        record = ChildRestart(
            child.spec.id, old_pid, new.handle.pid, cause.spec.id, reason, time.time()
        )
        with self._lock:
            self._restarts.append(record)
        self._kernel.emit(
            Event(
                EventKind.RESTARTED,
                pid=new.handle.pid,
                name=child.spec.id,
                domain=new.handle.domain.name,
                reason=reason,
                detail=f"by {self.name}: was {_pid_text(old_pid)}, after {cause.spec.id} exited",
            )
        )
        return True

    # -- stopping -----------------------------------------------------------------------

    def _give_up(self, child: _Child, reason: ExitReason) -> None:
        limit = ExitReason.limit_exceeded(
            "restart intensity",
            f"more than {self.intensity} restarts in {self.period} s; "
            f"last: {child.spec.id} {reason.describe()}",
        )
        self._stop_children()
        handle = self._handle
        self._kernel.emit(
            Event(
                EventKind.SUPERVISOR_GAVE_UP,
                pid=None if handle is None else handle.pid,
                name=self.name,
                reason=limit,
                detail=f"after {child.spec.id} exited: {reason.describe()}",
            )
        )
        self._finish(limit)

    def _shutdown(self, reason: ExitReason) -> None:
        self._stop_children()
        self._finish(reason)

    def _stop_children(self) -> None:
        for child in reversed(self._children):
            self._stop_child(child)

    def _stop_child(self, child: _Child) -> None:
        incarnation = child.current
        if incarnation is None:
            return
        with self._lock:
            child.current = None  # from now on its exit is stale
        if incarnation.supervisor is not None:
            incarnation.supervisor.stop()
        else:
            assert isinstance(child.spec, ChildSpec)
            self._stop_process(incarnation.handle, child.spec.shutdown)

    def _stop_process(self, handle: ProcessHandle, grace: float) -> None:
        assert self._exit_log is not None  # made with our process, before any child
        published = self._exit_log.expect(handle.pid)
        if not handle.is_alive:
            self._exit_log.forget(handle.pid)
            return
        try:
            self._kernel.stop(handle, grace)
        except DomainError:
            # Its domain died a moment ago and is about to report the exit (the process
            # domain raises DomainError, not a ChannelError, for a kill in that window).
            with contextlib.suppress(JoinTimeout):
                handle.join(grace)
        if not published.wait(PUBLISH_TIMEOUT):
            self._exit_log.forget(handle.pid)

    def _finish(self, reason: ExitReason) -> None:
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
        if self._handle is not None and self._exit_log is not None:
            self._end_process(self._handle, self._exit_log, reason)
            self._exit_log.close()
        with self._lock:
            self._state = _State.DONE
            self._exit_reason = reason
            callbacks, self._on_done = self._on_done, []
        self._answer_pending_calls()
        self._done.set()
        for callback in callbacks:
            callback(reason)

    def _end_process(self, handle: ProcessHandle, log: _ExitLog, reason: ExitReason) -> None:
        """End our own process with ``reason``; return once its exit is published."""
        published = log.expect(handle.pid)
        if handle.is_alive:
            self._kernel.kill(handle, reason)
            published.wait(PUBLISH_TIMEOUT)
        log.forget(handle.pid)

    def _answer_pending_calls(self) -> None:
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(message, _Call):
                _answer(message)

    def _when_done(self, callback: Callable[[ExitReason], None]) -> None:
        """Call ``callback(reason)`` once the supervisor has exited and its children are down."""
        with self._lock:
            if self._state is not _State.DONE:
                self._on_done.append(callback)
                return
        assert self._exit_reason is not None
        callback(self._exit_reason)

    # -- helpers -------------------------------------------------------------------------

    def _call(self, fn: Callable[[], _T]) -> _T:
        future: Future[_T] = Future()
        with self._lock:
            direct = self._state is not _State.RUNNING or self._deciding == threading.get_ident()
            if not direct:
                self._queue.put(_Call(fn, future))
        return fn() if direct else future.result()

    def _find(self, child_id: str) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        known = ", ".join(c.spec.id for c in self._children) or "none"
        raise UsageError(f"supervisor {self.name} has no child {child_id!r} (children: {known})")


def _pid_text(pid: int | None) -> str:
    return "down" if pid is None else f"<{pid}>"


def _handle_of(child: _Child) -> ProcessHandle | None:
    return None if child.current is None else child.current.handle


def _answer(call: _Call) -> None:
    try:
        call.future.set_result(call.fn())
    except Exception as exc:
        call.future.set_exception(exc)
