"""Channel ends that meet again in one OS process talk in memory, losing nothing.

The kernel makes a channel and hands each end to a process of the same
domain: the first end to leave gets a socket pair; when the second arrives
where the first already is, with nothing in flight between them, the two are
linked in memory again (``_core/_rejoin.py``). With messages in flight they
keep the socket. Either way every message arrives, in order.
"""

from __future__ import annotations

import pytest

import procs
import rejoin_procs as rp
import sipkernel as sk
from procs import CARRIER, ECHO, STREAM, Ping, Pong

pytestmark = pytest.mark.timeout(60)

KINDS = ["process", "sandbox"]
STYLES = [
    (rp.echo_then_report, rp.ping_then_report),
    (rp.aecho_then_report, rp.aping_then_report),
    (rp.echo_then_report, rp.aping_then_report),
    (rp.aecho_then_report, rp.ping_then_report),
]
STYLE_NAMES = ["def-def", "async-async", "def-async", "async-def"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("server", "client"), STYLES, ids=["def-def", "async-async", "def-async", "async-def"]
)
def test_two_processes_of_one_domain_talk_in_memory(
    kernel: sk.Kernel, kind: str, server, client
) -> None:
    domain = kernel.domain(kind)
    server_end, client_end = sk.channel(ECHO)
    results, report = procs.report_channel()
    results2, report2 = procs.report_channel()
    first = kernel.spawn(server, server_end, report, 50, domain=domain)  # waits on a socket
    second = kernel.spawn(client, client_end, report2, 50, domain=domain)
    got = results2.recv(timeout=30)
    assert got.numbers == list(range(50))  # every answer, in order
    assert got.text == "memory"
    assert results.recv(timeout=30).text == "memory"
    assert first.join(30).kind is sk.ExitKind.NORMAL
    assert second.join(30).kind is sk.ExitKind.NORMAL


@pytest.mark.parametrize("kind", KINDS)
def test_with_messages_in_flight_the_ends_keep_their_socket(kernel: sk.Kernel, kind: str) -> None:
    domain = kernel.domain(kind)
    receiving, sending = sk.channel(STREAM)
    results, report = procs.report_channel()
    kernel.spawn(rp.count_then_report, receiving, report, 30, domain=domain)
    rp.send_items(sending, 0, 10)  # on their way through the socket when the sender moves
    kernel.spawn(rp.send_items, sending, 10, 20, domain=domain)
    got = results.recv(timeout=30)
    assert got.numbers == list(range(30))
    assert got.text in ("socket", "memory")  # memory only if the first ten were read first


@pytest.mark.parametrize("kind", KINDS)
def test_a_rejoined_end_can_leave_again(kernel: sk.Kernel, kind: str) -> None:
    domain = kernel.domain(kind)
    server_end, client_end = sk.channel(ECHO)
    carried, carrier = sk.channel(CARRIER)
    kernel.spawn(procs.echo, server_end, domain=domain)
    kernel.spawn(rp.ping_then_hand_back, client_end, carrier, domain=domain)
    back = carried.recv(timeout=30)
    assert back.label == "memory"
    client = back.ep  # now in the kernel, over a fresh socket to the server's domain
    client.send(Ping(7), timeout=30)
    assert client.recv(timeout=30) == Pong(7)
    assert rp.transport(client) == "socket"
    client.close()


def test_closing_one_rejoined_end_breaks_the_other(kernel: sk.Kernel) -> None:
    domain = kernel.domain("process")
    server_end, client_end = sk.channel(ECHO)
    results, report = procs.report_channel()
    server = kernel.spawn(procs.expect_broken, server_end, report, domain=domain)
    kernel.spawn(rp.leave, client_end, domain=domain)
    assert results.recv(timeout=30).kind == "normal"
    assert server.join(30).kind is sk.ExitKind.NORMAL
