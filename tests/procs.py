"""Contracts and process functions for the kernel and domain tests.

Everything here is module-level so that a ``process`` domain (a fresh
interpreter forked from the zygote) can import it by name: the test
directory is on ``sys.path`` (pytest's rootdir insertion), which the zygote
inherits through ``PYTHONPATH``.

Naming: ``a``-prefixed functions are the ``async def`` twins of the plain
ones. Process functions report back to the test over a ``REPORT`` channel
instead of sharing anything with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
import time

import msgspec

import sipkernel as sk

# -- messages and contracts --------------------------------------------------------


class Ping(msgspec.Struct, tag=True):
    n: int


class Pong(msgspec.Struct, tag=True):
    n: int


class Stranger(msgspec.Struct, tag=True):
    """A message that belongs to no contract."""

    n: int = 0


ECHO = sk.Contract("Echo", "state Start: Ping? -> Pong! -> Start;", [Ping, Pong])
"""Exporter: the echo server. Importer: the client."""


class Request(msgspec.Struct, tag=True):
    body: str


class Reply(msgspec.Struct, tag=True):
    body: str


class Failure(msgspec.Struct, tag=True):
    reason: str


SERVICE = sk.Contract(
    "Service", "state Start: Request? -> (Reply! or Failure!) -> Start;", [Request, Reply, Failure]
)


class Item(msgspec.Struct, tag=True):
    n: int
    data: bytes = b""


STREAM = sk.Contract("Stream", "state Open: Item? -> Open;", [Item])
"""One-way: the importer sends items, the exporter receives them."""


class Report(msgspec.Struct, tag=True):
    ok: bool = True
    count: int = 0
    text: str = ""
    kind: str = ""
    numbers: list[int] = []


REPORT = sk.Contract("Report", "state Open: Report? -> Open;", [Report])
"""One-way: a process (importer) tells the test (exporter) what it saw."""


class Carry(msgspec.Struct, tag=True):
    ep: sk.Endpoint
    label: str = ""


CARRIER = sk.Contract("Carrier", "state Open: Carry? -> Open;", [Carry])
"""One-way: moves endpoints from the importer to the exporter."""


def report_channel() -> tuple[sk.Endpoint, sk.Endpoint]:
    """(test's receiving end, process's sending end)."""
    return sk.channel(REPORT)


# -- servers -------------------------------------------------------------------------


def echo(ep: sk.Endpoint) -> None:
    """Answer every Ping with a Pong of the same number until the client leaves."""
    while True:
        try:
            ping = ep.recv()
        except sk.BrokenChannelError:
            return
        ep.send(Pong(ping.n))


async def aecho(ep: sk.Endpoint) -> None:
    while True:
        try:
            ping = await ep.arecv()
        except sk.BrokenChannelError:
            return
        await ep.asend(Pong(ping.n))


def _answer(request: Request) -> Reply | Failure:
    if request.body == "fail":
        return Failure("asked to fail")
    return Reply(request.body.upper())


def serve(ep: sk.Endpoint) -> None:
    while True:
        try:
            request = ep.recv()
        except sk.BrokenChannelError:
            return
        ep.send(_answer(request))


async def aserve(ep: sk.Endpoint) -> None:
    while True:
        try:
            request = await ep.arecv()
        except sk.BrokenChannelError:
            return
        await ep.asend(_answer(request))


# -- streams ---------------------------------------------------------------------------


def _check_sequence(numbers: list[int]) -> Report:
    in_order = numbers == list(range(len(numbers)))
    return Report(ok=in_order, count=len(numbers), text="" if in_order else "out of order")


def count_items(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    """Receive Items until the sender closes; report whether 0..n-1 came in order."""
    numbers: list[int] = []
    kind = ""
    try:
        while True:
            numbers.append(ep.recv().n)
    except sk.BrokenChannelError as exc:
        kind = exc.reason.kind.value if exc.reason is not None else "none"
    result = _check_sequence(numbers)
    result.kind = kind
    report.send(result)


async def acount_items(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    numbers: list[int] = []
    kind = ""
    try:
        while True:
            numbers.append((await ep.arecv()).n)
    except sk.BrokenChannelError as exc:
        kind = exc.reason.kind.value if exc.reason is not None else "none"
    result = _check_sequence(numbers)
    result.kind = kind
    await report.asend(result)


def send_items(ep: sk.Endpoint, count: int) -> None:
    """Send Items 0..count-1, then return (which closes the endpoint)."""
    for n in range(count):
        ep.send(Item(n))


async def asend_items(ep: sk.Endpoint, count: int) -> None:
    for n in range(count):
        await ep.asend(Item(n))


# -- failing and stubborn processes ----------------------------------------------------


def fail(message: str) -> None:
    raise ValueError(message)


async def afail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


def fail_after_ping(ep: sk.Endpoint) -> None:
    """Receive one Ping, then raise (the endpoint closes with EXCEPTION)."""
    ep.recv()
    raise RuntimeError("boom after ping")


def block_in_recv(ep: sk.Endpoint) -> None:
    """Receive forever (only a kill or the peer's exit ends this)."""
    while True:
        ep.recv()


async def ablock_in_recv(ep: sk.Endpoint) -> None:
    while True:
        await ep.arecv()


def ready_then_block(ready: sk.Endpoint, ep: sk.Endpoint) -> None:
    """Say so when running, then receive forever."""
    ready.send(Report(text="ready"))
    while True:
        ep.recv()


async def aready_then_block(ready: sk.Endpoint) -> None:
    await ready.asend(Report(text="ready"))
    await asyncio.Event().wait()


def ready_then_spin(ready: sk.Endpoint) -> None:
    """Say so when running, then loop in Python bytecode forever."""
    ready.send(Report(text="ready"))
    n = 0
    while True:
        n += 1


def ready_then_sleep_stubbornly(ready: sk.Endpoint) -> None:
    """Sleep in C forever and swallow every exception a kill raises."""
    ready.send(Report(text="ready"))
    while True:
        with contextlib.suppress(BaseException):
            time.sleep(1000)


def ready_then_ignore_shutdown(ready: sk.Endpoint) -> None:
    """Swallow every kill in a Python loop (only the domain's SIGKILL ends it)."""
    ready.send(Report(text="ready"))
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass


def segfault(ready: sk.Endpoint) -> None:
    ready.send(Report(text="ready"))
    ctypes.string_at(0)


def exit_3(ready: sk.Endpoint) -> None:
    ready.send(Report(text="ready"))
    os._exit(3)


def hog_memory(ready: sk.Endpoint) -> None:
    """Allocate until the domain's memory limit stops it."""
    ready.send(Report(text="ready"))
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))


# -- identity, links, trapping ----------------------------------------------------------


def whoami(report: sk.Endpoint) -> None:
    ctx = sk.current()
    report.send(Report(count=ctx.pid, text=ctx.name, kind=ctx.isolation(), numbers=[os.getpid()]))


async def awhoami(report: sk.Endpoint) -> None:
    ctx = sk.current()
    await report.asend(
        Report(count=ctx.pid, text=ctx.name, kind=ctx.isolation(), numbers=[os.getpid()])
    )


def trap_one(report: sk.Endpoint) -> None:
    """With trap_exits=True: report the first exit signal, then return normally."""
    signals = sk.current().exit_signals
    assert signals is not None
    report.send(Report(text="ready"))
    signal_ = signals.recv()
    report.send(Report(count=signal_.pid, text=signal_.name, kind=signal_.reason.kind.value))


def return_now() -> None:
    return None


def sleep_briefly_forever() -> None:
    """Block in a Python-level wait loop that a kill interrupts."""
    while True:
        time.sleep(0.01)


# -- contract violations ----------------------------------------------------------------


def violate_then_report(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    """Send a Pong as the importer (a forbidden message) and report what happened."""
    try:
        ep.send(Pong(1))
    except sk.ProtocolViolation as exc:
        report.send(Report(ok=True, text=str(exc), kind="ProtocolViolation"))
        return
    report.send(Report(ok=False, text="no violation"))


def expect_broken(ep: sk.Endpoint, report: sk.Endpoint) -> None:
    """Receive until the channel breaks; report the reason's kind and message."""
    try:
        while True:
            ep.recv()
    except sk.BrokenChannelError as exc:
        reason = exc.reason
        report.send(
            Report(
                kind=reason.kind.value if reason else "none",
                text=(reason.traceback or reason.message) if reason else "",
            )
        )


# -- moving endpoints ------------------------------------------------------------------


def adopt_and_echo(carrier: sk.Endpoint) -> None:
    """Receive endpoints inside Carry messages and run an echo server on each, in turn."""
    while True:
        try:
            carry = carrier.recv()
        except sk.BrokenChannelError:
            return
        echo(carry.ep)


async def aadopt_and_echo(carrier: sk.Endpoint) -> None:
    while True:
        try:
            carry = await carrier.arecv()
        except sk.BrokenChannelError:
            return
        await aecho(carry.ep)


def export_server_end(
    carrier: sk.Endpoint, report: sk.Endpoint, pings: int, hold: sk.Endpoint | None = None
) -> None:
    """Make an Echo channel, queue Ping(0) at its server end, send that end away,
    then ping ``pings`` times on the client end and report what came back.
    With ``hold``: stay (keeping the client end) until ``hold``'s peer leaves.
    """
    server, client = sk.channel(ECHO)
    client.send(Ping(0))  # queued at the server end before it moves
    carrier.send(Carry(server, label="echo server end"))
    moved = "not raised"
    try:
        server.recv(timeout=0)
    except sk.EndpointMovedError:
        moved = "EndpointMovedError"
    numbers = [client.recv().n]
    for n in range(1, pings):
        client.send(Ping(n))
        numbers.append(client.recv().n)
    report.send(Report(ok=numbers == list(range(pings)), count=len(numbers), text=moved))
    if hold is not None:
        with contextlib.suppress(sk.BrokenChannelError):
            hold.recv()


async def aexport_server_end(
    carrier: sk.Endpoint, report: sk.Endpoint, pings: int, hold: sk.Endpoint | None = None
) -> None:
    server, client = sk.channel(ECHO)
    await client.asend(Ping(0))
    await carrier.asend(Carry(server, label="echo server end"))
    moved = "not raised"
    try:
        await server.arecv(timeout=0)
    except sk.EndpointMovedError:
        moved = "EndpointMovedError"
    numbers = [(await client.arecv()).n]
    for n in range(1, pings):
        await client.asend(Ping(n))
        numbers.append((await client.arecv()).n)
    await report.asend(Report(ok=numbers == list(range(pings)), count=len(numbers), text=moved))
    if hold is not None:
        with contextlib.suppress(sk.BrokenChannelError):
            await hold.arecv()


def hold_until_told(ready: sk.Endpoint, ep: sk.Endpoint) -> None:
    """Report ready, then wait for one message (or the peer's exit) and return."""
    ready.send(Report(text="ready"))
    with contextlib.suppress(sk.BrokenChannelError):
        ep.recv()


# -- select ----------------------------------------------------------------------------


def select_and_report(eps: list[sk.Endpoint], report: sk.Endpoint, timeout: float) -> None:
    """select() until NoLiveChannels; report the Items' numbers in arrival order."""
    numbers: list[int] = []
    kind = ""
    try:
        while True:
            _, msg = sk.select(eps, timeout=timeout)
            numbers.append(msg.n)
    except sk.NoLiveChannels:
        kind = "NoLiveChannels"
    except sk.ReceiveTimeout:
        kind = "ReceiveTimeout"
    report.send(Report(count=len(numbers), kind=kind, numbers=sorted(numbers)))


async def aselect_and_report(eps: list[sk.Endpoint], report: sk.Endpoint, timeout: float) -> None:
    numbers: list[int] = []
    kind = ""
    try:
        while True:
            _, msg = await sk.aselect(eps, timeout=timeout)
            numbers.append(msg.n)
    except sk.NoLiveChannels:
        kind = "NoLiveChannels"
    except sk.ReceiveTimeout:
        kind = "ReceiveTimeout"
    await report.asend(Report(count=len(numbers), kind=kind, numbers=sorted(numbers)))


def hold_then_drain(report: sk.Endpoint, ep: sk.Endpoint, go: sk.Endpoint) -> None:
    """Report ready; wait for one Item on ``go``; then receive Items on ``ep`` until
    the sender leaves, and report their numbers (in arrival order).
    """
    report.send(Report(text="ready"))
    go.recv()
    numbers: list[int] = []
    try:
        while True:
            numbers.append(ep.recv().n)
    except sk.BrokenChannelError:
        pass
    report.send(Report(ok=numbers == sorted(numbers), count=len(numbers), numbers=numbers))


async def ahold_then_drain(report: sk.Endpoint, ep: sk.Endpoint, go: sk.Endpoint) -> None:
    await report.asend(Report(text="ready"))
    await go.arecv()
    numbers: list[int] = []
    try:
        while True:
            numbers.append((await ep.arecv()).n)
    except sk.BrokenChannelError:
        pass
    await report.asend(Report(ok=numbers == sorted(numbers), count=len(numbers), numbers=numbers))


# -- codec round trips -----------------------------------------------------------------


class Inner(msgspec.Struct):
    a: int
    b: str
    tags: list[str] = []


class Rich(msgspec.Struct, tag=True):
    """A message with a bit of everything msgspec can carry."""

    i: int
    f: float
    s: str
    b: bytes
    flag: bool
    maybe: int | None
    items: list[int]
    mapping: dict[str, list[str]]
    inner: Inner
    inners: list[Inner]
    pair: tuple[int, str]


MIRROR = sk.Contract("Mirror", "state Start: Rich? -> Rich! -> Start;", [Rich])
"""The exporter answers every Rich with a Rich (the mirror sends back what it got)."""


def mirror(ep: sk.Endpoint) -> None:
    while True:
        try:
            message = ep.recv()
        except sk.BrokenChannelError:
            return
        ep.send(message)


async def amirror(ep: sk.Endpoint) -> None:
    while True:
        try:
            message = await ep.arecv()
        except sk.BrokenChannelError:
            return
        await ep.asend(message)


class Bundle(msgspec.Struct, tag=True):
    eps: list[sk.Endpoint]
    names: dict[str, int] = {}


BUNDLE = sk.Contract("Bundle", "state Open: Bundle? -> Open;", [Bundle])


def adopt_bundle_and_echo(carrier: sk.Endpoint) -> None:
    """Receive one Bundle of Echo server ends; serve each in turn."""
    bundle = carrier.recv()
    for ep in bundle.eps:
        echo(ep)


def mutate_and_report(data: dict[str, list[int]], report: sk.Endpoint) -> None:
    """Change the argument in place and report what this process saw."""
    data["seen"].append(1)
    report.send(Report(numbers=data["seen"], count=os.getpid()))


def spawn_from_inside(report: sk.Endpoint) -> None:
    """A process has no kernel: report what it has for spawning."""
    ctx = sk.current()
    report.send(Report(ok=not hasattr(ctx, "spawn") and not hasattr(ctx, "kernel")))


async def aready_then_recv(ready: sk.Endpoint, ep: sk.Endpoint) -> None:
    """Say so when running, then receive forever (awaiting)."""
    await ready.asend(Report(text="ready"))
    while True:
        await ep.arecv()


async def hog_the_loop(ready: sk.Endpoint, go: sk.Endpoint) -> None:
    """Block the domain's event loop thread (a blocking recv in async code) until told."""
    await ready.asend(Report(text="ready"))
    go.recv()


CHURN_STOP = threading.Event()
"""Lets a test end ``churn_endpoints`` threads that a lost kill left running (local only)."""


def churn_endpoints(ready: sk.Endpoint) -> None:
    """Make and drop channels in a loop: endpoint finalisers run all the time."""
    ready.send(Report(text="ready"))
    while not CHURN_STOP.is_set():
        server, client = sk.channel(ECHO)
        del server, client
