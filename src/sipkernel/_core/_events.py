"""Lifecycle events: spawn, exit, restart, link and monitor firings, violations.

Every event goes to the ``sipkernel`` logger and to each subscriber. A
subscriber is either a callback (called on the thread that emitted the event;
keep it short) or an :class:`EventStream`, a bounded queue to read at leisure.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._exit import ExitReason

logger = logging.getLogger("sipkernel")
logger.addHandler(logging.NullHandler())  # a library logs; the application decides where to


class EventKind(enum.Enum):
    """What happened: the kind of a lifecycle :class:`Event`."""

    SPAWNED = "spawned"
    EXITED = "exited"
    RESTARTED = "restarted"
    LINK_FIRED = "link_fired"
    MONITOR_FIRED = "monitor_fired"
    CONTRACT_VIOLATION = "contract_violation"
    DOMAIN_STARTED = "domain_started"
    DOMAIN_EXITED = "domain_exited"
    SUPERVISOR_GAVE_UP = "supervisor_gave_up"
    ACCESS_REFUSED = "access_refused"
    """A capability service refused a request (an audit line: who asked for what)."""


@dataclass(frozen=True)
class Event:
    """One thing that happened to a process, a domain or a supervisor."""

    kind: EventKind
    pid: int | None = None
    name: str = ""
    domain: str = ""
    reason: ExitReason | None = None
    detail: str = ""
    time: float = field(default_factory=time.time)

    def describe(self) -> str:
        who = f"{self.name}<{self.pid}>" if self.pid is not None else self.name
        parts = [self.kind.value, who]
        if self.domain:
            parts.append(f"in {self.domain}")
        if self.reason is not None:
            parts.append(f"({self.reason.describe()})")
        if self.detail:
            parts.append(f"- {self.detail}")
        return " ".join(p for p in parts if p)


_LEVELS = {
    EventKind.EXITED: logging.INFO,
    EventKind.CONTRACT_VIOLATION: logging.WARNING,
    EventKind.ACCESS_REFUSED: logging.WARNING,
    EventKind.SUPERVISOR_GAVE_UP: logging.ERROR,
}


class EventStream:
    """A bounded queue of events; the oldest are dropped (and counted) when full."""

    def __init__(self, bus: EventBus, maxlen: int) -> None:
        self._bus = bus
        self._events: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.dropped = 0

    def _push(self, event: Event) -> None:
        with self._cond:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Event:
        """The next event; raises ``TimeoutError`` if none comes in time."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._events), timeout):
                raise TimeoutError("no event")
            return self._events.popleft()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float | None = None) -> Event:
        """Skip events until one matches ``predicate``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            event = self.get(remaining)
            if predicate(event):
                return event

    def drain(self) -> list[Event]:
        with self._cond:
            events = list(self._events)
            self._events.clear()
            return events

    def close(self) -> None:
        self._bus.unsubscribe(self._push)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of events to the log and to subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns the unsubscribe function."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s != callback]

    def stream(self, maxlen: int = 10_000) -> EventStream:
        """A new :class:`EventStream` receiving every event from now on."""
        stream = EventStream(self, maxlen)
        self.subscribe(stream._push)
        return stream

    def emit(self, event: Event) -> None:
        level = _LEVELS.get(event.kind, logging.DEBUG)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", event.describe())
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                logger.exception("event subscriber %r failed", callback)
