"""Processes and contracts of the small applications the manifest tests declare.

Module-level, so every domain kind (and the zygotes) can import them by name;
the tests directory is on ``sys.path`` (see conftest).
"""

from __future__ import annotations

import os
import signal

import msgspec

import sipkernel as sk
from sipkernel import app
from sipkernel.broker import Directory


class Ping(msgspec.Struct, frozen=True, tag=True):
    n: int


class Pong(msgspec.Struct, frozen=True, tag=True):
    n: int
    served: int
    """How many pings this incarnation of the server has answered, this one included."""


ECHO = sk.Contract("AppEcho", "state Idle: Ping? -> Busy; state Busy: Pong! -> Idle;", [Ping, Pong])
OTHER = sk.Contract("AppOther", "state Idle: Ping? -> Idle;", [Ping])

NOT_A_CONTRACT = 42


def server(clients: sk.Endpoint, crash_after: int = 0, crash: str = "raise") -> None:
    """Answer pings on every connection, one connection at a time.

    With ``crash_after`` > 0 the incarnation dies after answering that many:
    by raising, or (``crash = "kill"``) by SIGKILL to its own OS process.
    """
    served = 0
    while True:
        connection = app.accept(clients)
        try:
            while True:
                ping = connection.recv()
                if crash_after and served == crash_after:
                    _crash(crash)
                served += 1
                connection.send(Pong(ping.n, served))
        except sk.BrokenChannelError:
            continue


def _crash(how: str) -> None:
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError("crashing on purpose")


def client(server: sk.Endpoint, count: int, label: str = "client") -> None:
    """Send ``count`` numbered pings, reconnecting whenever the server restarts."""
    connection = app.connect(server)
    reconnects = 0
    n = 0
    while n < count:
        try:
            connection.send(Ping(n))
            pong = connection.recv()
        except sk.BrokenChannelError:
            connection = app.connect(server, timeout=20)
            reconnects += 1
            continue  # send ping n again to the new incarnation
        if pong.n != n:
            raise AssertionError(f"ping {n} answered as {pong.n}")
        n += 1
    where = sk.current().isolation()
    print(f"{label}: {count} pings answered, {reconnects} reconnects, in {where}", flush=True)


def lonely_client(server: sk.Endpoint, wait: float) -> None:
    """Dial a service that is not there; exit normally on ServiceUnavailable."""
    try:
        app.connect(server, timeout=wait)
    except app.ServiceUnavailable as gone:
        print(f"unavailable: {gone}", flush=True)
        return
    raise AssertionError("connected to a service that should not be running")


def quitter(clients: sk.Endpoint) -> None:
    """A server that ends at once (and, being temporary, stays down)."""


def reader(files: sk.Endpoint, name: str) -> None:
    """Print the first line of ``name`` from a granted directory."""
    text = Directory(files).read(name).decode()
    print(f"read: {text.splitlines()[0]}", flush=True)


def idler(clients: sk.Endpoint) -> None:
    """A service that accepts nothing and runs until stopped."""
    app.accept(clients)


def two_args(first: int, second: int) -> None:
    """A process with two required arguments, for the parameter rules."""


def prepare(data_dir: os.PathLike[str]) -> None:
    """Write the file the ``reader`` test reads."""
    with open(os.path.join(data_dir, "hello.txt"), "w") as f:
        f.write("hello from the data directory\nsecond line\n")


def broken_prepare(data_dir: os.PathLike[str]) -> None:
    """A ``prepare`` hook that fails, as one whose disk is full would."""
    raise OSError(28, "No space left on device")
