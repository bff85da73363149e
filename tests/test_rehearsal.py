"""A spare domain's rehearsal runs a real first start and leaves nothing behind."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

import pytest

import sipkernel as sk
from sipkernel._core import _rejoin
from sipkernel.domains import _zygote_main
from sipkernel.domains._rehearsal import rehearse
from sipkernel.domains._runner import LoopThread

pytestmark = pytest.mark.timeout(30)


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    loop_thread = LoopThread("test-rehearsal-loop")
    yield loop_thread
    loop_thread.close()


def test_the_rehearsed_process_runs_and_ends_normally(loop_thread: LoopThread) -> None:
    reason = rehearse(loop_thread)
    assert reason.kind is sk.ExitKind.NORMAL, reason


def test_a_rehearsal_leaves_no_descriptor_thread_or_channel(loop_thread: LoopThread) -> None:
    rehearse(loop_thread)  # the first one may fill caches for good
    fds, threads = _fds(), threading.active_count()
    gc.collect()
    registered = len(_rejoin._resident)
    for _ in range(3):
        rehearse(loop_thread)
    gc.collect()
    assert _fds() == fds
    assert threading.active_count() == threads
    assert len(_rejoin._resident) == registered


def test_a_failed_rehearsal_is_reported_and_leaks_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = LoopThread("test-rehearsal-closed")
    closed.close()  # the rehearsed process cannot be started on it
    fds = _fds()
    _zygote_main._rehearse_quietly(closed)
    assert "Event loop is closed" in capsys.readouterr().err
    assert _fds() == fds
