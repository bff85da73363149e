"""Connections that outlive a restart: listeners, dialers and the switchboard.

A channel is moved into the process that holds it, so when a supervisor
restarts a process, the channels its peers held into the old incarnation are
broken for good. An application's processes therefore do not get each
other's endpoints directly; they get them through a *switchboard* in the
kernel, as Singularity's name service binds channels:

* a process that **serves** a contract gets a *listener* endpoint and calls
  :func:`accept` on it to take each new connection (an exporter endpoint of
  that contract);
* a process that **uses** a service gets a *dialer* endpoint and calls
  :func:`connect` on it for a connection to the service's current
  incarnation (an importer endpoint); after a ``BrokenChannelError`` it calls
  :func:`connect` again and is put through to the restarted service, waiting
  for it to come back if need be.

The switchboard is one thread of the application in the kernel's own
process. For each connection it creates a channel, hands the exporter end to
the service's listener and the importer end to the caller, and then steps
out: the two processes talk directly, whatever their domains.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field

import msgspec

from .._core._channel import channel
from .._core._contract import Contract
from .._core._endpoint import Endpoint
from .._core._errors import (
    ChannelError,
    ClosedEndpointError,
    NoLiveChannels,
    ReceiveTimeout,
    SipkernelError,
)
from .._core._select import select

REPLY_SLACK = 5.0
"""Seconds a caller waits beyond its own deadline for the switchboard's answer."""

MAX_WAIT = 3600.0
"""The longest a caller's ``Dial`` is held waiting for its service, in seconds."""

HANDOFF_TIMEOUT = 5.0
"""Seconds the switchboard waits to queue a connection on a busy listener."""


class ServiceUnavailable(SipkernelError):
    """:func:`connect` found no live incarnation of the service in time."""


class Incoming(msgspec.Struct, tag=True):
    """A new connection for a listener: the exporter end, and who called."""

    endpoint: Endpoint
    caller: str


class Dial(msgspec.Struct, tag=True):
    """A caller asks for a connection and will wait ``wait`` seconds for it."""

    wait: float


class Connected(msgspec.Struct, tag=True):
    """The importer end of a new connection to the service."""

    endpoint: Endpoint


class Unavailable(msgspec.Struct, tag=True):
    """No connection could be made; ``reason`` says why."""

    reason: str


class Wake(msgspec.Struct, tag=True):
    """Tells the switchboard's thread that its tables changed."""


LISTEN = Contract("Listen", "state Open: Incoming? -> Open;", [Incoming])
"""The listener's side (exporter): it only receives connections."""

DIAL = Contract(
    "Dial",
    """
    state Idle:    Dial? -> Dialing;
    state Dialing: Connected! -> Idle | Unavailable! -> Idle;
    """,
    [Dial, Connected, Unavailable],
)
"""The switchboard's side (exporter) of a caller's dialer."""

WAKE = Contract("SwitchboardWake", "state Open: Wake? -> Open;", [Wake])


def accept(listener: Endpoint, timeout: float | None = None) -> Endpoint:
    """Wait for the next connection on ``listener``; return its exporter endpoint.

    Raises ``ReceiveTimeout`` after ``timeout`` seconds, ``BrokenChannelError``
    when the application is shutting down.
    """
    incoming = listener.recv(timeout)
    assert isinstance(incoming, Incoming)  # the contract admits nothing else
    return incoming.endpoint


async def aaccept(listener: Endpoint, timeout: float | None = None) -> Endpoint:
    """The awaitable form of :func:`accept`, for ``async def`` processes."""
    incoming = await listener.arecv(timeout)
    assert isinstance(incoming, Incoming)
    return incoming.endpoint


def connect(dialer: Endpoint, timeout: float = 10.0) -> Endpoint:
    """A new connection to the service behind ``dialer`` (an importer endpoint).

    Waits up to ``timeout`` seconds for the service to be up (it may be
    restarting); raises :class:`ServiceUnavailable` when it is not.
    """
    dialer.send(Dial(timeout))
    try:
        answer = dialer.recv(timeout + REPLY_SLACK)
    except ReceiveTimeout:
        raise _switchboard_silent(dialer) from None
    return _connected(answer)


async def aconnect(dialer: Endpoint, timeout: float = 10.0) -> Endpoint:
    """The awaitable form of :func:`connect`."""
    await dialer.asend(Dial(timeout))
    try:
        answer = await dialer.arecv(timeout + REPLY_SLACK)
    except ReceiveTimeout:
        raise _switchboard_silent(dialer) from None
    return _connected(answer)


def _switchboard_silent(dialer: Endpoint) -> ServiceUnavailable:
    """The switchboard missed its own deadline: the dialer's state is unknown, so close it."""
    dialer.close()
    return ServiceUnavailable("the switchboard did not answer; this dialer is closed")


def _connected(answer: Connected | Unavailable) -> Endpoint:
    if isinstance(answer, Unavailable):
        raise ServiceUnavailable(answer.reason)
    return answer.endpoint


@dataclass(eq=False)
class _Service:
    name: str
    contract: Contract
    link: Endpoint | None = None  # the importer end of the current listener


@dataclass(eq=False)
class _Caller:
    name: str
    service: _Service
    link: Endpoint  # the exporter end of the caller's dialer
    waiting_until: float | None = None  # set while a Dial waits for the service


@dataclass(eq=False)
class _Tables:
    services: dict[str, _Service] = field(default_factory=dict)
    callers: list[_Caller] = field(default_factory=list)


class Switchboard:
    """Puts callers through to the current incarnation of each service.

    ``listener(service)`` and ``dialer(service, caller)`` are called by the
    application (from any thread) at every start of a process; the endpoints
    they return are that process's arguments. ``close()`` breaks every link.
    """

    def __init__(self, name: str = "switchboard") -> None:
        self._lock = threading.Lock()
        self._tables = _Tables()
        self._closed = False
        self._wake_rx, self._wake_tx = channel(WAKE)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add_service(self, service: str, contract: Contract) -> None:
        """Declare ``service`` (before any listener or dialer names it)."""
        with self._lock:
            self._tables.services[service] = _Service(service, contract)

    def listener(self, service: str) -> Endpoint:
        """A new listener for ``service``, replacing the previous incarnation's."""
        serving, link = channel(LISTEN)
        with self._lock:
            entry = self._tables.services[service]
            old, entry.link = entry.link, link
        if old is not None:
            old.close()
        self._wake()
        return serving

    def dialer(self, service: str, caller: str) -> Endpoint:
        """A new dialer from ``caller`` to ``service``."""
        link, dialing = channel(DIAL)
        with self._lock:
            entry = self._tables.services[service]
            self._tables.callers.append(_Caller(caller, entry, link))
        self._wake()
        return dialing

    def close(self) -> None:
        """Stop the thread and close every link (listeners and dialers see it broken)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()  # the thread sees ``_closed`` on waking
        self._wake_tx.close()
        self._thread.join()

    def _wake(self) -> None:
        with contextlib.suppress(ChannelError):
            self._wake_tx.send(Wake())

    # -- the switchboard's thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closed and not self._wake_rx.closed:
                self._step()
        finally:
            self._close_links()

    def _step(self) -> None:
        with self._lock:
            callers = [c for c in self._tables.callers if _usable(c.link)]
            self._tables.callers = callers
        self._put_through_waiting(callers)
        links = [self._wake_rx, *(c.link for c in callers if c.waiting_until is None)]
        try:
            ready, message = select(links, timeout=_next_deadline(callers))
        except (ReceiveTimeout, NoLiveChannels, ClosedEndpointError):
            return  # a link closed under us (the kernel shutting down): look again
        if ready is not self._wake_rx:
            caller = next(c for c in callers if c.link is ready)
            caller.waiting_until = time.monotonic() + _bounded(message.wait)
            self._put_through_waiting([caller])

    def _put_through_waiting(self, callers: list[_Caller]) -> None:
        now = time.monotonic()
        for caller in callers:
            if caller.waiting_until is None:
                continue
            answer = self._put_through(caller)
            if answer is None and now < caller.waiting_until:
                continue  # the service is down: wait for its next incarnation
            caller.waiting_until = None
            with contextlib.suppress(ChannelError):
                caller.link.send(answer or Unavailable(_down(caller.service.name)))

    def _put_through(self, caller: _Caller) -> Connected | None:
        service = caller.service
        with self._lock:
            link = service.link
        if link is None or not _usable(link):
            return None
        exporter, importer = channel(service.contract)
        try:
            link.send(Incoming(exporter, caller.name), timeout=HANDOFF_TIMEOUT)
        except (ChannelError, TimeoutError):
            exporter.close()
            importer.close()
            return None
        return Connected(importer)

    def _close_links(self) -> None:
        with self._lock:
            links = [c.link for c in self._tables.callers]
            links += [s.link for s in self._tables.services.values() if s.link is not None]
            self._tables = _Tables()
        for link in links:
            link.close()
        self._wake_rx.close()


def _bounded(wait: float) -> float:
    """A caller's wait, as the switchboard honours it: 0 to ``MAX_WAIT`` seconds.

    A caller may be sandboxed code: an infinite, NaN or huge wait must not
    break the switchboard's own timeouts (and so every other caller's).
    """
    if not math.isfinite(wait) or wait <= 0:
        return 0.0
    return min(wait, MAX_WAIT)


def _usable(link: Endpoint) -> bool:
    """Whether a caller's link can still carry a call (not closed here, peer not gone)."""
    return not link.closed and not link.peer_gone


def _next_deadline(callers: list[_Caller]) -> float | None:
    """Seconds until the first waiting caller must be answered (None: nobody waits).

    A restarted service's new listener wakes the switchboard at once; this
    deadline only ends a wait for a service that does not come back.
    """
    deadlines = [c.waiting_until for c in callers if c.waiting_until is not None]
    if not deadlines:
        return None
    return max(0.0, min(deadlines) - time.monotonic())


def _down(service: str) -> str:
    return f"service {service} is not running (no incarnation came up in time)"
