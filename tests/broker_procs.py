"""Process functions that hold broker capabilities, and a tiny application service.

The functions run in ``sandbox`` domains (so they are module-level and
importable by name) and tell the test what happened through a ``REPORT``
channel: one ``Report`` per attempt, its text made by :func:`attempt`.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable

import msgspec

import sipkernel as sk
from procs import Carry, Report
from sipkernel.broker import (
    CapabilityRefused,
    Directory,
    File,
    Service,
    TcpConnection,
    WriteFile,
    service_contract,
)

TIMEOUT = 30.0
"""Seconds a capability call may take before the test is considered stuck."""


def attempt(action: Callable[[], object]) -> str:
    """Run ``action``; ``ok <result>`` or ``<ExceptionType> <detail>``.

    For an OSError the detail is its errno name; a ``CapabilityRefused`` also
    says that it is a ``PermissionError``, then gives its reason.
    """
    try:
        result = action()
    except CapabilityRefused as exc:
        return f"CapabilityRefused permission={isinstance(exc, PermissionError)} {exc.reason}"
    except OSError as exc:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    except sk.BrokenChannelError as exc:
        reason = exc.reason.describe() if exc.reason is not None else ""
        return f"BrokenChannelError {reason}"
    except Exception as exc:
        return type(exc).__name__
    return f"ok {result!r}"


def _direct_read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- directories --------------------------------------------------------------------


def read_granted(ep: sk.Endpoint, host_path: str, report: sk.Endpoint) -> None:
    """Open ``host_path`` directly (which must fail), then list, stat and read through ``ep``."""
    report.send(Report(text=attempt(lambda: _direct_read(host_path))))
    data = Directory(ep, timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: [e.name for e in data.list()])))
    report.send(Report(text=attempt(lambda: data.stat("notes/a.txt").size)))
    report.send(Report(text=attempt(lambda: data.read("notes/a.txt"))))
    report.send(Report(text=attempt(lambda: data.read("notes/a.txt", offset=2, size=3))))
    report.send(Report(text=attempt(lambda: data.read("inner-link"))))


def read_each(ep: sk.Endpoint, paths: list[str], report: sk.Endpoint) -> None:
    """Read each path through the directory capability; one report per path."""
    data = Directory(ep, timeout=TIMEOUT)
    for path in paths:
        report.send(Report(text=attempt(lambda path=path: data.read(path))))


def list_each(ep: sk.Endpoint, paths: list[str], report: sk.Endpoint) -> None:
    """List each path through the directory capability; one report per path."""
    data = Directory(ep, timeout=TIMEOUT)
    for path in paths:
        report.send(Report(text=attempt(lambda path=path: len(data.list(path)))))


def write_through_directory(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    """Ask the read-only directory to write (its contract allows asking, never doing)."""
    data = Directory(ep, timeout=TIMEOUT)
    request = WriteFile("notes/a.txt", b"overwritten", by=data.by)
    report.send(Report(text=attempt(lambda: data.call(request))))


def read_large(ep: sk.Endpoint, rel: str, report: sk.Endpoint) -> None:
    """Read a file bigger than a message; report its length and a checksum."""
    content = Directory(ep, timeout=TIMEOUT).read(rel)
    report.send(Report(count=len(content), numbers=[sum(content) % 65521]))


def read_then_pass_on(ep: sk.Endpoint, carrier: sk.Endpoint, report: sk.Endpoint) -> None:
    """Read once, send the capability away in a message, then try to read again."""
    data = Directory(ep, timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: data.read("notes/a.txt"))))
    carrier.send(Carry(ep, label="directory"))
    report.send(Report(text=attempt(lambda: data.read("notes/a.txt"))))


def adopt_and_read(carrier: sk.Endpoint, report: sk.Endpoint) -> None:
    """Receive a directory capability in a message and read through it."""
    carry = carrier.recv(timeout=TIMEOUT)
    data = Directory(carry.ep, timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: data.read("notes/a.txt")), kind=carry.label))


def time_reads(ep: sk.Endpoint, rel: str, count: int, report: sk.Endpoint) -> None:
    """Read a small file ``count`` times; report the mean microseconds per read."""
    data = Directory(ep, timeout=TIMEOUT)
    data.read(rel)  # the first call pays for warming up
    started = time.perf_counter()
    for _ in range(count):
        data.read(rel)
    elapsed = time.perf_counter() - started
    report.send(Report(count=count, text=f"{elapsed / count * 1e6:.1f}"))


# -- one file -----------------------------------------------------------------------


def write_report(ep: sk.Endpoint, host_path: str, report: sk.Endpoint) -> None:
    """Write, append, overwrite, read, truncate the one granted file; try its path directly."""
    report.send(Report(text=attempt(lambda: _direct_read(host_path))))
    out = File(ep, timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: out.write(b"hello"))))
    report.send(Report(text=attempt(lambda: out.write(b" world"))))
    report.send(Report(text=attempt(lambda: out.write(b"J", offset=0))))
    report.send(Report(text=attempt(out.read)))
    report.send(Report(text=attempt(lambda: out.read(offset=6, size=3))))
    report.send(Report(text=attempt(lambda: out.truncate(5))))
    report.send(Report(text=attempt(out.size)))


def write_denied(ep: sk.Endpoint, size: int, report: sk.Endpoint) -> None:
    """Try to write ``size`` bytes, then to truncate, then read what is there."""
    out = File(ep, timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: out.write(b"x" * size))))
    report.send(Report(text=attempt(lambda: out.truncate(1 << 30))))
    report.send(Report(text=attempt(out.read)))


def write_large(ep: sk.Endpoint, size: int, report: sk.Endpoint) -> None:
    """Write ``size`` bytes (more than one message holds) and read them back."""
    out = File(ep, timeout=TIMEOUT)
    content = bytes(range(256)) * (size // 256)
    written = out.write(content)
    report.send(Report(ok=out.read() == content, count=written))


# -- TCP ------------------------------------------------------------------------------


def _direct_connect(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5):
        return "connected"


def tcp_echo_twice(
    ep: sk.Endpoint, host: str, port: int, go: sk.Endpoint, report: sk.Endpoint
) -> None:
    """Try ``host:port`` directly, then echo through the capability; after ``go``, again."""
    report.send(Report(text=attempt(lambda: _direct_connect(host, port))))
    conn = TcpConnection(ep, timeout=TIMEOUT)

    def echo(data: bytes) -> bytes:
        conn.send(data)
        return conn.recv(100, timeout=TIMEOUT)

    report.send(Report(text=attempt(lambda: (conn.connect(), echo(b"ping")))))
    go.recv(timeout=TIMEOUT)
    report.send(Report(text=attempt(lambda: echo(b"again"))))


def tcp_until_eof(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    """Send a line, read until the server closes; report everything received."""
    with TcpConnection(ep, timeout=TIMEOUT) as conn:
        conn.send(b"line\n")
        received = b""
        while chunk := conn.recv(4096, timeout=TIMEOUT):
            received += chunk
    report.send(Report(text=received.decode()))


# -- an application service: one user's view of an accounts table --------------------


class GetBalance(msgspec.Struct, frozen=True, tag=True):
    user: str


class Balance(msgspec.Struct, frozen=True, tag=True):
    user: str
    amount: int


ACCOUNTS = service_contract("Accounts", requests=[GetBalance], replies=[Balance])

TABLE = {"alice": 120, "bob": 75}
"""The "database": it lives in the kernel; sandboxes see rows only through the service."""


def balance_of(request: GetBalance, user: str) -> Balance:
    """The service handler: ``user``'s own row, and nobody else's."""
    if request.user != user:
        raise CapabilityRefused(f"only {user}'s account is visible")
    if request.user not in TABLE:
        raise FileNotFoundError(errno.ENOENT, "no such account")
    return Balance(request.user, TABLE[request.user])


def broken_handler(request: GetBalance) -> Balance:
    """A handler with a bug."""
    raise ValueError(f"cannot look up {request.user}")


def wrong_reply_handler(request: GetBalance) -> object:
    """A handler that answers with what its contract does not allow."""
    return GetBalance(request.user)


def ask_balances(ep: sk.Endpoint, users: list[str], report: sk.Endpoint) -> None:
    """Ask the accounts service for each user's balance; one report per user."""
    accounts = Service(ep, timeout=TIMEOUT)
    for user in users:
        report.send(Report(text=attempt(lambda user=user: accounts.call(GetBalance(user)))))
