"""Endpoints inside one OS process: send/receive, contracts, bounds, close, move.

No kernel here: channels made by ``sk.channel`` in the test's own thread, with
helper threads (or an event loop) standing in for the peer. Cross-process
transports are covered by the domain suites.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest

import sipkernel as sk
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
    Stranger,
)

pytestmark = pytest.mark.timeout(30)


def _thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# -- basics ---------------------------------------------------------------------------------


def test_channel_returns_exporter_and_importer() -> None:
    server, client = sk.channel(ECHO)
    assert server.role is sk.Role.EXPORTER
    assert client.role is sk.Role.IMPORTER
    assert server.contract is ECHO
    assert client.contract is ECHO
    assert server.state == client.state == "Start"
    assert not server.closed
    assert not client.peer_gone
    assert "Echo" in repr(server)


def test_request_reply_advances_both_ends_through_the_contract() -> None:
    server, client = sk.channel(SERVICE)
    client.send(Request("hi"))
    assert client.state != "Start"  # waiting for Reply or Failure
    assert server.recv() == Request("hi")
    server.send(Reply("HI"))
    assert client.recv() == Reply("HI")
    assert server.state == client.state == "Start"
    client.send(Request("again"))
    server.recv()
    server.send(Failure("no"))
    assert client.recv() == Failure("no")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"capacity": 0}, "capacity"), ({"max_message": 10}, "max_message")],
)
def test_channel_rejects_bad_bounds(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(sk.UsageError, match=match):
        sk.channel(ECHO, **kwargs)


def test_channel_needs_a_contract() -> None:
    with pytest.raises(sk.UsageError):
        sk.channel("Echo")  # type: ignore[arg-type]


def test_recv_timeout_is_a_receive_timeout() -> None:
    server, _client = sk.channel(ECHO)
    with pytest.raises(sk.ReceiveTimeout):
        server.recv(timeout=0)
    with pytest.raises(TimeoutError):  # ReceiveTimeout is also a TimeoutError
        server.recv(timeout=0.01)


def test_negative_timeout_is_a_usage_error() -> None:
    server, _client = sk.channel(ECHO)
    with pytest.raises(sk.UsageError):
        server.recv(timeout=-1)


def test_an_async_receive_that_times_out_leaves_no_waiter_behind() -> None:
    server, client = sk.channel(ECHO)

    async def main() -> None:
        with pytest.raises(sk.ReceiveTimeout):
            await server.arecv(timeout=0.01)
        assert server.live_core().recv_waiters == []
        client.send(Ping(1))
        assert await server.arecv(timeout=1) == Ping(1)

    asyncio.run(main())


def test_a_queued_message_is_received_at_once_async() -> None:
    server, client = sk.channel(ECHO)
    client.send(Ping(1))

    async def main() -> None:
        assert await server.arecv() == Ping(1)  # no waiter, no wait
        assert server.live_core().recv_waiters == []

    asyncio.run(main())


def test_recv_wakes_when_a_thread_sends() -> None:
    server, client = sk.channel(ECHO)
    sender = _thread(client.send, Ping(7))
    assert server.recv(timeout=10) == Ping(7)
    sender.join()


# -- ordering and no loss ------------------------------------------------------------------------


def _produce(sender: sk.Endpoint, count: int, errors: list[BaseException]) -> None:
    try:
        for n in range(count):
            sender.send(Item(n), timeout=2)
    except BaseException as exc:
        errors.append(exc)
    finally:
        sender.close()


def _drain(receiver: sk.Endpoint) -> list[int]:
    got = []
    try:
        while True:
            got.append(receiver.recv(timeout=10).n)
    except sk.BrokenChannelError:
        return got


def test_ten_thousand_messages_arrive_in_order_across_threads() -> None:
    count = 10_000
    receiver, sender = sk.channel(STREAM, capacity=count)
    errors: list[BaseException] = []
    producer = _thread(_produce, sender, count, errors)
    got = _drain(receiver)
    producer.join()
    assert not errors
    assert got == list(range(count))


def test_ten_thousand_messages_in_order_through_a_small_queue() -> None:
    count = 10_000
    receiver, sender = sk.channel(STREAM, capacity=16)
    errors: list[BaseException] = []
    producer = _thread(_produce, sender, count, errors)
    got = _drain(receiver)
    producer.join()
    assert not errors, errors[0]
    assert got == list(range(count))


def _ordered_async(capacity: int, count: int) -> tuple[list[int], list[BaseException]]:
    receiver, sender = sk.channel(STREAM, capacity=capacity)
    errors: list[BaseException] = []

    async def produce() -> None:
        try:
            for n in range(count):
                await sender.asend(Item(n), timeout=2)
        except BaseException as exc:
            errors.append(exc)
        finally:
            sender.close()

    async def main() -> list[int]:
        task = asyncio.create_task(produce())
        got = []
        try:
            while True:
                got.append((await receiver.arecv(timeout=10)).n)
        except sk.BrokenChannelError:
            pass
        await task
        return got

    return asyncio.run(main()), errors


def test_ten_thousand_messages_arrive_in_order_async() -> None:
    got, errors = _ordered_async(capacity=10_000, count=10_000)
    assert not errors
    assert got == list(range(10_000))


def test_ten_thousand_messages_in_order_through_a_small_queue_async() -> None:
    got, errors = _ordered_async(capacity=16, count=10_000)
    assert not errors, errors[0]
    assert got == list(range(10_000))


# -- backpressure ---------------------------------------------------------------------------------


def test_send_with_timeout_raises_when_the_queue_is_full() -> None:
    receiver, sender = sk.channel(STREAM, capacity=2)
    sender.send(Item(0))
    sender.send(Item(1))
    with pytest.raises(TimeoutError):
        sender.send(Item(2), timeout=0.05)
    # The timed-out message was not delivered; the channel still works.
    assert receiver.recv(timeout=0) == Item(0)
    sender.send(Item(3), timeout=0)
    assert [receiver.recv(timeout=0).n for _ in range(2)] == [1, 3]


def test_asend_with_timeout_raises_when_the_queue_is_full() -> None:
    receiver, sender = sk.channel(STREAM, capacity=1)

    async def main() -> None:
        await sender.asend(Item(0))
        with pytest.raises(TimeoutError):
            await sender.asend(Item(1), timeout=0.05)

    asyncio.run(main())
    assert receiver.recv(timeout=0) == Item(0)
    with pytest.raises(sk.ReceiveTimeout):
        receiver.recv(timeout=0)


def test_blocked_sender_resumes_when_the_receiver_drains() -> None:
    receiver, sender = sk.channel(STREAM, capacity=1)
    sender.send(Item(0))
    sent = threading.Event()
    failed: list[BaseException] = []

    def send_one() -> None:
        try:
            sender.send(Item(1), timeout=2)
            sent.set()
        except BaseException as exc:
            failed.append(exc)

    thread = _thread(send_one)
    assert not sent.is_set()
    assert receiver.recv(timeout=5) == Item(0)
    thread.join()
    assert not failed, failed
    assert receiver.recv(timeout=0) == Item(1)


def test_blocked_async_sender_resumes_when_the_receiver_drains() -> None:
    receiver, sender = sk.channel(STREAM, capacity=1)

    async def main() -> None:
        await sender.asend(Item(0))
        blocked = asyncio.create_task(sender.asend(Item(1), timeout=2))
        await asyncio.sleep(0)  # let it park on the full queue
        assert not blocked.done()
        assert (await receiver.arecv(timeout=5)) == Item(0)
        await blocked
        assert (await receiver.arecv(timeout=0)) == Item(1)

    asyncio.run(main())


# -- contract violations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [Pong(1), Stranger(1)],
    ids=["wrong-message-for-the-state", "message-not-in-the-contract"],
)
def test_violation_breaks_the_channel_for_both_ends(bad: object) -> None:
    server, client = sk.channel(ECHO)
    with pytest.raises(sk.ProtocolViolation) as info:
        client.send(bad)
    assert info.value.contract == "Echo"
    assert info.value.message_type == type(bad).__name__
    assert not info.value.by_peer
    with pytest.raises(sk.BrokenChannelError) as broken:
        server.recv(timeout=5)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.PROTOCOL_VIOLATION
    assert "Echo" in broken.value.reason.message
    with pytest.raises(sk.ClosedEndpointError):  # the violator's end is closed
        client.send(Ping(1))


def test_violation_by_the_exporter_breaks_the_channel() -> None:
    server, client = sk.channel(ECHO)
    with pytest.raises(sk.ProtocolViolation):
        server.send(Pong(1))  # the server may only receive in Start
    with pytest.raises(sk.BrokenChannelError) as broken:
        client.recv(timeout=5)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.PROTOCOL_VIOLATION


def test_a_rejected_message_leaves_the_violator_state_unchanged() -> None:
    _server, client = sk.channel(ECHO)
    with pytest.raises(sk.ProtocolViolation) as info:
        client.send(Pong(1))
    assert info.value.state == "Start"


def test_malformed_field_type_breaks_the_channel() -> None:
    server, client = sk.channel(ECHO)
    with pytest.raises(sk.ProtocolViolation):
        client.send(Ping(n="x"))  # type: ignore[arg-type]
    with pytest.raises(sk.BrokenChannelError) as broken:
        server.recv(timeout=1)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.PROTOCOL_VIOLATION


def test_malformed_field_type_never_reaches_the_receiver() -> None:
    server, client = sk.channel(ECHO)
    with pytest.raises(sk.ProtocolViolation):
        client.send(Ping(n="x"))  # type: ignore[arg-type]
    with pytest.raises((sk.ReceiveTimeout, sk.BrokenChannelError)):
        server.recv(timeout=0)


def test_unencodable_field_is_rejected_at_the_call_site() -> None:
    receiver, sender = sk.channel(STREAM)
    with pytest.raises((sk.UsageError, sk.ProtocolViolation)):
        sender.send(Item(n=1, data=object()))  # type: ignore[arg-type]
    with pytest.raises((sk.ReceiveTimeout, sk.BrokenChannelError)):
        receiver.recv(timeout=0)


# -- size limit ----------------------------------------------------------------------------------


def test_message_too_large_is_rejected_and_the_channel_still_works() -> None:
    receiver, sender = sk.channel(STREAM, max_message=1024)
    with pytest.raises(sk.MessageTooLarge):
        sender.send(Item(0, b"x" * 4096))
    sender.send(Item(1, b"y" * 100))
    assert receiver.recv(timeout=5) == Item(1, b"y" * 100)


def test_message_too_large_does_not_advance_the_contract() -> None:
    server, client = sk.channel(SERVICE, max_message=256)
    with pytest.raises(sk.MessageTooLarge):
        client.send(Request("x" * 1000))
    assert client.state == "Start"
    client.send(Request("small"))
    assert server.recv(timeout=5) == Request("small")


# -- close semantics -----------------------------------------------------------------------------


def test_closing_your_end_is_closed_for_you_and_broken_for_the_peer_after_draining() -> None:
    receiver, sender = sk.channel(STREAM)
    sender.send(Item(1))
    sender.send(Item(2))
    sender.close()
    assert sender.closed
    with pytest.raises(sk.ClosedEndpointError):
        sender.send(Item(3))
    with pytest.raises(sk.ClosedEndpointError):
        sender.state  # noqa: B018 - the property raises
    assert receiver.peer_gone
    assert receiver.recv(timeout=0) == Item(1)  # lossless: queued messages first
    assert receiver.recv(timeout=0) == Item(2)
    with pytest.raises(sk.BrokenChannelError) as broken:
        receiver.recv(timeout=0)
    assert not isinstance(broken.value, sk.ClosedEndpointError)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.NORMAL


def test_close_is_idempotent_and_the_receiver_closing_breaks_the_sender() -> None:
    receiver, sender = sk.channel(STREAM)
    receiver.close()
    receiver.close()
    with pytest.raises(sk.ClosedEndpointError):
        receiver.recv(timeout=0)
    with pytest.raises(sk.BrokenChannelError) as broken:
        sender.send(Item(1))
    assert broken.value.reason is not None
    assert broken.value.reason.is_normal


def test_close_with_tells_the_peer_the_reason() -> None:
    receiver, sender = sk.channel(STREAM)
    sender.close_with(sk.ExitReason.killed("told to go"))
    with pytest.raises(sk.BrokenChannelError) as broken:
        receiver.recv(timeout=0)
    assert broken.value.reason == sk.ExitReason.killed("told to go")


def test_close_wakes_a_blocked_receiver() -> None:
    receiver, sender = sk.channel(STREAM)
    outcome: list[BaseException] = []

    def receive() -> None:
        try:
            receiver.recv(timeout=10)
        except BaseException as exc:
            outcome.append(exc)

    thread = _thread(receive)
    sender.close()
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], sk.BrokenChannelError)


def test_close_wakes_a_blocked_async_receiver() -> None:
    receiver, sender = sk.channel(STREAM)

    async def main() -> None:
        task = asyncio.create_task(receiver.arecv(timeout=10))
        await asyncio.sleep(0)
        threading.Thread(target=sender.close).start()
        with pytest.raises(sk.BrokenChannelError):
            await task

    asyncio.run(main())


def test_endpoint_is_a_context_manager() -> None:
    receiver, sender = sk.channel(STREAM)
    with sender:
        sender.send(Item(1))
    assert sender.closed
    assert receiver.recv(timeout=0) == Item(1)
    with pytest.raises(sk.BrokenChannelError):
        receiver.recv(timeout=0)


def test_closing_the_sender_wakes_a_sender_blocked_on_a_full_queue() -> None:
    receiver, sender = sk.channel(STREAM, capacity=1)
    sender.send(Item(0))
    outcome: list[BaseException] = []

    def send_one() -> None:
        try:
            sender.send(Item(1), timeout=10)
        except BaseException as exc:
            outcome.append(exc)

    thread = _thread(send_one)
    receiver.close()
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], sk.BrokenChannelError)


# -- moving endpoints ---------------------------------------------------------------------------


def test_sending_an_endpoint_moves_it() -> None:
    carrier_in, carrier_out = sk.channel(CARRIER)
    server, client = sk.channel(ECHO)
    client.send(Ping(1))  # queued at the server end before the move
    carrier_out.send(Carry(server, label="server"))
    with pytest.raises(sk.EndpointMovedError):
        server.recv(timeout=0)
    with pytest.raises(sk.EndpointMovedError):
        server.send(Pong(1))
    assert isinstance(sk.EndpointMovedError("x"), sk.ClosedEndpointError)
    carry = carrier_in.recv(timeout=5)
    moved = carry.ep
    assert carry.label == "server"
    assert moved.recv(timeout=0) == Ping(1)
    moved.send(Pong(1))
    assert client.recv(timeout=5) == Pong(1)


def test_an_endpoint_cannot_be_sent_twice() -> None:
    _carrier_in, carrier_out = sk.channel(CARRIER)
    server, _client = sk.channel(ECHO)
    carrier_out.send(Carry(server))
    with pytest.raises(sk.EndpointMovedError):
        carrier_out.send(Carry(server))


def test_a_failed_send_gives_the_endpoint_back() -> None:
    carrier_in, carrier_out = sk.channel(CARRIER)
    server, client = sk.channel(ECHO)
    carrier_in.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(sk.BrokenChannelError):
            carrier_out.send(Carry(server))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    client.send(Ping(3))  # still ours: usable
    assert server.recv(timeout=0) == Ping(3)


def test_an_endpoint_dropped_in_a_closed_inbox_is_closed() -> None:
    carrier_in, carrier_out = sk.channel(CARRIER)
    server, client = sk.channel(ECHO)
    carrier_out.send(Carry(server))
    carrier_in.close()  # never received: the carried server end goes with it
    with pytest.raises(sk.BrokenChannelError) as broken:
        client.recv(timeout=5)
    assert broken.value.reason is not None
    assert broken.value.reason.kind is sk.ExitKind.PEER_GONE


def test_a_closed_endpoint_cannot_be_sent() -> None:
    _carrier_in, carrier_out = sk.channel(CARRIER)
    server, _client = sk.channel(ECHO)
    server.close()
    with pytest.raises(sk.ClosedEndpointError):
        carrier_out.send(Carry(server))
