"""Sandbox benchmarks: start-up against bubblewrap, round trips against ``process``.

* ``sandbox_domain_start``: ``kernel.domain("sandbox")``, spawn an ``async
  def`` process in it and receive its first message (a sandbox built and
  filtered, the application's module preloaded inside it). Baseline: ``bwrap
  --unshare-all --ro-bind / / python3 -I -S -c pass``, run to completion.
* ``rtt_sandbox``: a small-message round trip with an echo server in a
  ``sandbox`` domain; baseline: the same with the server in a ``process``
  domain, in the same run (both unpinned: a sandbox's pid 1 cannot be pinned
  from outside by its pid, so neither is).
* ``sandbox_command_true``: ``sipkernel sandbox -- true`` against ``bwrap
  --unshare-all --ro-bind / / true``, both run to completion from here.

bubblewrap is a Debian package (``bubblewrap``); ``make system-packages``
installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import sipkernel as sk

from ._harness import (
    BenchResult,
    Progress,
    Settings,
    compare,
    interleave,
    median,
    unpinned_result,
)
from ._messaging import endpoint_round
from ._procs import ECHO, READY, Ping, echo_server, replier

BWRAP_ARGS = ("--unshare-all", "--ro-bind", "/", "/")


def _bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise RuntimeError(
            "the sandbox benchmarks compare with bubblewrap, which is not installed: "
            "run `make system-packages` as root (apt-get install bubblewrap)"
        )
    return path


def _timed_run(argv: list[str], n: int) -> float:
    """Mean µs to run ``argv`` to completion (it must succeed)."""
    total = 0
    for _ in range(n):
        start = time.perf_counter_ns()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        total += time.perf_counter_ns() - start
    return total / n / 1000.0


# -- sandbox_domain_start -----------------------------------------------------------------


def run_sandbox_start(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(20, 3)
    baseline_argv = [_bwrap(), *BWRAP_ARGS, sys.executable, "-I", "-S", "-c", "pass"]
    # As in process_domain_start: the module of the function is preloaded, here by
    # each spare sandbox, inside it, before the request.
    with sk.Kernel(preload=[replier.__module__]) as kernel:

        def sipkernel_round() -> float:
            total = 0
            for _ in range(n):
                start = time.perf_counter_ns()
                domain = kernel.domain("sandbox")
                mine, theirs = sk.channel(READY)
                handle = kernel.spawn(replier, mine, domain=domain, name="bench-replier")
                theirs.recv(timeout=30)
                total += time.perf_counter_ns() - start
                handle.join(30)
                theirs.close()
                domain.close(5.0)
            return total / n / 1000.0

        progress(
            f"sandbox_domain_start: {settings.rounds} rounds x {n} sandboxes "
            "(the first round, untimed, starts the sandbox zygote)"
        )
        samples = interleave(
            [("sipkernel", sipkernel_round), ("baseline", lambda: _timed_run(baseline_argv, n))],
            settings.rounds,
        )
    return [
        unpinned_result(
            "sandbox_domain_start",
            samples,
            baseline="bwrap --unshare-all --ro-bind / / python3 -I -S -c pass",
            target=0.5,
            notes=(
                f"{n} sandboxes per round, back to back; timed: domain('sandbox') "
                "+ spawn + first reply (all namespaces, view, Landlock, cgroup, seccomp; "
                "the function's module preloaded inside each spare sandbox)"
            ),
        )
    ]


# -- rtt_sandbox ------------------------------------------------------------------------------


def run_sandbox_rtt(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(5000, 300)
    with sk.Kernel() as kernel:
        clients = {kind: _echo_in(kernel, kind) for kind in ("sandbox", "process")}
        progress(f"rtt_sandbox: {settings.rounds} rounds x {n} round trips, sandbox and process")
        samples = interleave(
            [(kind, endpoint_round(client, n)) for kind, client in clients.items()],
            settings.rounds,
        )
        for client in clients.values():
            client.close()
    mine, base = samples["sandbox"], samples["process"]
    return [
        BenchResult(
            name="rtt_sandbox",
            unit="us",
            value=median(mine),
            baseline="the same round trip to a process domain",
            baseline_value=median(base),
            target=1.05,
            placement="unpinned",
            notes=f"{compare(mine, base)}; {n} round trips per round",
        )
    ]


def _echo_in(kernel: sk.Kernel, kind: str) -> sk.Endpoint:
    server_end, client_end = sk.channel(ECHO)
    kernel.spawn(echo_server, server_end, domain=kernel.domain(kind), name=f"bench-echo-{kind}")
    for seq in range(100):  # the first reply proves it is up; the rest warm the path
        client_end.send(Ping(seq))
        client_end.recv(timeout=30)
    return client_end


# -- sandbox_command_true -----------------------------------------------------------------------


def run_sandbox_command(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(20, 3)
    mine_argv = [sys.executable, "-m", "sipkernel", "sandbox", "--", "true"]
    base_argv = [_bwrap(), *BWRAP_ARGS, "true"]
    progress(f"sandbox_command_true: {settings.rounds} rounds x {n} runs")
    samples = interleave(
        [
            ("sipkernel", lambda: _timed_run(mine_argv, n)),
            ("baseline", lambda: _timed_run(base_argv, n)),
        ],
        settings.rounds,
    )
    return [
        unpinned_result(
            "sandbox_command_true",
            samples,
            baseline="bwrap --unshare-all --ro-bind / / true",
            target=2.0,
            notes=(
                f"{n} runs per round; `python -m sipkernel sandbox -- "
                "true` includes starting the interpreter and importing sipkernel"
            ),
        )
    ]
