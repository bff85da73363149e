"""``idle_local_async_100k``: the memory cost of many idle ``local`` processes.

Spawns 100,000 ``async def`` processes in the ``local`` domain, each blocked in
``arecv`` on its own channel (the kernel's thread holds the other ends), and
reads the resident set size from ``/proc/self/statm`` before and after. The
count is known to be reached when a last process, spawned after all the idle
ones, replies: tasks start in the order they were spawned, so by then every
idle process has run up to its first ``arecv``.

The measured growth includes everything 100,000 processes cost here: their
tasks, handles, owners and the channel ends on both sides. Under ``--quick``
(or if spawning is too slow to stay within the time budget) fewer processes
are spawned and the growth is scaled linearly to 100,000; the notes say so.
"""

from __future__ import annotations

import gc
import time

import sipkernel as sk

from ._harness import BenchResult, Progress, Settings, rss_bytes
from ._procs import IDLE, READY, idle, replier

TARGET_COUNT = 100_000
BUDGET_MB = 1000.0
SPAWN_BUDGET_S = 30.0
"""Stop spawning after this long and scale up; the whole benchmark must stay well under 60 s."""


def run_idle(settings: Settings, progress: Progress, selected: frozenset[str]) -> list[BenchResult]:
    count = settings.scale(TARGET_COUNT, 5_000)
    with sk.Kernel() as kernel:
        _first_reply(kernel)  # the domain and its loop exist before the first reading
        gc.collect()
        before = rss_bytes()
        progress(f"idle_local_async_100k: spawning {count} idle processes")
        ends: list[sk.Endpoint] = []
        handles: list[sk.ProcessHandle] = []
        start = time.perf_counter()
        for i in range(count):
            theirs, mine = sk.channel(IDLE)
            handles.append(kernel.spawn(idle, theirs, name="bench-idle"))
            ends.append(mine)
            if i % 1024 == 0 and time.perf_counter() - start > SPAWN_BUDGET_S:
                progress(f"idle_local_async_100k: spawn budget spent after {i + 1} processes")
                break
        _first_reply(kernel)
        spawn_s = time.perf_counter() - start
        spawned = len(ends)
        gc.collect()
        after = rss_bytes()
        progress(f"idle_local_async_100k: {spawned} idle in {spawn_s:.1f} s; cleaning up")
        cleanup_start = time.perf_counter()
        for end in ends:
            end.close()
        for handle in handles:
            handle.join(30)
        ends.clear()
        handles.clear()
    cleanup_s = time.perf_counter() - cleanup_start
    growth = max(after - before, 0)
    scaled_mb = growth * TARGET_COUNT / spawned / 1e6
    scaled = "" if spawned == TARGET_COUNT else f", scaled linearly from {spawned} processes"
    return [
        BenchResult(
            name="idle_local_async_100k",
            unit="MB",
            value=scaled_mb,
            baseline="absolute budget 1 GB (no baseline; ratio = value / 1000 MB)",
            baseline_value=BUDGET_MB,
            target=1.0,
            placement="unpinned",
            notes=(
                f"RSS growth {growth / 1e6:.1f} MB for {spawned} processes{scaled} "
                f"({growth / spawned:.0f} B per process, both channel ends included); "
                f"spawned at {spawned / spawn_s:,.0f} processes/s ({spawn_s:.1f} s); "
                f"closing the ends, joining and shutting down took {cleanup_s:.1f} s"
            ),
        )
    ]


def _first_reply(kernel: sk.Kernel) -> None:
    mine, theirs = sk.channel(READY)
    handle = kernel.spawn(replier, mine, name="bench-sentinel")
    theirs.recv(timeout=60)
    handle.join(60)
    theirs.close()
