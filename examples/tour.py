"""sipkernel in one screen: contracts, three domains, a violation, a crash and a restart.

Run with ``python examples/tour.py``. Everything it shows is
real: the tally service runs in the kernel, in a child OS process and in a
sandbox (where it is pid 1 of its own pid namespace), the SIGKILL is a real
signal, and the supervisor really forks a new domain to replace it.
"""

import os
import queue
import signal
import time

import msgspec

import sipkernel as sk

# -- the protocol ------------------------------------------------------------------


class Add(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Added(msgspec.Struct, frozen=True, tag=True):
    total: int


class Read(msgspec.Struct, frozen=True, tag=True):
    pass


class Value(msgspec.Struct, frozen=True, tag=True):
    total: int
    os_pid: int
    isolation: str


TALLY_SPEC = """
    state Ready:   Add? -> Adding | Read? -> Reading;
    state Adding:  Added! -> Ready;
    state Reading: Value! -> Ready;
"""
TALLY = sk.Contract("Tally", TALLY_SPEC, [Add, Added, Read, Value])


# -- the processes -------------------------------------------------------------------


def tally(requests: sk.Endpoint) -> None:
    """Keep a running total; answer every request (the contract says how)."""
    total = 0
    me = sk.current()
    try:
        while True:
            request = requests.recv()
            if isinstance(request, Add):
                total += request.amount
                requests.send(Added(total))
            else:
                requests.send(Value(total, os.getpid(), me.isolation()))
    except sk.BrokenChannelError as gone:
        print(
            f"  [tally<{me.pid}> in {me.isolation()}] my client is gone: {gone.reason.describe()}"
        )


# -- the demonstration ------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def section(number: int, title: str) -> None:
    say()
    say(f"{number}. {title}")
    say("-" * (len(title) + 3))


def show_contract() -> None:
    section(1, "A contract: who may send what, in which state")
    say("The tally service's side of the channel ('?' it receives, '!' it sends):")
    for line in TALLY_SPEC.strip().splitlines():
        say(f"    {line.strip()}")
    findings = TALLY.analyse()
    say(f"Static check: {len(findings)} problems (no deadlock, no race, no unbounded queue).")


def two_domains(kernel: sk.Kernel) -> None:
    section(2, "The same code in three domains")
    for domain in ("local", "process", "sandbox"):
        service, client = sk.channel(TALLY)
        process = kernel.spawn(tally, service, domain=domain, name=f"tally-{domain}")
        for amount in (5, 10, 27):
            client.send(Add(amount))
            client.recv()
        client.send(Read())
        value = client.recv()
        where = {
            "local": "the kernel's own process",
            "process": "a child process",
            "sandbox": "a child process in its own namespaces, seccomp-filtered",
        }[domain]
        say(
            f"  {domain:8} total={value.total}  isolation={value.isolation!r}  "
            f"ran in {where} (pid {value.os_pid})"
        )
        client.close()
        say(f"  {domain:8} exit: {process.join(10).describe()}")


def violation(kernel: sk.Kernel) -> None:
    section(3, "A contract violation is caught at the sender")
    service, client = sk.channel(TALLY)
    process = kernel.spawn(tally, service, domain="process", name="tally-strict")
    client.send(Add(1))
    say("  The client sends Add(1), then Add(2) without waiting for the reply:")
    try:
        client.send(Add(2))
    except sk.ProtocolViolation as error:
        say(f"  ProtocolViolation: {error}")
    say(f"  The service saw its channel break and ended: {process.join(10).describe()}")


def crash_and_restart(kernel: sk.Kernel) -> None:
    section(4, "A crash is contained; the supervisor restarts the service")
    handoff: queue.Queue[sk.Endpoint] = queue.Queue()

    def fresh_channel() -> tuple[sk.Endpoint]:
        service, client = sk.channel(TALLY)
        handoff.put(client)  # the client side of each new incarnation
        return (service,)

    spec = sk.ChildSpec("tally", tally, args_factory=fresh_channel, domain="process")
    events = kernel.events.stream()
    with sk.Supervisor(kernel, [spec], intensity=3, period=10.0, name="tally-supervisor") as sup:
        client = handoff.get(timeout=10)
        client.send(Add(42))
        client.recv()
        victim = sup.child("tally")
        assert victim is not None
        os_pid = victim.domain.os_pid  # type: ignore[attr-defined]
        say(f"  tally<{victim.pid}> runs in OS process {os_pid}; the demo sends it SIGKILL")
        os.kill(os_pid, signal.SIGKILL)
        try:
            client.recv(timeout=10)
        except sk.BrokenChannelError as broken:
            say(f"  the client's next receive: BrokenChannelError ({broken.reason.describe()})")
        restarted = events.wait_for(lambda e: e.kind is sk.EventKind.RESTARTED, timeout=10)
        say(f"  supervisor: {restarted.describe()}")
        client = handoff.get(timeout=10)
        client.send(Add(8))
        say(f"  the new incarnation answers: total={client.recv().total} (a fresh start)")
        client.close()
    events.close()


def exit_reasons(log: list[sk.Event]) -> None:
    section(5, "Every exit has a typed reason")
    for event in log:
        if event.kind is sk.EventKind.EXITED and event.reason is not None:
            say(f"  {event.name + '<' + str(event.pid) + '>':24} {event.reason.describe()}")


def main() -> None:
    say("sipkernel: software-isolated processes for Python")
    log: list[sk.Event] = []
    started = time.perf_counter()
    with sk.Kernel(grace=2.0) as kernel:
        kernel.events.subscribe(log.append)
        show_contract()
        two_domains(kernel)
        violation(kernel)
        crash_and_restart(kernel)
    exit_reasons(log)
    say()
    say(f"Done in {time.perf_counter() - started:.2f} s; the kernel shut down and reclaimed")
    say("every domain, thread and descriptor it had made.")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: the kernel shut down in order")
