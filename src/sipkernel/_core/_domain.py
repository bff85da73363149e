"""The one interface every domain kind implements, and the table of kinds.

The kernel core knows no particular kind: ``local``, ``process`` and every
later rung register a factory here and implement :class:`Domain`.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from ._errors import UnknownDomainError
from ._events import Event
from ._exit import ExitReason
from ._process import FunctionRef, ProcessSpec


class DomainHost(Protocol):
    """What the kernel offers a domain: where to report what happened."""

    def process_exited(self, pid: int, reason: ExitReason) -> None:
        """A process of this domain ended (call exactly once per started process)."""

    def emit(self, event: Event) -> None:
        """Publish a lifecycle event."""

    def forget_domain(self, domain: Domain) -> None:
        """A domain has closed or died: drop it from the kernel's table."""

    def shared(self, key: str, create: Callable[[], Any]) -> Any:
        """A kernel-wide service (for example a zygote), created on first use.

        If the object has a ``close()`` method the kernel calls it at shutdown,
        after every domain has closed.
        """

    @property
    def preload(self) -> tuple[str, ...]:
        """Modules the user asked to import ahead of time in new domains."""

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the kernel was entered on with ``async with``, if any."""


class Domain(abc.ABC):
    """Where processes run; its kind sets how strongly they are isolated.

    Life cycle: created by ``Kernel.domain()`` (or implicitly by ``spawn``),
    ``start_process`` any number of times, ``close`` once. Every started
    process must be reported through ``host.process_exited`` exactly once,
    whatever happens to the domain.
    """

    kind: ClassVar[str]

    def __init__(self, host: DomainHost, name: str, *, ephemeral: bool = False) -> None:
        self.host = host
        self.name = name
        self.ephemeral = ephemeral
        """Created for one process by ``spawn(domain=KIND)``: closes after its last exit."""
        self.closed = False
        self._pids: set[int] = set()
        self._pids_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def pids(self) -> frozenset[int]:
        """The processes this domain hosts now."""
        with self._pids_lock:
            return frozenset(self._pids)

    def track(self, pid: int) -> None:
        with self._pids_lock:
            self._pids.add(pid)

    def untrack(self, pid: int) -> bool:
        """Forget a pid; True if it was still tracked (so this is its first exit)."""
        with self._pids_lock:
            if pid not in self._pids:
                return False
            self._pids.discard(pid)
            return True

    def report_exit(self, pid: int, reason: ExitReason) -> None:
        """Tell the host a process ended, once."""
        if self.untrack(pid):
            self.host.process_exited(pid, reason)

    @abc.abstractmethod
    def check_function(self, function: FunctionRef) -> None:
        """Raise ``NotImportableError`` if this domain cannot run ``function``."""

    @abc.abstractmethod
    def start_process(self, spec: ProcessSpec) -> None:
        """Start a process; its arguments must cross by copy or move."""

    @abc.abstractmethod
    def kill_process(self, pid: int, reason: ExitReason) -> None:
        """End one process now, reporting ``reason`` as its exit."""

    @abc.abstractmethod
    def close(self, grace: float) -> None:
        """Ask every process to stop, wait ``grace`` seconds, then kill; reclaim all."""

    @property
    @abc.abstractmethod
    def is_alive(self) -> bool:
        """False once the domain has failed or been closed."""


DomainFactory = Callable[..., Domain]
_kinds: dict[str, DomainFactory] = {}


def register_domain_kind(kind: str, factory: DomainFactory) -> None:
    """Make ``kind`` available to ``Kernel.domain(kind)`` and ``spawn(domain=kind)``."""
    _kinds[kind] = factory


def domain_factory(kind: str) -> DomainFactory:
    """The factory registered for ``kind``; ``UnknownDomainError`` if none is."""
    try:
        return _kinds[kind]
    except KeyError:
        known = ", ".join(sorted(_kinds)) or "none"
        raise UnknownDomainError(f"no domain kind {kind!r} (known: {known})") from None


def domain_kinds() -> tuple[str, ...]:
    """The names of every registered domain kind, sorted."""
    return tuple(sorted(_kinds))
