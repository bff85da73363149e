"""Whether a receive spins: spins that do not pay pause spinning on that end."""

from __future__ import annotations

import pytest

import sipkernel as sk
from procs import ECHO
from sipkernel._core import _spin
from sipkernel._core._endpoint_core import EndpointCore

pytestmark = pytest.mark.timeout(30)


class _Clocks:
    """Stand-in for the ``time`` module: a wall clock and a thread CPU clock set by hand."""

    def __init__(self) -> None:
        self.wall = 0
        self.cpu = 0

    def perf_counter_ns(self) -> int:
        return self.wall

    def thread_time_ns(self) -> int:
        return self.cpu

    def spin(self, wall: int, cpu: int) -> tuple[int, int]:
        """A spin that took ``wall`` ns of which this thread ran ``cpu``; its start."""
        start = (self.wall, self.cpu)
        self.wall += wall
        self.cpu += cpu
        return start


def _judged(monkeypatch: pytest.MonkeyPatch) -> tuple[EndpointCore, _Clocks]:
    clocks = _Clocks()
    monkeypatch.setattr(_spin, "time", clocks)
    _, client = sk.channel(ECHO)
    return client.live_core(), clocks


def test_spinning_pauses_after_spins_that_yielded_the_cpu_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sipkernel._core._spin import SPIN_MISSES, SPIN_PAUSE_NS, judge_spin

    core, clocks = _judged(monkeypatch)
    for _ in range(SPIN_MISSES - 1):  # caught, but the thread ran a third of the time
        judge_spin(core, *clocks.spin(30_000, 10_000), caught=True)
    assert core.spin_paused_until == 0
    judge_spin(core, *clocks.spin(30_000, 10_000), caught=True)
    assert core.spin_paused_until == clocks.wall + SPIN_PAUSE_NS


def test_a_spin_that_paid_forgives_earlier_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipkernel._core._spin import SPIN_MISSES, judge_spin

    core, clocks = _judged(monkeypatch)
    for _ in range(SPIN_MISSES - 1):
        judge_spin(core, *clocks.spin(50_000, 50_000), caught=False)  # caught nothing
    judge_spin(core, *clocks.spin(20_000, 19_000), caught=True)  # ran on its own CPU
    assert core.spin_misses == 0
    judge_spin(core, *clocks.spin(50_000, 50_000), caught=False)
    judge_spin(core, *clocks.spin(1_000, 0), caught=True)  # caught at once: it paid
    assert core.spin_paused_until == 0
    assert core.spin_misses == 0


def test_spinning_pauses_after_spins_that_caught_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipkernel._core._spin import SPIN_MISSES, SPIN_PAUSE_NS, judge_spin

    core, clocks = _judged(monkeypatch)
    for _ in range(SPIN_MISSES):
        judge_spin(core, *clocks.spin(50_000, 50_000), caught=False)
    assert core.spin_paused_until == clocks.wall + SPIN_PAUSE_NS
    assert core.spin_misses == 0
