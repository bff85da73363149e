"""One behavioural suite for every domain kind (``domain_kind`` in conftest.py).

Whatever the isolation, a process must behave the same: request/reply,
ordering, bounds, contract checks, close semantics, exits, kills, moving
endpoints in and out, select, links and monitors. A new rung (sandbox, wasm)
adds its kind to ``conftest.DOMAIN_KINDS`` and gets all of this for free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import procs
import sipkernel as sk
from conftest import DOMAIN_KINDS
from procs import (
    CARRIER,
    ECHO,
    SERVICE,
    STREAM,
    Carry,
    Failure,
    Item,
    Ping,
    Pong,
    Reply,
    Request,
)

pytestmark = pytest.mark.timeout(30)


def pick(style: str, sync_fn: Callable[..., Any], async_fn: Callable[..., Any]) -> Any:
    return sync_fn if style == "sync" else async_fn


def _ready(kernel: sk.Kernel, fn, *args, **kwargs) -> sk.ProcessHandle:
    ready, report = procs.report_channel()
    handle = kernel.spawn(fn, report, *args, **kwargs)
    assert ready.recv(timeout=10).text == "ready"
    return handle


# -- request / reply ------------------------------------------------------------------------


def test_request_reply(kernel: sk.Kernel, domain: sk.Domain, style: str) -> None:
    server, client = sk.channel(ECHO)
    handle = kernel.spawn(pick(style, procs.echo, procs.aecho), server, domain=domain)
    for n in range(200):
        client.send(Ping(n))
        assert client.recv(timeout=10) == Pong(n)
    client.close()
    assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_request_reply_with_alternatives(kernel: sk.Kernel, domain: sk.Domain, style: str) -> None:
    server, client = sk.channel(SERVICE)
    kernel.spawn(pick(style, procs.serve, procs.aserve), server, domain=domain)
    client.send(Request("hello"))
    assert client.recv(timeout=10) == Reply("HELLO")
    client.send(Request("fail"))
    assert client.recv(timeout=10) == Failure("asked to fail")
    assert client.state == "Start"


def test_the_process_knows_its_isolation(
    kernel: sk.Kernel, domain: sk.Domain, domain_kind: str, style: str
) -> None:
    ready, report = procs.report_channel()
    handle = kernel.spawn(pick(style, procs.whoami, procs.awhoami), report, domain=domain)
    seen = ready.recv(timeout=10)
    assert (seen.kind, seen.count) == (domain_kind, handle.pid)


# -- ordering, no loss, bounds ------------------------------------------------------------------

COUNT = 10_000


def _drain(receiver: sk.Endpoint) -> tuple[list[int], sk.ExitReason | None]:
    """Receive Items until the channel breaks: their numbers, and the peer's reason."""
    got = []
    while True:
        try:
            got.append(receiver.recv(timeout=5).n)
        except sk.BrokenChannelError as exc:
            return got, exc.reason


@pytest.mark.parametrize("capacity", [COUNT + 1, 16], ids=["roomy", "small-queue"])
def test_ten_thousand_messages_to_a_process_arrive_in_order(
    kernel: sk.Kernel,
    domain: sk.Domain,
    style: str,
    capacity: int,
) -> None:
    receiver, sender = sk.channel(STREAM, capacity=capacity)
    ready, report = procs.report_channel()
    kernel.spawn(
        pick(style, procs.count_items, procs.acount_items), receiver, report, domain=domain
    )
    for n in range(COUNT):
        sender.send(Item(n), timeout=5)
    sender.close()
    result = ready.recv(timeout=20)
    assert (result.ok, result.count, result.kind) == (True, COUNT, "normal")


@pytest.mark.parametrize("capacity", [COUNT + 1, 16], ids=["roomy", "small-queue"])
def test_ten_thousand_messages_from_a_process_arrive_in_order(
    kernel: sk.Kernel,
    domain: sk.Domain,
    style: str,
    capacity: int,
) -> None:
    receiver, sender = sk.channel(STREAM, capacity=capacity)
    handle = kernel.spawn(
        pick(style, procs.send_items, procs.asend_items), sender, COUNT, domain=domain
    )
    got, reason = _drain(receiver)
    assert got == list(range(COUNT))
    assert reason is not None
    assert reason.kind is sk.ExitKind.NORMAL
    assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_backpressure(
    kernel: sk.Kernel,
    domain: sk.Domain,
    style: str,
    request: pytest.FixtureRequest,
) -> None:
    """A full queue makes the sender wait until the receiver drains it; a send with a
    timeout raises TimeoutError at its deadline instead."""
    capacity = 4
    receiver, sender = sk.channel(STREAM, capacity=capacity)
    go_in, go = sk.channel(STREAM)
    ready, report = procs.report_channel()
    kernel.spawn(
        pick(style, procs.hold_then_drain, procs.ahold_then_drain),
        report,
        receiver,
        go_in,
        domain=domain,
    )
    assert ready.recv(timeout=10).text == "ready"
    for n in range(capacity):
        sender.send(Item(n), timeout=5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sender.send(Item(-1), timeout=0.05)
    assert time.monotonic() - started >= 0.05
    errors: list[BaseException] = []
    sent = threading.Event()

    def send_more() -> None:
        try:
            sender.send(Item(capacity), timeout=5)  # waits for the drain
            sent.set()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=send_more)
    thread.start()
    go.send(Item(0))
    thread.join()
    assert not errors, errors
    sender.close()
    result = report_numbers(ready)
    assert result == list(range(capacity + 1))  # the timed-out message never arrived


def report_numbers(ready: sk.Endpoint) -> list[int]:
    result = ready.recv(timeout=10)
    assert result.ok
    return list(result.numbers)


def test_message_too_large_and_the_channel_still_works(
    kernel: sk.Kernel, domain: sk.Domain, style: str
) -> None:
    receiver, sender = sk.channel(STREAM, max_message=2048)
    ready, report = procs.report_channel()
    kernel.spawn(
        pick(style, procs.count_items, procs.acount_items), receiver, report, domain=domain
    )
    sender.send(Item(0))
    with pytest.raises(sk.MessageTooLarge):
        sender.send(Item(1, b"x" * 4096))
    sender.send(Item(1, b"y" * 1024))
    sender.close()
    result = ready.recv(timeout=10)
    assert (result.ok, result.count) == (True, 2)


# -- contract violations ------------------------------------------------------------------


def test_a_process_that_violates_the_contract(kernel: sk.Kernel, domain: sk.Domain) -> None:
    server, client = sk.channel(ECHO)
    ready, report = procs.report_channel()
    kernel.spawn(procs.violate_then_report, client, report, domain=domain)
    seen = ready.recv(timeout=10)
    assert seen.kind == "ProtocolViolation"
    assert "Echo" in seen.text
    with pytest.raises(sk.BrokenChannelError) as broken:
        server.recv(timeout=10)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.PROTOCOL_VIOLATION


@pytest.mark.parametrize(
    "bad",
    [Pong(1), procs.Stranger(1), Ping(n="x")],  # type: ignore[arg-type]
    ids=["wrong-type", "not-in-contract", "malformed-field"],
)
def test_a_process_whose_peer_violates_the_contract(
    kernel: sk.Kernel, domain: sk.Domain, bad: object
) -> None:
    server, client = sk.channel(ECHO)
    ready, report = procs.report_channel()
    kernel.spawn(procs.expect_broken, server, report, domain=domain)
    with pytest.raises(sk.ProtocolViolation):
        client.send(bad)
    seen = ready.recv(timeout=10)
    assert seen.kind == "protocol_violation"


# -- close semantics and exits ------------------------------------------------------------------


def test_a_normal_exit_closes_the_endpoints_losslessly(
    kernel: sk.Kernel, domain: sk.Domain, style: str
) -> None:
    receiver, sender = sk.channel(STREAM)
    handle = kernel.spawn(
        pick(style, procs.send_items, procs.asend_items), sender, 5, domain=domain
    )
    assert handle.join(10).kind is sk.ExitKind.NORMAL  # it left; its messages did not
    assert [receiver.recv(timeout=10).n for _ in range(5)] == list(range(5))
    with pytest.raises(sk.BrokenChannelError) as broken:
        receiver.recv(timeout=10)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.NORMAL
    with pytest.raises(sk.BrokenChannelError):
        receiver.recv(timeout=0)  # and it stays broken


def test_an_exception_exit_tells_the_peer_with_the_traceback(
    kernel: sk.Kernel, domain: sk.Domain
) -> None:
    server, client = sk.channel(ECHO)
    handle = kernel.spawn(procs.fail_after_ping, server, domain=domain)
    client.send(Ping(1))
    with pytest.raises(sk.BrokenChannelError) as broken:
        client.recv(timeout=10)
    reason = broken.value.reason
    assert reason is not None
    assert reason.kind is sk.ExitKind.EXCEPTION
    assert reason.exc_type == "builtins.RuntimeError"
    assert "boom after ping" in (reason.traceback or "")
    assert "fail_after_ping" in (reason.traceback or "")
    assert handle.join(10) == reason


def test_closing_our_end_ends_the_peer_process_normally(
    kernel: sk.Kernel, domain: sk.Domain, style: str
) -> None:
    server, client = sk.channel(ECHO)
    handle = kernel.spawn(pick(style, procs.echo, procs.aecho), server, domain=domain)
    client.send(Ping(1))
    assert client.recv(timeout=10) == Pong(1)
    client.close()
    with pytest.raises(sk.ClosedEndpointError):
        client.recv(timeout=0)
    assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_close_with_a_reason_reaches_the_process(kernel: sk.Kernel, domain: sk.Domain) -> None:
    server, client = sk.channel(ECHO)
    ready, report = procs.report_channel()
    kernel.spawn(procs.expect_broken, server, report, domain=domain)
    client.close_with(sk.ExitReason.killed("custom reason"))
    seen = ready.recv(timeout=10)
    assert (seen.kind, seen.text) == ("killed", "custom reason")


@pytest.mark.parametrize("fn", [procs.ready_then_block, procs.aready_then_recv])
def test_kill_a_process_blocked_in_recv(
    kernel: sk.Kernel, domain: sk.Domain, fn: Callable[..., Any]
) -> None:
    server, client = sk.channel(ECHO)
    handle = _ready(kernel, fn, server, domain=domain)
    handle.kill("stop it")
    assert handle.join(10) == sk.ExitReason.killed("stop it")
    with pytest.raises(sk.BrokenChannelError) as broken:
        client.recv(timeout=10)
    assert broken.value.reason == sk.ExitReason.killed("stop it")


def test_kill_a_cpu_loop(kernel: sk.Kernel, domain: sk.Domain) -> None:
    handle = _ready(kernel, procs.ready_then_spin, domain=domain)
    handle.kill("spin")
    assert handle.join(10) == sk.ExitReason.killed("spin")


def test_arguments_are_private_copies(kernel: sk.Kernel, domain: sk.Domain) -> None:
    data = {"seen": [0]}
    ready, report = procs.report_channel()
    kernel.spawn(procs.mutate_and_report, data, report, domain=domain)
    assert ready.recv(timeout=10).numbers == [0, 1]
    assert data == {"seen": [0]}


# -- moving endpoints in and out ------------------------------------------------------------------


def test_an_endpoint_moves_into_the_domain(
    kernel: sk.Kernel, domain: sk.Domain, style: str
) -> None:
    carrier_in, carrier_out = sk.channel(CARRIER)
    kernel.spawn(
        pick(style, procs.adopt_and_echo, procs.aadopt_and_echo), carrier_in, domain=domain
    )
    server, client = sk.channel(ECHO)
    client.send(Ping(0))  # queued at the server end before the move
    carrier_out.send(Carry(server))
    with pytest.raises(sk.EndpointMovedError):
        server.recv(timeout=0)
    assert client.recv(timeout=10) == Pong(0)
    for n in range(1, 500):
        client.send(Ping(n))
        assert client.recv(timeout=10) == Pong(n)


@pytest.mark.parametrize("destination", ["test", *DOMAIN_KINDS])
def test_an_endpoint_moves_out_of_the_domain(
    kernel: sk.Kernel, domain: sk.Domain, style: str, destination: str
) -> None:
    """A process in the domain makes a channel and sends its server end out: to the test
    itself, or on to a process in a domain of each kind."""
    carrier_in, carrier_out = sk.channel(CARRIER)
    ready, report = procs.report_channel()
    exporter = pick(style, procs.export_server_end, procs.aexport_server_end)
    kernel.spawn(exporter, carrier_out, report, 300, domain=domain)
    carry = carrier_in.recv(timeout=10)
    if destination == "test":
        server = carry.ep
        for _ in range(300):
            ping = server.recv(timeout=10)
            server.send(Pong(ping.n))
    else:
        on_in, on_out = sk.channel(CARRIER)
        kernel.spawn(procs.adopt_and_echo, on_in, domain=destination)
        on_out.send(carry)
    result = ready.recv(timeout=20)
    assert (result.ok, result.count, result.text) == (True, 300, "EndpointMovedError")


# -- select inside a process ---------------------------------------------------------------------


def test_select_inside_a_process(kernel: sk.Kernel, domain: sk.Domain, style: str) -> None:
    """The process selects over two channels: one fed by the test, one by a process in
    another OS process; it sees every message, then NoLiveChannels."""
    fed_by_us_in, fed_by_us = sk.channel(STREAM, capacity=100)
    fed_by_other_in, fed_by_other = sk.channel(STREAM, capacity=100)
    ready, report = procs.report_channel()
    selector = pick(style, procs.select_and_report, procs.aselect_and_report)
    kernel.spawn(selector, [fed_by_us_in, fed_by_other_in], report, 10.0, domain=domain)
    kernel.spawn(procs.send_items, fed_by_other, 50, domain="process")
    for n in range(50, 100):
        fed_by_us.send(Item(n))
    fed_by_us.close()
    result = ready.recv(timeout=20)
    assert (result.kind, result.count) == ("NoLiveChannels", 100)
    assert result.numbers == list(range(100))


def test_select_inside_a_process_times_out(
    kernel: sk.Kernel, domain: sk.Domain, style: str
) -> None:
    receiver, _sender = sk.channel(STREAM)
    ready, report = procs.report_channel()
    selector = pick(style, procs.select_and_report, procs.aselect_and_report)
    kernel.spawn(selector, [receiver], report, 0.05, domain=domain)
    result = ready.recv(timeout=10)
    assert (result.kind, result.count) == ("ReceiveTimeout", 0)


# -- links, monitors, trapping, names -------------------------------------------------------------


@pytest.mark.parametrize("other_kind", DOMAIN_KINDS)
def test_links_cross_domains(kernel: sk.Kernel, domain: sk.Domain, other_kind: str) -> None:
    server, _client = sk.channel(ECHO)
    survivor = _ready(kernel, procs.ready_then_block, server, domain=other_kind)
    crasher = kernel.spawn(procs.fail, "linked crash", domain=domain, link=survivor)
    assert crasher.join(10).kind is sk.ExitKind.EXCEPTION
    reason = survivor.join(10)
    assert reason.kind is sk.ExitKind.LINKED
    normal_server, normal_client = sk.channel(ECHO)
    quitter = kernel.spawn(procs.echo, normal_server, domain=domain)
    bystander_server, _bc = sk.channel(ECHO)
    bystander = _ready(
        kernel, procs.ready_then_block, bystander_server, domain=other_kind, link=quitter
    )
    normal_client.close()
    assert quitter.join(10).kind is sk.ExitKind.NORMAL
    assert bystander.is_alive


def test_monitor(kernel: sk.Kernel, domain: sk.Domain) -> None:
    calls: list[sk.ExitReason] = []
    handle = kernel.spawn(procs.fail, "monitored", domain=domain)
    monitor = handle.monitor(lambda _h, r: calls.append(r))
    reason = monitor.wait(10)
    assert reason.kind is sk.ExitKind.EXCEPTION
    assert calls == [reason]


def test_trap_exits(kernel: sk.Kernel, domain: sk.Domain) -> None:
    ready, report = procs.report_channel()
    trapper = kernel.spawn(procs.trap_one, report, domain=domain, trap_exits=True)
    assert ready.recv(timeout=10).text == "ready"
    crasher = kernel.spawn(procs.fail, "trapped", link=trapper, name="crasher")
    seen = ready.recv(timeout=10)
    assert (seen.count, seen.text, seen.kind) == (crasher.pid, "crasher", "exception")
    assert trapper.join(10).kind is sk.ExitKind.NORMAL


def test_registry_name_freed_at_exit(kernel: sk.Kernel, domain: sk.Domain) -> None:
    server, client = sk.channel(ECHO)
    handle = kernel.spawn(procs.echo, server, domain=domain)
    kernel.register("echo", handle)
    assert kernel.whereis("echo") is handle
    client.close()
    handle.join(10)
    assert kernel.whereis("echo") is None


def test_events(kernel: sk.Kernel, domain: sk.Domain) -> None:
    stream = kernel.events.stream()
    handle = kernel.spawn(procs.fail, "evented", domain=domain)
    handle.join(10)
    kinds = {}
    while len(kinds) < 2:
        event = stream.get(timeout=10)
        if event.pid == handle.pid:
            kinds[event.kind] = event
    assert set(kinds) == {sk.EventKind.SPAWNED, sk.EventKind.EXITED}
    assert kinds[sk.EventKind.EXITED].reason == handle.exit_reason
    assert kinds[sk.EventKind.SPAWNED].domain == domain.name


# -- shutdown -------------------------------------------------------------------------------------


def test_shutdown_with_running_processes(domain_kind: str) -> None:
    kernel = sk.Kernel(grace=3.0)
    domain = kernel.domain(domain_kind)
    server, _client = sk.channel(ECHO)
    handles = [
        _ready(kernel, procs.ready_then_block, server, domain=domain),
        _ready(kernel, procs.ready_then_spin, domain=domain),
        _ready(kernel, procs.aready_then_block, domain=domain),
    ]
    started = time.monotonic()
    kernel.shutdown()
    assert time.monotonic() - started < 3.0 + 1.0
    for handle in handles:
        assert handle.exit_reason is not None
        assert handle.exit_reason.kind is sk.ExitKind.SHUTDOWN
    assert not domain.is_alive
