"""The processes the per-kind table runs inside each domain, in one light module.

A domain imports a spawned function's module by name, so these live at module
level, and the module imports nothing but asyncio, time, msgspec, sipkernel
and the suite's own light ``_procs``: it is preloaded into the process zygote
and imported inside each sandbox after its seccomp filter is on.

Three processes share one domain: an *agent* that times what it is asked to
(``Measure``) and answers with the elapsed nanoseconds (``Measured``), a
*yield partner* that takes turns with it on the domain's event loop, and the
suite's echo server (``_procs.echo_server_async``) for round trips. All three
are ``async def``: sipkernel's cheapest processes are tasks on their domain's
loop, which is where a hand-off between two of them can be timed.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

import sipkernel as sk

from ._procs import Go, Ping, Took

API_CALL = "api"
YIELD = "yield"
PING_PONG = "ping"


class Measure(msgspec.Struct, frozen=True, tag=True):
    """Time ``n`` repetitions of ``operation`` (``API_CALL``, ``YIELD`` or ``PING_PONG``)."""

    operation: str
    n: int


class Measured(msgspec.Struct, frozen=True, tag=True):
    """Nanoseconds the agent's clock saw for the whole request."""

    ns: int


AGENT = sk.Contract(
    "BenchKindAgent", "state Idle: Measure? -> Measured! -> Idle;", [Measure, Measured]
)
"""Exporter: the agent, timing what the kernel asks."""

TURNS = sk.Contract("BenchKindTurns", "state Idle: Go? -> Took! -> Idle;", [Go, Took])
"""Exporter: the yield partner; ``Go(n)`` asks for ``n`` turns, ``Took(0)`` says it starts."""


async def agent(drive: sk.Endpoint, partner: sk.Endpoint, echo: sk.Endpoint) -> None:
    """Answer each ``Measure`` with the time its repetitions took, until the kernel leaves."""
    try:
        while True:
            request: Measure = await drive.arecv()
            ns = await _timed(request, partner, echo)
            await drive.asend(Measured(ns))
    except sk.BrokenChannelError:
        return


async def _timed(request: Measure, partner: sk.Endpoint, echo: sk.Endpoint) -> int:
    if request.operation == API_CALL:
        return api_calls(request.n)
    if request.operation == YIELD:
        await partner.asend(Go(request.n))
        await partner.arecv()  # the partner runs: every yield from now on hands over to it
        return await yields(request.n)
    if request.operation == PING_PONG:
        return await round_trips(echo, request.n)
    raise ValueError(f"unknown operation {request.operation!r}")


def api_calls(n: int) -> int:
    """Nanoseconds for ``n`` calls of ``sk.current().pid`` (the loop's own cost included)."""
    start = time.perf_counter_ns()
    for _ in range(n):
        sk.current().pid  # noqa: B018 - the call is what is timed
    return time.perf_counter_ns() - start


async def yields(n: int) -> int:
    """Nanoseconds for ``n`` turns of ``await asyncio.sleep(0)`` while the partner takes its own."""
    start = time.perf_counter_ns()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.perf_counter_ns() - start


async def round_trips(echo: sk.Endpoint, n: int) -> int:
    """Nanoseconds for ``n`` ``Ping``/``Pong`` round trips with the echo server."""
    start = time.perf_counter_ns()
    for seq in range(n):
        await echo.asend(Ping(seq))
        await echo.arecv()
    return time.perf_counter_ns() - start


async def yield_partner(turns: sk.Endpoint) -> None:
    """On each ``Go(n)``: say ``Took(0)``, then yield ``n`` times; until the agent leaves."""
    try:
        while True:
            go: Go = await turns.arecv()
            await turns.asend(Took(0))
            for _ in range(go.round_trips):
                await asyncio.sleep(0)
    except sk.BrokenChannelError:
        return
