"""Round-trip benchmarks: ``rtt_local`` and ``rtt_process_{same,cross}_core``.

* ``rtt_local``: a client and a server, both ``async def`` processes of the
  ``local`` domain, exchange ``Ping``/``Pong`` over a contract-checked
  channel; the client times itself on the domain's loop. Baseline: two
  asyncio tasks on one loop over ``asyncio.Queue``.
* ``rtt_process_*``: the kernel's thread sends ``Ping`` to a ``def`` server in
  a ``process`` domain and waits for ``Pong``. Baseline:
  ``multiprocessing.Pipe`` send/recv with a forked echo child. Both run with
  the parent pinned to the first CPU and the child on the same CPU or on the
  second one.

The processes and contracts live in ``_procs`` (importable by a ``process``
domain); this module holds the baselines and the timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import sipkernel as sk

from ._harness import (
    BenchResult,
    Progress,
    Settings,
    compare,
    interleave,
    median,
    per_op_us,
    pin_os_process,
    pinned_thread,
    usable_cpus,
)
from ._procs import (
    DRIVE,
    ECHO,
    Go,
    Ping,
    Took,
    echo_client_async,
    echo_server,
    echo_server_async,
)

# -- baselines -------------------------------------------------------------------------


async def _queue_round_trips(n: int) -> int:
    """Nanoseconds for ``n`` round trips between two tasks over ``asyncio.Queue``."""
    requests: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue(64)
    replies: asyncio.Queue[tuple[str, int]] = asyncio.Queue(64)

    async def server() -> None:
        while (message := await requests.get()) is not None:
            await replies.put(("pong", message[1]))

    task = asyncio.create_task(server())
    start = time.perf_counter_ns()
    for seq in range(n):
        await requests.put(("ping", seq))
        await replies.get()
    elapsed = time.perf_counter_ns() - start
    await requests.put(None)
    await task
    return elapsed


def pipe_echo(conn: Connection) -> None:
    """The baseline's forked child: echo until told ``None``."""
    while (message := conn.recv()) is not None:
        conn.send(("pong", message[1]))


# -- rtt_local -------------------------------------------------------------------------


def run_local(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(5000, 300)
    loop = asyncio.new_event_loop()
    try:
        with sk.Kernel() as kernel:
            drive, drive_remote = _local_client(kernel)

            def sipkernel_round() -> float:
                drive.send(Go(n))
                took: Took = drive.recv(timeout=60)
                return took.ns / n / 1000.0

            def baseline_round() -> float:
                return loop.run_until_complete(_queue_round_trips(n)) / n / 1000.0

            progress(f"rtt_local: {settings.rounds} rounds x {n} round trips")
            samples = interleave(
                [("sipkernel", sipkernel_round), ("baseline", baseline_round)], settings.rounds
            )
            drive.close()
            drive_remote.join(10)
    finally:
        loop.close()
    return [
        BenchResult(
            name="rtt_local",
            unit="us",
            value=median(samples["sipkernel"]),
            baseline="asyncio.Queue, two tasks on one loop",
            baseline_value=median(samples["baseline"]),
            target=1.0,
            placement="unpinned; both ends on one thread (the local domain's loop)",
            notes=(
                f"{compare(samples['sipkernel'], samples['baseline'])}; {n} round trips per round"
            ),
        )
    ]


def _local_client(kernel: sk.Kernel) -> tuple[sk.Endpoint, sk.ProcessHandle]:
    """Start the echo server and the timing client in the local domain."""
    server_end, client_end = sk.channel(ECHO)
    client_drive, kernel_drive = sk.channel(DRIVE)
    kernel.spawn(echo_server_async, server_end, name="bench-echo")
    client = kernel.spawn(echo_client_async, client_drive, client_end, name="bench-client")
    return kernel_drive, client


# -- rtt_process -----------------------------------------------------------------------

_PLACEMENTS = {
    "rtt_process_same_core": "same core: parent CPU {a}, child CPU {a}",
    "rtt_process_cross_core": "cross core: parent CPU {a}, child CPU {b}",
}


def run_process(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(5000, 300)
    cpus = usable_cpus()
    parent_cpu = cpus[0]
    child_cpus = {"rtt_process_same_core": cpus[0]}
    if len(cpus) >= 2:
        child_cpus["rtt_process_cross_core"] = cpus[1]
    else:
        progress("rtt_process_cross_core: skipped, only one CPU is usable")
    names = [name for name in child_cpus if name in selected]

    # The baseline children are forked first, before the kernel starts any thread.
    pipes = {name: _start_pipe_child(child_cpus[name]) for name in names}
    try:
        with sk.Kernel(preload=[echo_server.__module__]) as kernel:
            echo = {name: _process_server(kernel, child_cpus[name]) for name in names}
            contenders: list[tuple[str, Callable[[], float]]] = []
            for name in names:
                contenders.append((f"{name}/baseline", _pipe_round(pipes[name][0], n)))
                contenders.append((f"{name}/sipkernel", endpoint_round(echo[name], n)))
            progress(
                f"rtt_process: {settings.rounds} rounds x {n} round trips x "
                f"{len(names)} placement(s)"
            )
            with pinned_thread({parent_cpu}):
                samples = interleave(contenders, settings.rounds)
            for endpoint in echo.values():
                endpoint.close()
    finally:
        for conn, child in pipes.values():
            _stop_pipe_child(conn, child)
    results = []
    for name in names:
        mine, base = samples[f"{name}/sipkernel"], samples[f"{name}/baseline"]
        results.append(
            BenchResult(
                name=name,
                unit="us",
                value=median(mine),
                baseline="multiprocessing.Pipe send/recv, forked child",
                baseline_value=median(base),
                target=0.5,
                placement=_PLACEMENTS[name].format(a=parent_cpu, b=child_cpus[name]),
                notes=(f"{compare(mine, base)}; {n} round trips per round; stretch target 0.1x"),
            )
        )
    return results


def _start_pipe_child(cpu: int) -> tuple[Connection, BaseProcess]:
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    child = context.Process(target=pipe_echo, args=(theirs,), daemon=True)
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a threaded process; the child only echoes.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    theirs.close()
    if child.pid is None:
        raise RuntimeError("the baseline's echo child did not start")
    pin_os_process(child.pid, {cpu})
    for _ in range(100):  # warm the path up
        mine.send(("ping", 0))
        mine.recv()
    return mine, child


def _stop_pipe_child(conn: Connection, child: BaseProcess) -> None:
    with contextlib.suppress(OSError):
        conn.send(None)
    child.join(10)
    if child.is_alive():
        child.kill()
        child.join()
    conn.close()


def _process_server(kernel: sk.Kernel, cpu: int) -> sk.Endpoint:
    """A ``def`` echo server alone in a new process domain pinned to ``cpu``."""
    domain = kernel.domain("process")
    os_pid: int = domain.os_pid  # type: ignore[attr-defined]  # a ProcessDomain
    pin_os_process(os_pid, {cpu})  # before the spawn: the server's thread inherits it
    server_end, client_end = sk.channel(ECHO)
    kernel.spawn(echo_server, server_end, domain=domain, name="bench-echo")
    for seq in range(100):  # the first reply proves it is up; the rest warm the path
        client_end.send(Ping(seq))
        client_end.recv(timeout=30)
    pin_os_process(os_pid, {cpu})  # every thread it has now, to be sure
    return client_end


def _pipe_round(conn: Connection, n: int) -> Callable[[], float]:
    def round_trips(count: int) -> None:
        send, recv = conn.send, conn.recv
        for seq in range(count):
            send(("ping", seq))
            recv()

    return lambda: per_op_us(round_trips, n)


def endpoint_round(endpoint: sk.Endpoint, n: int) -> Callable[[], float]:
    def round_trips(count: int) -> None:
        send, recv = endpoint.send, endpoint.recv
        for seq in range(count):
            send(Ping(seq))
            recv()

    return lambda: per_op_us(round_trips, n)
