"""The kernel: the process table, domains, links, monitors, names; sole authority."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ._channel import channel
from ._codec import split_args
from ._contract import Contract
from ._domain import Domain, domain_factory
from ._endpoint import Endpoint
from ._endpoint_core import violation_listeners
from ._errors import (
    ClosedEndpointError,
    KernelClosedError,
    ProtocolViolation,
    RegistryError,
    SipkernelError,
    UsageError,
)
from ._events import Event, EventBus, EventKind
from ._exit import ExitReason
from ._owner import EndpointOwner, current_owner
from ._process import FunctionRef, Monitor, ProcessHandle, ProcessSpec, current_process

logger = logging.getLogger("sipkernel")

DEFAULT_GRACE = 5.0
NESTED_ENV = "SIPKERNEL_ZYGOTE"
"""Set in every domain's OS process: no kernel may start there."""
EXIT_SIGNAL_QUEUE = 256
HARD_KILL_WAIT = 2.0
"""Seconds ``stop`` waits after its hard kill, beyond the grace (a domain's
kill escalation takes one)."""


class ExitSignal(msgspec.Struct, frozen=True, tag=True):
    """Delivered to a process with ``trap_exits=True`` when a linked process exits."""

    pid: int
    name: str
    reason: ExitReason


EXIT_SIGNALS = Contract("ExitSignals", "state Open: ExitSignal! -> Open;", [ExitSignal])


class Kernel:
    """The root of a sipkernel program: spawns processes and supervises their lives.

    Use it as a context manager (``with Kernel() as k:``) or an async one
    (``async with Kernel() as k:``); leaving the block shuts every domain down
    in order and reclaims their processes, descriptors and memory. Leaving it
    by Ctrl-C does the same before the ``KeyboardInterrupt`` goes on: domains
    ignore SIGINT, so one traceback at most, never one per process.

    ``preload`` names modules that new domains import ahead of time, so that
    a process started from them does not wait for the import: the ``process``
    zygote imports them (its domains fork with them loaded); each spare
    ``sandbox`` imports them inside itself, contained, before it is asked for.

    >>> with Kernel() as kernel:
    ...     kernel.processes()
    ()
    """

    def __init__(self, *, preload: Sequence[str] = (), grace: float = DEFAULT_GRACE) -> None:
        if os.environ.get(NESTED_ENV):
            raise UsageError(
                "a Kernel cannot start inside a domain; if a script started this one while "
                "a domain imported it, guard its main code with `if __name__ == '__main__':`"
            )
        self.events = EventBus()
        self.grace = grace
        self._preload = tuple(preload)
        self._pids = itertools.count(1)
        self._lock = threading.RLock()
        self._table: dict[int, ProcessHandle] = {}
        self._domains: dict[str, Domain] = {}
        self._names: dict[str, int] = {}
        self._links: dict[int, set[int]] = {}
        self._traps: dict[int, Endpoint] = {}
        self._services: dict[str, Any] = {}
        self._domain_ids = itertools.count(1)
        self._closing = False
        self._closed = threading.Event()
        self._owner = EndpointOwner("kernel")
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._owner_tokens: list[contextvars.Token[EndpointOwner | None]] = []
        violation_listeners.append(self._violation)

    # -- context management -------------------------------------------------------

    def __enter__(self) -> Kernel:
        # Endpoints made in this block, outside any process, are the kernel's to close.
        self._owner_tokens.append(current_owner.set(self._owner))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is KeyboardInterrupt:
            logger.warning("interrupted: shutting down in order")
        try:
            self.shutdown()
        finally:
            current_owner.reset(self._owner_tokens.pop())

    async def __aenter__(self) -> Kernel:
        # ``async def`` processes of the local domain run as tasks on this loop.
        self._event_loop = asyncio.get_running_loop()
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.shutdown)
        finally:
            current_owner.reset(self._owner_tokens.pop())

    # -- domains ------------------------------------------------------------------------

    def domain(self, kind: str = "local", *, name: str | None = None, **options: Any) -> Domain:
        """Create a new domain of ``kind`` (``local``, ``process``, ...)."""
        self._check_open()
        factory = domain_factory(kind)
        with self._lock:
            name = name or f"{kind}-{next(self._domain_ids)}"
            if name in self._domains:
                raise UsageError(f"a domain named {name!r} already exists")
            domain = factory(self, name, **options)
            self._domains[name] = domain
        self.emit(Event(EventKind.DOMAIN_STARTED, name=name, domain=name, detail=kind))
        return domain

    @property
    def domains(self) -> tuple[Domain, ...]:
        with self._lock:
            return tuple(self._domains.values())

    def _default_domain(self) -> Domain:
        with self._lock:
            existing = self._domains.get("local")
            if existing is not None and existing.is_alive:
                return existing
            self._domains.pop("local", None)
        return self.domain("local", name="local")

    def _resolve_domain(self, domain: Domain | str | None, name: str) -> Domain:
        if domain is None or domain == "local":
            return self._default_domain()
        if isinstance(domain, str):
            return self.domain(domain, name=f"{name}-{next(self._domain_ids)}", ephemeral=True)
        if not isinstance(domain, Domain) or self._domains.get(domain.name) is not domain:
            raise UsageError(f"{domain!r} is not a domain of this kernel")
        if not domain.is_alive:
            raise UsageError(f"domain {domain.name} is closed")
        return domain

    # -- processes ------------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        domain: Domain | str | None = None,
        name: str | None = None,
        trap_exits: bool = False,
        link: ProcessHandle | None = None,
    ) -> ProcessHandle:
        """Start ``fn(*args)`` as a new process and return its handle.

        ``fn`` must be a module-level ``def`` (runs in its own thread) or
        ``async def`` (runs as a task on the domain's event loop). Arguments
        are copied into the process; endpoints among them are moved.
        ``domain`` is a domain of this kernel, a kind name (a fresh domain of
        that kind just for this process), or None for the shared local domain.
        """
        self._check_open()
        function = FunctionRef.of(fn)
        data, endpoints = split_args(args)  # bad arguments fail here, before any domain starts
        name = name or function.qualname
        target = self._resolve_domain(domain, name)
        target.check_function(function)
        pid = next(self._pids)
        handle = ProcessHandle(self, pid, name, target)
        exit_signals = self._trap_channel(pid) if trap_exits else None
        with self._lock:
            self._table[pid] = handle
        if link is not None:
            self.link(handle, link)
        target.track(pid)
        self.emit(Event(EventKind.SPAWNED, pid=pid, name=name, domain=target.name))
        try:
            target.start_process(ProcessSpec(pid, name, function, data, endpoints, exit_signals))
        except BaseException as exc:
            if exit_signals is not None:
                exit_signals.close()
            target.report_exit(pid, ExitReason.from_exception(exc))
            raise
        return handle

    def _trap_channel(self, pid: int) -> Endpoint:
        sender, receiver = channel(EXIT_SIGNALS, capacity=EXIT_SIGNAL_QUEUE)
        with self._lock:
            self._traps[pid] = sender
        return receiver

    def processes(self) -> tuple[ProcessHandle, ...]:
        """Every live process."""
        with self._lock:
            return tuple(self._table.values())

    def process(self, pid: int) -> ProcessHandle | None:
        with self._lock:
            return self._table.get(pid)

    def kill(self, handle: ProcessHandle, reason: ExitReason) -> None:
        """End a process now with ``reason`` (no effect if it already ended)."""
        if handle.is_alive:
            handle.domain.kill_process(handle.pid, reason)

    def stop(self, handle: ProcessHandle, grace: float | None = None) -> ExitReason:
        """Ordered stop: ask with a shutdown kill, wait ``grace``, then kill hard.

        Raises ``JoinTimeout`` if even the hard kill does not end it within
        another ``grace`` (a ``local`` thread stuck inside C code can do that).
        """
        grace = self.grace if grace is None else grace
        self.kill(handle, ExitReason.shutdown())
        with contextlib.suppress(SipkernelError):
            return handle.join(grace)
        self.kill(handle, ExitReason.killed("did not stop within its grace period"))
        return handle.join(grace + HARD_KILL_WAIT)

    # -- links, monitors, names -------------------------------------------------------

    def link(self, a: ProcessHandle, b: ProcessHandle) -> None:
        """Link two processes: an abnormal exit of either ends the other."""
        dead = None
        with self._lock:
            for one, other in ((a, b), (b, a)):
                if not one.is_alive:
                    dead = (one, other)
            if dead is None:
                self._links.setdefault(a.pid, set()).add(b.pid)
                self._links.setdefault(b.pid, set()).add(a.pid)
        if dead is not None:
            gone, survivor = dead
            assert gone.exit_reason is not None
            self._propagate(gone, gone.exit_reason, survivor.pid)

    def unlink(self, a: ProcessHandle, b: ProcessHandle) -> None:
        with self._lock:
            self._links.get(a.pid, set()).discard(b.pid)
            self._links.get(b.pid, set()).discard(a.pid)

    def monitor(
        self,
        handle: ProcessHandle,
        callback: Callable[[ProcessHandle, ExitReason], None] | None = None,
    ) -> Monitor:
        """Be told once when ``handle`` exits (at once if it already has)."""
        monitor = Monitor(handle)

        def fire(reason: ExitReason) -> None:
            if monitor.cancelled:
                return
            self.emit(
                Event(EventKind.MONITOR_FIRED, pid=handle.pid, name=handle.name, reason=reason)
            )
            if callback is not None:
                callback(handle, reason)

        handle.on_exit(fire)
        return monitor

    def register(self, name: str, handle: ProcessHandle) -> None:
        """Give a live process a unique name (freed when it exits)."""
        with self._lock:
            if name in self._names:
                raise RegistryError(f"the name {name!r} is already registered")
            if self._table.get(handle.pid) is not handle:
                raise RegistryError(f"{handle!r} is not a live process of this kernel")
            self._names[name] = handle.pid

    def unregister(self, name: str) -> None:
        with self._lock:
            if self._names.pop(name, None) is None:
                raise RegistryError(f"no process is registered as {name!r}")

    def whereis(self, name: str) -> ProcessHandle | None:
        """The live process registered as ``name``, or None."""
        with self._lock:
            pid = self._names.get(name)
            return None if pid is None else self._table.get(pid)

    def registered(self) -> dict[str, ProcessHandle]:
        with self._lock:
            return {name: self._table[pid] for name, pid in self._names.items()}

    # -- the DomainHost side ------------------------------------------------------

    def process_exited(self, pid: int, reason: ExitReason) -> None:
        """Called by domains, once per process."""
        handle, linked, trap = self._forget(pid)
        if handle is None:
            return
        if trap is not None:
            trap.close_with(reason)
        exited = Event(
            EventKind.EXITED, pid=pid, name=handle.name, domain=handle.domain.name, reason=reason
        )
        handle.set_exited(reason, lambda: self.emit(exited))
        for other in linked:
            self._propagate(handle, reason, other)

    def _forget(self, pid: int) -> tuple[ProcessHandle | None, set[int], Endpoint | None]:
        with self._lock:
            handle = self._table.pop(pid, None)
            for name in [n for n, p in self._names.items() if p == pid]:
                del self._names[name]
            linked = self._links.pop(pid, set())
            for other in linked:
                self._links.get(other, set()).discard(pid)
            return handle, linked, self._traps.pop(pid, None)

    def _propagate(self, gone: ProcessHandle, reason: ExitReason, pid: int) -> None:
        if reason.is_normal:
            return
        with self._lock:
            target = self._table.get(pid)
            trap = self._traps.get(pid)
        if target is None:
            return
        self.emit(
            Event(
                EventKind.LINK_FIRED,
                pid=pid,
                name=target.name,
                reason=reason,
                detail=f"from {gone.name}<{gone.pid}>",
            )
        )
        if trap is None:
            self.kill(target, ExitReason.linked(gone.pid, reason))
            return
        try:
            trap.send(ExitSignal(gone.pid, gone.name, reason), timeout=0)
        except TimeoutError:
            self.kill(target, ExitReason.limit_exceeded("exit signal queue"))
        except (ClosedEndpointError, SipkernelError):
            pass  # the trapping process is exiting itself

    def emit(self, event: Event) -> None:
        """Publish a lifecycle event to the log and to subscribers."""
        self.events.emit(event)

    def _violation(self, violation: ProtocolViolation) -> None:
        ctx = current_process()
        self.emit(
            Event(
                EventKind.CONTRACT_VIOLATION,
                pid=None if ctx is None else ctx.pid,
                name="kernel" if ctx is None else ctx.name,
                detail=str(violation),
            )
        )

    def shared(self, key: str, create: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._services:
                self._services[key] = create()
            return self._services[key]

    @property
    def preload(self) -> tuple[str, ...]:
        """Modules every new domain's zygote imports ahead of time."""
        return self._preload

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop of ``async with Kernel()``, where local ``async def`` processes run."""
        return self._event_loop

    # -- shutdown ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise KernelClosedError("the kernel is shut down")

    @property
    def closing(self) -> bool:
        """True from the moment ``shutdown`` begins."""
        return self._closing

    @property
    def closed(self) -> bool:
        """True once ``shutdown`` has finished."""
        return self._closed.is_set()

    def shutdown(self, grace: float | None = None) -> None:
        """Stop every domain in reverse order of creation, then free shared services.

        Each domain asks its processes to stop, waits up to ``grace`` seconds
        (default: the kernel's), then kills what is left. Idempotent.
        """
        with self._lock:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
        if already:
            self._closed.wait()
            return
        grace = self.grace if grace is None else grace
        try:
            for domain in reversed(self.domains):
                self._close_domain(domain, grace)
            self._owner.close_all(ExitReason.shutdown("kernel shut down"))
            for service in reversed(list(self._services.values())):
                close = getattr(service, "close", None)
                if close is not None:
                    close()
            self._services.clear()
        finally:
            with contextlib.suppress(ValueError):
                violation_listeners.remove(self._violation)
            self._closed.set()

    def _close_domain(self, domain: Domain, grace: float) -> None:
        try:
            domain.close(grace)
        except Exception:
            logger.exception("closing domain %s failed", domain.name)
        for pid in domain.pids:  # a domain that failed to report still frees its processes
            domain.report_exit(pid, ExitReason.shutdown("kernel shut down"))
        with self._lock:
            self._domains.pop(domain.name, None)

    def forget_domain(self, domain: Domain) -> None:
        """Drop a domain that closed or died from the table (called by domains)."""
        with self._lock:
            if self._domains.get(domain.name) is domain:
                del self._domains[domain.name]
