"""The ``local`` domain: processes as threads and tasks of the kernel's own interpreter."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import procs
import sipkernel as sk
from procs import ECHO, STREAM, Item, Ping, Pong

pytestmark = pytest.mark.timeout(30)


def _ready(kernel: sk.Kernel, fn, *args, **kwargs) -> sk.ProcessHandle:
    ready, report = procs.report_channel()
    handle = kernel.spawn(fn, report, *args, **kwargs)
    assert ready.recv(timeout=10).text == "ready"
    return handle


def test_local_processes_run_in_this_os_process(kernel: sk.Kernel) -> None:
    for fn in (procs.whoami, procs.awhoami):
        ready, report = procs.report_channel()
        handle = kernel.spawn(fn, report)
        seen = ready.recv(timeout=10)
        assert seen.numbers == [os.getpid()]
        assert seen.kind == "local"
        assert handle.domain.kind == "local"


def test_the_default_domain_is_shared_and_local(kernel: sk.Kernel) -> None:
    one = kernel.spawn(procs.return_now)
    two = kernel.spawn(procs.return_now, domain="local")
    assert one.domain is two.domain
    assert one.domain.kind == "local"
    own = kernel.domain("local", name="own")
    three = kernel.spawn(procs.return_now, domain=own)
    assert three.domain is own
    for handle in (one, two, three):
        assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_a_sync_process_is_a_named_thread(kernel: sk.Kernel) -> None:
    server, client = sk.channel(ECHO)
    handle = _ready(kernel, procs.ready_then_block, server, name="threaded")
    names = [t.name for t in threading.enumerate()]
    assert any("threaded" in name and str(handle.pid) in name for name in names), names
    client.close()
    handle.join(10)


def test_arguments_are_private_copies(kernel: sk.Kernel) -> None:
    data = {"seen": [0]}
    ready, report = procs.report_channel()
    handle = kernel.spawn(procs.mutate_and_report, data, report)
    seen = ready.recv(timeout=10)
    assert seen.numbers == [0, 1]  # the process changed its copy ...
    assert data == {"seen": [0]}  # ... not ours
    handle.join(10)


def test_endpoint_arguments_move_into_the_process(kernel: sk.Kernel) -> None:
    server, client = sk.channel(ECHO)
    kernel.spawn(procs.echo, server)
    with pytest.raises(sk.EndpointMovedError):
        server.recv(timeout=0)
    client.send(Ping(1))
    assert client.recv(timeout=10) == Pong(1)


def test_an_async_exception_ends_only_that_process(kernel: sk.Kernel) -> None:
    server, client = sk.channel(ECHO)
    survivor = kernel.spawn(procs.aecho, server)
    failed = kernel.spawn(procs.afail, "async kaput")
    reason = failed.join(10)
    assert reason.kind is sk.ExitKind.EXCEPTION
    assert "in afail" in (reason.traceback or "")
    client.send(Ping(2))  # the shared event loop still serves the survivor
    assert client.recv(timeout=10) == Pong(2)
    assert survivor.is_alive


def test_kill_a_process_blocked_in_select(kernel: sk.Kernel) -> None:
    receivers, keep = [], []
    for _ in range(2):
        receiver, sender = sk.channel(STREAM)
        receivers.append(receiver)
        keep.append(sender)
    ready, report = procs.report_channel()
    handle = kernel.spawn(procs.select_and_report, receivers, report, None)
    handle.kill("selecting")
    assert handle.join(10) == sk.ExitReason.killed("selecting")
    for sender in keep:
        with pytest.raises(sk.BrokenChannelError):
            sender.send(Item(0))
    del ready


def test_kill_a_process_in_a_python_sleep_loop(kernel: sk.Kernel) -> None:
    handle = kernel.spawn(procs.sleep_briefly_forever)
    handle.kill("sleepy")
    assert handle.join(10) == sk.ExitReason.killed("sleepy")


def test_kill_a_process_blocked_on_a_full_queue(kernel: sk.Kernel) -> None:
    receiver, sender = sk.channel(STREAM, capacity=1)
    handle = kernel.spawn(procs.send_items, sender, 10)
    assert receiver.recv(timeout=10) == Item(0)  # it is running; soon blocked
    handle.kill("blocked sender")
    assert handle.join(10) == sk.ExitReason.killed("blocked sender")


def test_many_local_processes(kernel: sk.Kernel) -> None:
    clients = []
    handles = []
    for _ in range(100):
        for fn in (procs.echo, procs.aecho):
            server, client = sk.channel(ECHO)
            handles.append(kernel.spawn(fn, server))
            clients.append(client)
    for n, client in enumerate(clients):
        client.send(Ping(n))
    for n, client in enumerate(clients):
        assert client.recv(timeout=10) == Pong(n)
        client.close()
    for handle in handles:
        assert handle.join(10).kind is sk.ExitKind.NORMAL


@pytest.mark.no_leak_check  # the stuck thread cannot be killed: it is abandoned by design
def test_shutdown_abandons_a_thread_stuck_in_c_code_after_the_grace() -> None:
    kernel = sk.Kernel(grace=0.5)
    stream = kernel.events.stream()
    handle = _ready(kernel, procs.ready_then_sleep_stubbornly)
    started = time.monotonic()
    kernel.shutdown()
    assert time.monotonic() - started < 5
    reason = handle.exit_reason
    assert reason is not None
    assert reason.kind is sk.ExitKind.KILLED
    assert "grace" in reason.message
    abandoned = [e for e in stream.drain() if "abandoned" in e.detail]
    assert [e.pid for e in abandoned] == [handle.pid]


# A kill is an exception raised asynchronously in the process's thread. Landing on
# the first instruction of a finaliser, Python reports it ("Exception ignored in")
# and drops it; the runner then repeats it. This test checks that no kill is lost;
# those reports are the expected side effect, not failures.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@contextlib.contextmanager
def _unraisables() -> Iterator[list[str]]:
    """Collect what Python reports as 'Exception ignored in ...' meanwhile."""
    seen: list[str] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        seen.append(f"{unraisable.exc_type.__name__} in {unraisable.object!r}")

    sys.unraisablehook = hook
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def _kill_churners(count: int) -> tuple[list[sk.ProcessHandle], list[str]]:
    """Kill ``count`` processes that drop endpoints all the time (finalisers run in
    them constantly); return the handles of those still alive 2 s later, and what
    Python reported as ignored exceptions."""
    procs.CHURN_STOP.clear()
    kernel = sk.Kernel(grace=1.0)
    try:
        with _unraisables() as ignored:
            handles = [_ready(kernel, procs.churn_endpoints) for _ in range(count)]
            for handle in handles:
                handle.kill("churn")
            survivors = []
            for handle in handles:
                try:
                    assert handle.join(2) == sk.ExitReason.killed("churn")
                except sk.JoinTimeout:
                    survivors.append(handle)
        return survivors, ignored
    finally:
        procs.CHURN_STOP.set()  # end any process whose kill was lost
        kernel.shutdown()


def test_a_kill_is_never_lost_in_a_finaliser() -> None:
    """Processes that run finalisers all the time still die of a kill, every one."""
    survivors, _ignored = _kill_churners(10)
    assert survivors == []


def test_a_kill_prints_no_ignored_exceptions() -> None:
    survivors, ignored = _kill_churners(20)
    assert survivors == []
    assert ignored == []


def test_an_async_process_on_a_closed_loop_fails_to_start_and_is_forgotten() -> None:
    from sipkernel.domains._runner import LoopThread, ProcessRunner

    closed = LoopThread("test-closed-loop")
    closed.close()
    reports: list[tuple[int, sk.ExitReason]] = []
    runner = ProcessRunner(
        "local", lambda pid, reason: reports.append((pid, reason)), lambda: closed.loop
    )
    mine, theirs = sk.channel(ECHO)
    with pytest.raises(RuntimeError, match="closed"):
        runner.start(1, "late", procs.aecho, args=(mine,), carried=[mine], is_async=True)
    # Nothing is left running, and its coroutine was closed (an unawaited one
    # would fail this test: warnings are errors here).
    assert len(runner) == 0
    assert reports == []
    theirs.close()
