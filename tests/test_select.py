"""select / aselect: waiting on several endpoints at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

import procs
import sipkernel as sk
from procs import STREAM, Item
from sipkernel._core import _select as sk_select

pytestmark = pytest.mark.timeout(30)


def _streams(n: int, capacity: int = 64) -> tuple[list[sk.Endpoint], list[sk.Endpoint]]:
    """``n`` STREAM channels: (receiving ends, sending ends)."""
    pairs = [sk.channel(STREAM, capacity=capacity) for _ in range(n)]
    return [r for r, _ in pairs], [s for _, s in pairs]


# -- sync ---------------------------------------------------------------------------------


def test_select_returns_the_ready_endpoint_and_its_message() -> None:
    receivers, senders = _streams(3)
    senders[1].send(Item(11))
    ep, msg = sk.select(receivers, timeout=5)
    assert ep is receivers[1]
    assert msg == Item(11)


def test_select_drains_every_ready_endpoint() -> None:
    receivers, senders = _streams(3)
    for i, sender in enumerate(senders):
        sender.send(Item(i))
        sender.send(Item(10 + i))
    got = {}
    for _ in range(6):
        ep, msg = sk.select(receivers, timeout=0)
        got.setdefault(receivers.index(ep), []).append(msg.n)
    assert got == {0: [0, 10], 1: [1, 11], 2: [2, 12]}  # per-channel order kept


def test_select_wakes_when_a_thread_sends() -> None:
    receivers, senders = _streams(2)
    thread = threading.Thread(target=senders[0].send, args=(Item(5),))
    thread.start()
    ep, msg = sk.select(receivers, timeout=10)
    thread.join()
    assert (ep, msg) == (receivers[0], Item(5))


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_select_times_out(timeout: float) -> None:
    receivers, _senders = _streams(2)
    with pytest.raises(sk.ReceiveTimeout):
        sk.select(receivers, timeout=timeout)


def test_select_skips_closed_peers_but_delivers_their_queued_messages() -> None:
    receivers, senders = _streams(2)
    senders[0].send(Item(1))
    senders[0].close()
    ep, msg = sk.select(receivers, timeout=0)
    assert (ep, msg) == (receivers[0], Item(1))
    senders[1].send(Item(2))
    ep, msg = sk.select(receivers, timeout=0)
    assert (ep, msg) == (receivers[1], Item(2))


def test_select_raises_no_live_channels_when_every_peer_is_gone() -> None:
    receivers, senders = _streams(2)
    senders[0].send(Item(1))
    for sender in senders:
        sender.close()
    assert sk.select(receivers, timeout=0)[1] == Item(1)
    with pytest.raises(sk.NoLiveChannels) as info:
        sk.select(receivers, timeout=5)
    assert isinstance(info.value, sk.BrokenChannelError)


def test_select_wakes_with_no_live_channels_when_the_last_peer_leaves() -> None:
    receivers, senders = _streams(2)
    senders[0].close()
    thread = threading.Thread(target=senders[1].close)
    thread.start()
    with pytest.raises(sk.NoLiveChannels):
        sk.select(receivers, timeout=10)
    thread.join()


def test_select_rejects_bad_arguments() -> None:
    with pytest.raises(sk.UsageError):
        sk.select([], timeout=0)
    with pytest.raises(sk.UsageError):
        sk.select(["not an endpoint"], timeout=0)  # type: ignore[list-item]
    receivers, _senders = _streams(1)
    receivers[0].close()
    with pytest.raises(sk.ClosedEndpointError):
        sk.select(receivers, timeout=0)


# -- async --------------------------------------------------------------------------------


def test_aselect_returns_the_ready_endpoint() -> None:
    receivers, senders = _streams(3)

    async def main() -> tuple[sk.Endpoint, object]:
        asyncio.get_running_loop().call_soon(senders[2].send, Item(22))
        return await sk.aselect(receivers, timeout=10)

    ep, msg = asyncio.run(main())
    assert ep is receivers[2]
    assert msg == Item(22)


def test_aselect_wakes_when_a_thread_sends() -> None:
    receivers, senders = _streams(2)

    async def main() -> tuple[sk.Endpoint, object]:
        thread = threading.Thread(target=senders[1].send, args=(Item(9),))
        thread.start()
        try:
            return await sk.aselect(receivers, timeout=10)
        finally:
            thread.join()

    assert asyncio.run(main()) == (receivers[1], Item(9))


def test_aselect_times_out() -> None:
    receivers, _senders = _streams(2)
    with pytest.raises(sk.ReceiveTimeout):
        asyncio.run(sk.aselect(receivers, timeout=0.05))


def test_aselect_raises_no_live_channels() -> None:
    receivers, senders = _streams(2)
    senders[0].close()

    async def main() -> None:
        asyncio.get_running_loop().call_soon(senders[1].close)
        await sk.aselect(receivers, timeout=10)

    with pytest.raises(sk.NoLiveChannels):
        asyncio.run(main())


# -- local and socket-backed endpoints together ------------------------------------------------


def _mixed_senders(kernel: sk.Kernel, count: int, style: str) -> list[sk.Endpoint]:
    """Four streams: two fed by processes in a ``process`` domain (socket-backed at
    our end), two by ``local`` processes (in-process queues). Returns our ends.
    """
    fn = procs.send_items if style == "sync" else procs.asend_items
    process_domain = kernel.domain("process")
    receivers = []
    for domain in (process_domain, "local", process_domain, "local"):
        receiver, sender = sk.channel(STREAM, capacity=count + 1)
        kernel.spawn(fn, sender, count, domain=domain)
        receivers.append(receiver)
    return receivers


def test_select_over_local_and_socket_backed_endpoints(kernel: sk.Kernel, style: str) -> None:
    count = 50
    receivers = _mixed_senders(kernel, count, style)
    got: dict[int, list[int]] = {i: [] for i in range(len(receivers))}

    def select_all() -> None:
        while True:
            ep, msg = sk.select(receivers, timeout=10)
            got[receivers.index(ep)].append(msg.n)

    with pytest.raises(sk.NoLiveChannels):
        select_all()
    assert got == {i: list(range(count)) for i in got}


def test_aselect_over_local_and_socket_backed_endpoints(kernel: sk.Kernel, style: str) -> None:
    count = 50
    receivers = _mixed_senders(kernel, count, style)
    got: dict[int, list[int]] = {i: [] for i in range(len(receivers))}

    async def main() -> None:
        while True:
            ep, msg = await sk.aselect(receivers, timeout=10)
            got[receivers.index(ep)].append(msg.n)

    with pytest.raises(sk.NoLiveChannels):
        asyncio.run(main())
    assert got == {i: list(range(count)) for i in got}


def test_select_times_out_on_a_socket_backed_endpoint(kernel: sk.Kernel) -> None:
    ready, report = procs.report_channel()
    receiver, sender = sk.channel(STREAM)
    handle = kernel.spawn(procs.hold_until_told, report, sender, domain="process")
    # ``sender`` went to the process: ``receiver`` now reads a socket.
    assert ready.recv(timeout=10).text == "ready"
    local_receiver, _local_sender = sk.channel(STREAM)
    with pytest.raises(sk.ReceiveTimeout):
        sk.select([receiver, local_receiver], timeout=0.05)
    with pytest.raises(sk.ReceiveTimeout):
        asyncio.run(sk.aselect([receiver, local_receiver], timeout=0.05))
    receiver.close()
    assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_select_hears_a_peer_that_moved_to_another_os_process_while_it_polled(
    kernel: sk.Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer leaves between select's look at the sockets and its poll.

    The endpoint turns into a socket after select chose to wait in memory;
    without a second look select would sleep through the socket's message.
    """
    [receiver], [sender] = _streams(1)
    poll_all = sk_select._poll_all
    moved: list[sk.ProcessHandle] = []

    def poll_after_the_move(endpoints: list[sk.Endpoint], waiter: object) -> object:
        if not moved:  # the first poll: move the peer out right now
            moved.append(kernel.spawn(procs.send_items, sender, 1, domain="process"))
        return poll_all(endpoints, waiter)  # type: ignore[arg-type]

    monkeypatch.setattr(sk_select, "_poll_all", poll_after_the_move)
    # No timeout: before the fix this select slept forever (the watchdog failed it).
    assert sk.select([receiver]) == (receiver, Item(0))
    assert moved[0].join(20).is_normal
