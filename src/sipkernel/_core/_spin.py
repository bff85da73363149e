"""When a receive from another OS process spins before it blocks, and when it stops.

Waking a thread that sleeps on another CPU costs tens of microseconds on a
VM, more than a whole round trip, so a receive first polls its socket for up
to ``SPIN_MAX_NS``, yielding the CPU between polls. That pays only while the
peer runs on another CPU; :func:`judge_spin` tells each end when it does not.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._endpoint_core import EndpointCore

SPIN_MAX_NS = 50_000
"""How long a blocking receive from another OS process polls before it sleeps."""


def judge_spin(core: EndpointCore, wall_start: int, cpu_start: int, caught: bool) -> None:
    """Pause spinning on ``core`` when spins keep not paying.

    Spinning pays only while the peer runs on another CPU at the same time. A
    spin misses when it caught nothing, or when it caught the message only
    after this thread had yielded over half the time that passed to other
    runnable threads: perhaps the peer itself, on this CPU, which the spin
    only delayed. A message caught within ``SPIN_JUDGE_MIN_NS`` is a spin
    that paid, whoever had the CPU. One miss proves little (the hypervisor
    takes a virtual CPU away now and then), so spinning pauses after
    ``SPIN_MISSES`` misses in a row.
    """
    if caught:
        wall = time.perf_counter_ns() - wall_start
        if wall < SPIN_JUDGE_MIN_NS or 2 * (time.thread_time_ns() - cpu_start) >= wall:
            core.spin_misses = 0
            return
    core.spin_misses += 1
    if core.spin_misses >= SPIN_MISSES:
        core.spin_misses = 0
        core.spin_paused_until = time.perf_counter_ns() + SPIN_PAUSE_NS


SPIN_JUDGE_MIN_NS = 5_000
"""A message caught by a spin this soon (5 µs) shows that spinning paid."""
SPIN_MISSES = 3
"""Spins in a row that got under half the CPU before spinning pauses."""
SPIN_PAUSE_NS = 20_000_000
"""How long an end blocks without spinning once spins stopped paying (20 ms)."""
