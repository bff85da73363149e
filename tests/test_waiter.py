"""Waiting in the main thread: in slices, so that a Ctrl-C is never slept through."""

from __future__ import annotations

import os
import threading

import pytest

from sipkernel._core._waiter import SIGNAL_SLICE, FdThreadWaiter, ThreadWaiter, in_slices


def test_the_main_thread_blocks_in_slices_until_done() -> None:
    asked: list[float | None] = []

    def wait(timeout: float | None) -> bool:
        asked.append(timeout)
        return len(asked) == 4  # "woken" during the fourth slice

    assert in_slices(wait, None, bool) is True
    assert len(asked) == 4
    assert all(t is not None and 0 <= t <= SIGNAL_SLICE for t in asked)


def test_a_sliced_wait_still_ends_at_its_deadline() -> None:
    waiter = ThreadWaiter()  # never woken
    assert waiter.wait(2.5 * SIGNAL_SLICE) is False


def test_other_threads_block_in_one_piece() -> None:
    asked: list[float | None] = []

    def wait(timeout: float | None) -> bool:
        asked.append(timeout)
        return False

    thread = threading.Thread(target=lambda: in_slices(wait, None, bool))
    thread.start()
    thread.join(10)
    assert asked == [None]


def test_a_woken_waiter_returns_at_once_in_any_thread() -> None:
    waiter = ThreadWaiter()
    threading.Timer(0.01, waiter.wake).start()
    assert waiter.wait(None) is True


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_zero_or_past_timeout_polls_once(timeout: float) -> None:
    asked: list[float | None] = []

    def wait(t: float | None) -> bool:
        asked.append(t)
        return False

    assert in_slices(wait, timeout, bool) is False
    assert asked == [0.0]


def test_waking_a_closed_fd_waiter_touches_no_descriptor() -> None:
    """A waker may reach a waiter after its thread has returned and closed it; the
    eventfd's number may belong to another file by then, which must stay untouched."""
    waiter = FdThreadWaiter()
    waiter.close()
    reused = os.eventfd(0, os.EFD_NONBLOCK)  # most likely the number just freed
    try:
        waiter.wake()  # no EBADF, and nothing written to whatever has that number now
        with pytest.raises(BlockingIOError):
            os.eventfd_read(reused)
    finally:
        os.close(reused)
