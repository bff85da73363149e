"""Start-up benchmarks: ``spawn_local_first_reply`` and ``process_domain_start``.

* ``spawn_local_first_reply``: create a channel, spawn an ``async def``
  process in the ``local`` domain with one end, and receive its first message,
  all from a task on the loop of ``async with Kernel()`` (where the local
  domain runs its ``async def`` processes, so no thread hand-off is involved).
  Baseline: ``threading.Thread`` start + join of a no-op.
* ``process_domain_start``: ``kernel.domain("process")``, spawn an ``async def``
  process in it and receive its first message. Baseline: a ``multiprocessing``
  ``forkserver`` Process start + join (the fork server already up). Both
  sides preload the module of the children's function (``_procs``): the
  kernel with ``Kernel(preload=...)`` into its zygote, the baseline with
  ``set_forkserver_preload``.

  The baseline runs in a helper interpreter started with ``-c``, so its fork
  server's children have no main script to import. A forkserver child
  otherwise imports the parent's ``__main__`` script again (as
  ``__mp_main__``; preloading ``"__main__"`` does not prevent that on 3.11),
  which made the baseline depend on how the benchmark was started: about
  15 ms under the ``sipkernel`` console script, 6.5 ms under ``python -m
  sipkernel``. The helper measures the fork server at its cheapest.

Only the time to the first reply is counted for sipkernel; joining the process
and closing the domain happen after the clock stops. The baselines' join is
inside their clock, as that is how a thread or a multiprocessing child is known
to have run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import threading
import time

import sipkernel as sk

from ._harness import BenchResult, Progress, Settings, interleave, median, unpinned_result
from ._procs import READY, noop, replier

PROCS_MODULE = noop.__module__


# -- spawn_local_first_reply ----------------------------------------------------------------


def run_spawn_local(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(500, 40)

    def sipkernel_round() -> float:
        return asyncio.run(_spawn_from_the_loop(n))

    def baseline_round() -> float:
        total = 0
        for _ in range(n):
            start = time.perf_counter_ns()
            thread = threading.Thread(target=noop)
            thread.start()
            thread.join()
            total += time.perf_counter_ns() - start
        return total / n / 1000.0

    progress(f"spawn_local_first_reply: {settings.rounds} rounds x {n} spawns")
    samples = interleave(
        [("sipkernel", sipkernel_round), ("baseline", baseline_round)], settings.rounds
    )
    return [
        unpinned_result(
            "spawn_local_first_reply",
            samples,
            baseline="threading.Thread(noop) start+join",
            target=0.15,
            notes=(
                f"{n} spawns per round; timed: channel() + "
                "spawn(async def) + first arecv, from a task on the loop of `async with "
                "Kernel()`, where the local domain runs async processes (join untimed)"
            ),
        )
    ]


async def _spawn_from_the_loop(n: int) -> float:
    """Mean µs to spawn a local ``async def`` and get its first message, on one loop."""
    async with sk.Kernel() as kernel:
        total = 0
        for _ in range(n):
            start = time.perf_counter_ns()
            mine, theirs = sk.channel(READY)
            handle = kernel.spawn(replier, mine, name="bench-replier")
            await theirs.arecv(timeout=30)
            total += time.perf_counter_ns() - start
            await handle.ajoin(30)
            theirs.close()
    return total / n / 1000.0


# -- process_domain_start ---------------------------------------------------------------------


def run_process_domain(
    settings: Settings, progress: Progress, selected: frozenset[str]
) -> list[BenchResult]:
    n = settings.scale(20, 3)
    closing: list[float] = []
    with ForkserverBaseline() as forkserver, sk.Kernel(preload=[PROCS_MODULE]) as kernel:

        def sipkernel_round() -> float:
            total = 0
            for _ in range(n):
                start = time.perf_counter_ns()
                domain = kernel.domain("process")
                mine, theirs = sk.channel(READY)
                handle = kernel.spawn(replier, mine, domain=domain, name="bench-replier")
                theirs.recv(timeout=30)
                total += time.perf_counter_ns() - start
                handle.join(30)
                theirs.close()
                closed = time.perf_counter_ns()
                domain.close(5.0)
                closing.append((time.perf_counter_ns() - closed) / 1e6)
            return total / n / 1000.0

        def baseline_round() -> float:
            return forkserver.round(n)

        progress(
            f"process_domain_start: {settings.rounds} rounds x {n} domains "
            "(the first round, untimed, starts the zygote and the fork server)"
        )
        samples = interleave(
            [("sipkernel", sipkernel_round), ("baseline", baseline_round)], settings.rounds
        )
    return [
        unpinned_result(
            "process_domain_start",
            samples,
            baseline="multiprocessing forkserver Process(noop) start+join",
            target=0.25,
            notes=(
                f"{n} domains per round; timed: domain('process') + "
                "channel() + spawn(async def) + first recv; "
                f"closing a domain afterwards (untimed) took median {median(closing):.2f} ms"
            ),
        )
    ]


class ForkserverBaseline:
    """The ``process_domain_start`` baseline, timed in a helper interpreter.

    The helper (``python -c``, see the module) starts a ``forkserver`` context
    that preloads the children's module, runs one untimed round so the fork
    server is up, then times a round of ``n`` start+joins per request.
    """

    def __init__(self) -> None:
        self._helper = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import serve_forkserver; serve_forkserver()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def round(self, n: int) -> float:
        """Mean µs of ``n`` forkserver start+joins, measured by the helper."""
        assert self._helper.stdin is not None
        assert self._helper.stdout is not None
        self._helper.stdin.write(f"{n}\n")
        self._helper.stdin.flush()
        answer = self._helper.stdout.readline()
        if not answer:
            raise RuntimeError(f"the forkserver baseline's helper died ({self._helper.wait()})")
        return float(answer)

    def __enter__(self) -> ForkserverBaseline:
        self.round(1)  # starts the fork server, untimed
        return self

    def __exit__(self, *exc: object) -> None:
        self._helper.communicate(timeout=30)  # end-of-file on its stdin ends it


def serve_forkserver() -> None:
    """The helper's loop: read a count per line, answer the mean µs of that many start+joins."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PROCS_MODULE])
    for line in sys.stdin:
        print(_forkserver_round(context, int(line)), flush=True)


def _forkserver_round(context: multiprocessing.context.BaseContext, n: int) -> float:
    total = 0
    for _ in range(n):
        start = time.perf_counter_ns()
        child = context.Process(target=noop)  # type: ignore[attr-defined]
        child.start()
        child.join()
        total += time.perf_counter_ns() - start
        if child.exitcode != 0:
            raise RuntimeError(f"the forkserver baseline's child failed (exit {child.exitcode})")
        child.close()
    return total / n / 1000.0
