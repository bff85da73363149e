"""The switchboard: connections put through, waited for, refused, and closed."""

from __future__ import annotations

import threading

import pytest

import sipkernel as sk
from app_procs import ECHO, Ping, Pong
from sipkernel.app import ServiceUnavailable, accept, connect
from sipkernel.app._wiring import Switchboard


@pytest.fixture
def board() -> object:
    switchboard = Switchboard("test-switchboard")
    switchboard.add_service("echo", ECHO)
    yield switchboard
    switchboard.close()


def test_a_caller_is_put_through_to_the_listener(board: Switchboard) -> None:
    listener = board.listener("echo")
    dialer = board.dialer("echo", caller="tester")
    importer = connect(dialer, timeout=5)
    exporter = accept(listener, timeout=5)
    importer.send(Ping(1))
    assert exporter.recv(5) == Ping(1)
    exporter.send(Pong(1, 1))
    assert importer.recv(5) == Pong(1, 1)
    assert importer.contract is ECHO


def test_a_caller_waits_for_a_service_that_comes_up(board: Switchboard) -> None:
    dialer = board.dialer("echo", caller="early")
    connected: list[sk.Endpoint] = []
    dialling = threading.Thread(target=lambda: connected.append(connect(dialer, timeout=30)))
    dialling.start()
    listener = board.listener("echo")  # the service starts after the call was made
    exporter = accept(listener, timeout=30)
    dialling.join(30)
    [importer] = connected
    importer.send(Ping(7))
    assert exporter.recv(5) == Ping(7)


def test_a_service_that_stays_down_is_unavailable(board: Switchboard) -> None:
    dialer = board.dialer("echo", caller="tester")
    with pytest.raises(ServiceUnavailable, match="service echo is not running"):
        connect(dialer, timeout=0.05)
    listener = board.listener("echo")
    assert connect(dialer, timeout=5).contract is ECHO  # the dialer works again after
    listener.close()


def test_a_new_listener_replaces_the_old_incarnations(board: Switchboard) -> None:
    old = board.listener("echo")
    new = board.listener("echo")
    with pytest.raises(sk.BrokenChannelError):
        old.recv(5)
    dialer = board.dialer("echo", caller="tester")
    connect(dialer, timeout=5)
    assert accept(new, timeout=5).contract is ECHO


def test_closing_breaks_every_listener_and_dialer() -> None:
    board = Switchboard("closing")
    board.add_service("echo", ECHO)
    listener = board.listener("echo")
    dialer = board.dialer("echo", caller="tester")
    board.close()
    with pytest.raises(sk.BrokenChannelError):
        accept(listener, timeout=5)
    with pytest.raises(sk.ChannelError):
        connect(dialer, timeout=5)
    board.close()  # idempotent


def test_links_closed_under_it_do_not_stop_the_switchboard() -> None:
    """The kernel closes what it owns at shutdown, the switchboard's links included.

    Made in a kernel's context, the links are the kernel's; the kernel shuts
    down before the switchboard closes, and the switchboard's thread must not
    fail on a closed link (pytest turns an exception in a thread into an error).
    """
    board = Switchboard("outlived")
    board.add_service("echo", ECHO)
    with sk.Kernel():
        listener = board.listener("echo")
        dialer = board.dialer("echo", caller="tester")
        connect(dialer, timeout=5)
        accept(listener, timeout=5)
    another = board.dialer("echo", caller="later")  # the thread still serves
    with pytest.raises(ServiceUnavailable):
        connect(another, timeout=0.05)
    board.close()


@pytest.mark.parametrize("wait", [float("inf"), float("nan"), 1e300, -5.0])
def test_an_absurd_wait_from_a_caller_cannot_break_the_switchboard(
    board: Switchboard, wait: float
) -> None:
    """A caller may be sandboxed code: its Dial is honoured within bounds, and
    the switchboard goes on serving other callers."""
    from sipkernel.app._wiring import Dial

    rogue = board.dialer("echo", caller="rogue")
    rogue.send(Dial(wait))  # no service yet: held (within bounds) or answered at once
    early = board.dialer("echo", caller="early")
    with pytest.raises(ServiceUnavailable, match="service echo is not running"):
        connect(early, timeout=0.05)  # the switchboard still keeps its own deadlines
    listener = board.listener("echo")
    honest = board.dialer("echo", caller="honest")
    assert connect(honest, timeout=5).contract is ECHO
    assert accept(listener, timeout=5).contract is ECHO
    assert rogue.recv(5) is not None  # put through too, or told it is unavailable
