"""The processes and contracts the benchmarks run, in one light module.

A ``process`` domain imports a spawned function's module by name, so these
live at module level, and the module imports nothing but sipkernel and
msgspec: it is preloaded into the zygote (``Kernel(preload=...)``), as the
fork server baseline preloads it too, and costs nothing to import in a child.
"""

from __future__ import annotations

import time

import msgspec

import sipkernel as sk

# -- round trips ------------------------------------------------------------------------


class Ping(msgspec.Struct, frozen=True, tag=True):
    seq: int


class Pong(msgspec.Struct, frozen=True, tag=True):
    seq: int


ECHO = sk.Contract("BenchEcho", "state Ready: Ping? -> Pong! -> Ready;", [Ping, Pong])
"""Exporter: the echo server."""


class Go(msgspec.Struct, frozen=True, tag=True):
    round_trips: int


class Took(msgspec.Struct, frozen=True, tag=True):
    ns: int


DRIVE = sk.Contract("BenchDrive", "state Idle: Go? -> Took! -> Idle;", [Go, Took])
"""Exporter: a client process that times ``Go.round_trips`` round trips on request."""


def echo_server(ep: sk.Endpoint) -> None:
    """Answer every ``Ping`` with a ``Pong`` until the client goes away."""
    try:
        while True:
            ping = ep.recv()
            ep.send(Pong(ping.seq))
    except sk.BrokenChannelError:
        return


async def echo_server_async(ep: sk.Endpoint) -> None:
    try:
        while True:
            ping = await ep.arecv()
            await ep.asend(Pong(ping.seq))
    except sk.BrokenChannelError:
        return


async def echo_client_async(drive: sk.Endpoint, echo: sk.Endpoint) -> None:
    """Time round trips to the echo server whenever the kernel says ``Go``."""
    try:
        while True:
            go = await drive.arecv()
            start = time.perf_counter_ns()
            for seq in range(go.round_trips):
                await echo.asend(Ping(seq))
                await echo.arecv()
            await drive.asend(Took(time.perf_counter_ns() - start))
    except sk.BrokenChannelError:
        return


# -- start-up ---------------------------------------------------------------------------


class Ready(msgspec.Struct, frozen=True, tag=True):
    pid: int


READY = sk.Contract("BenchReady", "state Start: Ready! -> Done; state Done;", [Ready])
"""Exporter: a freshly spawned process, saying it runs."""


async def replier(ep: sk.Endpoint) -> None:
    """Say ``Ready`` once and end."""
    await ep.asend(Ready(sk.current().pid))


def noop() -> None:
    """The baselines' thread and child body."""


# -- idle processes ---------------------------------------------------------------------


class Poke(msgspec.Struct, frozen=True, tag=True):
    pass


IDLE = sk.Contract("BenchIdle", "state Open: Poke? -> Open;", [Poke])
"""Exporter: an idle process that waits for a ``Poke`` that never comes."""


async def idle(ep: sk.Endpoint) -> None:
    """Wait on the channel until the kernel closes its end."""
    try:
        while True:
            await ep.arecv()
    except sk.BrokenChannelError:
        return
