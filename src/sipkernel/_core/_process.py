"""Processes: what the kernel holds (handles) and what a process sees (its context)."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FunctionType
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import JoinTimeout, NotImportableError, UsageError
from ._exit import ExitReason
from ._waiter import FutureWaiter, ThreadWaiter

if TYPE_CHECKING:
    from ._domain import Domain
    from ._endpoint import Endpoint


@dataclass(frozen=True)
class FunctionRef:
    """An importable function, named so any domain can find it again."""

    module: str
    qualname: str
    is_async: bool
    found: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    """The function itself, when this interpreter has already looked it up."""

    @classmethod
    def of(cls, fn: object) -> FunctionRef:
        """Name ``fn`` (checked once per function, then remembered)."""
        known = _checked.get(fn) if isinstance(fn, FunctionType) else None
        if known is not None:
            return known
        ref = cls._check(fn)
        _checked[fn] = ref
        return ref

    @classmethod
    def _check(cls, fn: object) -> FunctionRef:
        """Name ``fn``; reject what no other domain could import.

        Lambdas and closures are refused everywhere: they carry state that would
        be shared with their creator, and no domain can import them by name.
        """
        if not callable(fn):
            raise UsageError(f"spawn needs a function, not {type(fn).__name__}")
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", None)
        if not inspect.isfunction(fn) or module is None or qualname is None:
            raise NotImportableError(
                f"{fn!r} is not a plain function; spawn a module-level def or async def"
            )
        if "<lambda>" in qualname:
            raise NotImportableError(
                f"cannot spawn a lambda ({module}.{qualname}): define it with def at module level"
            )
        if "<locals>" in qualname:
            raise NotImportableError(
                f"cannot spawn {module}.{qualname}: it is defined inside another function "
                "(a closure); move it to module level and pass what it needs as arguments"
            )
        ref = cls(module, qualname, inspect.iscoroutinefunction(fn))
        if ref.resolve() is not fn:
            raise NotImportableError(f"{module}.{qualname} does not name {fn!r}; was it replaced?")
        return cls(module, qualname, ref.is_async, fn)

    def resolve(self) -> Callable[..., Any]:
        """Import the module and look the function up."""
        if self.found is not None:
            return self.found
        try:
            obj: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise NotImportableError(f"cannot import {self}: {exc}") from exc
        return obj  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}"


_checked: weakref.WeakKeyDictionary[object, FunctionRef] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ProcessSpec:
    """Everything a domain needs to start a process.

    The arguments are already pickled (``args``), with the endpoints among them
    pulled out (``endpoints``): a domain moves those, then rebuilds the
    arguments with :func:`sipkernel._core._codec.join_args`.
    """

    pid: int
    name: str
    function: FunctionRef
    args: bytes
    endpoints: list[Endpoint]
    exit_signals: Endpoint | None = None


class ProcessContext:
    """What a running process can see of itself: no kernel, no other processes."""

    def __init__(self, pid: int, name: str, isolation: str, exit_signals: Endpoint | None) -> None:
        self.pid = pid
        self.name = name
        self._isolation = isolation
        self.exit_signals = exit_signals
        """With ``trap_exits=True``: receives an ``ExitSignal`` per linked exit."""
        self.kill_requested = False
        """Set when the process is killed; its next sipkernel call raises (for runners)."""

    def isolation(self) -> str:
        """The kind of domain this process runs in (``local``, ``process``, ...)."""
        return self._isolation

    def __repr__(self) -> str:
        return f"<ProcessContext {self.name}<{self.pid}>>"


_current: contextvars.ContextVar[ProcessContext | None] = contextvars.ContextVar(
    "sipkernel_process", default=None
)


def current() -> ProcessContext:
    """The context of the process calling this; ``UsageError`` outside any process."""
    ctx = _current.get()
    if ctx is None:
        raise UsageError("sipkernel.current() called outside a sipkernel process")
    return ctx


def current_process() -> ProcessContext | None:
    """The calling process's context, or None outside any process."""
    return _current.get()


def check_killed() -> None:
    """Raise ``ProcessKilled`` if the calling process has been killed.

    Every channel operation calls this, which makes a kill cooperative for
    any process that talks: it ends at its next send or receive, with no
    exception injected into it from outside.
    """
    ctx = _current.get()
    if ctx is not None and ctx.kill_requested:
        raise ProcessKilled


def set_current(ctx: ProcessContext | None) -> None:
    """Bind the calling thread's (or task's) process context (for domain runners)."""
    _current.set(ctx)


class _KernelOps(Protocol):
    def kill(self, handle: ProcessHandle, reason: ExitReason) -> None: ...
    def link(self, a: ProcessHandle, b: ProcessHandle) -> None: ...
    def monitor(
        self, handle: ProcessHandle, callback: Callable[[ProcessHandle, ExitReason], None] | None
    ) -> Monitor: ...


class ProcessHandle:
    """The kernel's handle on a process: join, kill, monitor, link."""

    def __init__(self, kernel: _KernelOps, pid: int, name: str, domain: Domain) -> None:
        self._kernel = kernel
        self.pid = pid
        self.name = name
        self.domain = domain
        self._reason: ExitReason | None = None
        self._finished = False  # the exit and everything it caused have happened
        self._callbacks: list[Callable[[ExitReason], None]] = []
        self._joiners: list[ThreadWaiter] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = self._reason.describe() if self._reason else "alive"
        return f"<Process {self.name}<{self.pid}> in {self.domain.name}: {state}>"

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the process ended, or None while it runs."""
        return self._reason

    @property
    def is_alive(self) -> bool:
        return self._reason is None

    def join(self, timeout: float | None = None) -> ExitReason:
        """Wait for the exit and return its reason; ``JoinTimeout`` if it takes longer."""
        with self._lock:
            if not self._finished:
                waiter = ThreadWaiter()
                self._joiners.append(waiter)
            else:
                waiter = None
        if waiter is not None and not waiter.wait(timeout):
            with self._lock:
                if not self._finished:
                    self._joiners.remove(waiter)
                    raise JoinTimeout(f"{self.name}<{self.pid}> still running after {timeout} s")
        assert self._reason is not None
        return self._reason

    async def ajoin(self, timeout: float | None = None) -> ExitReason:
        """Awaitable ``join``."""
        waiter = FutureWaiter()
        self.on_exit(lambda _reason: waiter.wake())
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError:
            raise JoinTimeout(f"{self.name}<{self.pid}> still running after {timeout} s") from None
        assert self._reason is not None
        return self._reason

    def kill(self, reason: str = "killed") -> None:
        """End the process now; its exit reason is ``killed: <reason>``."""
        self._kernel.kill(self, ExitReason.killed(reason))

    def monitor(
        self, callback: Callable[[ProcessHandle, ExitReason], None] | None = None
    ) -> Monitor:
        """One-way notification of this process's exit (Erlang's monitor)."""
        return self._kernel.monitor(self, callback)

    def link(self, other: ProcessHandle) -> None:
        """Link the two processes: an abnormal exit of one ends the other."""
        self._kernel.link(self, other)

    def on_exit(self, callback: Callable[[ExitReason], None]) -> None:
        """Call ``callback(reason)`` when the process exits (at once if it already has).

        The callback runs on whichever thread reports the exit: keep it short.
        """
        with self._lock:
            if self._reason is None:
                self._callbacks.append(callback)
                return
            reason = self._reason
        callback(reason)

    def set_exited(self, reason: ExitReason, announce: Callable[[], None] | None = None) -> bool:
        """Record the exit; False if it was already recorded (for the kernel).

        In order: the reason is set, ``announce()`` runs (the kernel publishes
        its EXITED event), the ``on_exit`` callbacks run, and only then do
        ``join`` calls return, so a joiner sees everything the exit caused.
        """
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, []
        if announce is not None:
            announce()
        for callback in callbacks:
            callback(reason)
        with self._lock:
            self._finished = True
            joiners, self._joiners = self._joiners, []
        for waiter in joiners:
            waiter.wake()
        return True


class Monitor:
    """A monitor on one process: fires once, with the exit reason."""

    def __init__(self, handle: ProcessHandle) -> None:
        self.handle = handle
        self.cancelled = False

    def wait(self, timeout: float | None = None) -> ExitReason:
        """Block until the monitored process is down; returns its reason."""
        return self.handle.join(timeout)

    async def await_down(self, timeout: float | None = None) -> ExitReason:
        return await self.handle.ajoin(timeout)

    def cancel(self) -> None:
        """Stop caring: the callback will not be called."""
        self.cancelled = True


class ProcessKilled(BaseException):
    """Raised inside a local process that is being killed (do not catch it).

    A ``BaseException``, like ``SystemExit``: ``except Exception`` lets it pass.
    """
