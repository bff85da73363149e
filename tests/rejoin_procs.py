"""Processes for the rejoin tests: each says which transport its endpoint used."""

from __future__ import annotations

import sipkernel as sk
from procs import Carry, Item, Ping, Pong, Report


def transport(ep: sk.Endpoint) -> str:
    """``memory`` when the end's peer is in this OS process, linked; ``socket`` otherwise."""
    core = ep.live_core()
    return "memory" if core.peer is not None and core.sock is None else "socket"


def echo_then_report(ep: sk.Endpoint, report: sk.Endpoint, rounds: int) -> None:
    """Answer ``rounds`` pings, then report the transport the first answer took (later
    the peer may have ended, which unlinks it; the client reports its own)."""
    seen = ""
    for _ in range(rounds):
        ping = ep.recv(timeout=30)
        ep.send(Pong(ping.n))
        seen = seen or transport(ep)
    report.send(Report(text=seen))


async def aecho_then_report(ep: sk.Endpoint, report: sk.Endpoint, rounds: int) -> None:
    seen = ""
    for _ in range(rounds):
        ping = await ep.arecv(timeout=30)
        await ep.asend(Pong(ping.n))
        seen = seen or transport(ep)
    await report.asend(Report(text=seen))


def ping_then_report(ep: sk.Endpoint, report: sk.Endpoint, rounds: int) -> None:
    answers: list[int] = []
    seen = ""
    for n in range(rounds):
        ep.send(Ping(n))
        answers.append(ep.recv(timeout=30).n)
        seen = seen or transport(ep)
    report.send(Report(text=seen, numbers=answers))


async def aping_then_report(ep: sk.Endpoint, report: sk.Endpoint, rounds: int) -> None:
    answers: list[int] = []
    seen = ""
    for n in range(rounds):
        await ep.asend(Ping(n))
        answers.append((await ep.arecv(timeout=30)).n)
        seen = seen or transport(ep)
    await report.asend(Report(text=seen, numbers=answers))


def count_then_report(ep: sk.Endpoint, report: sk.Endpoint, expected: int) -> None:
    """Receive ``expected`` items of a stream; report their numbers and the transport."""
    numbers = [ep.recv(timeout=30).n for _ in range(expected)]
    report.send(Report(text=transport(ep), numbers=numbers))


def send_items(ep: sk.Endpoint, first: int, count: int) -> None:
    for n in range(first, first + count):
        ep.send(Item(n))


def ping_then_hand_back(ep: sk.Endpoint, carrier: sk.Endpoint) -> None:
    """One round trip (in memory, once rejoined), then give the end back to the kernel."""
    ep.send(Ping(1))
    ep.recv(timeout=30)
    carrier.send(Carry(ep, label=transport(ep)))


def leave(ep: sk.Endpoint) -> None:
    """End at once: the exit closes ``ep``."""
