"""Supervisors: strategies, restart types, intensity, nesting, names, ordered stops.

Deterministic without sleeps: a test kills a child exactly when it wants (a
``worker`` blocks on its control endpoint until told), then waits for the
kernel's events. ``Supervisor.which_children``/``child`` are answered by the
supervisor's thread after every exit already reported to it, so once a test
has seen a child's ``EXITED`` event, asking the supervisor shows the decision
taken on that exit. The period of the restart intensity is measured with a
clock the test moves by hand.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence

import pytest

import sipkernel as sk
import supervised_procs as sp
from sipkernel import ExitKind, Restart, Strategy

TIMEOUT = 15.0
"""Seconds a test waits for an event before it fails (never slept)."""


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def controls() -> Iterator[sp.Controls]:
    made = sp.Controls()
    yield made
    made.close()


@pytest.fixture
def stream(kernel: sk.Kernel) -> Iterator[sk.EventStream]:
    with kernel.events.stream() as events:
        yield events


def workers(
    controls: sp.Controls, ids: Sequence[str], domain: str | None = None, **options: object
) -> list[sk.ChildSpec]:
    """One controlled ``worker`` child per id."""
    return [
        sk.ChildSpec(
            child_id,
            sp.worker,
            args_factory=controls.factory(child_id),
            domain=domain,
            **options,  # type: ignore[arg-type]  # restart=, register_as=, ...
        )
        for child_id in ids
    ]


def pids(supervisor: sk.Supervisor) -> dict[str, int | None]:
    return {
        child_id: None if handle is None else handle.pid
        for child_id, handle in supervisor.which_children()
    }


def handles(supervisor: sk.Supervisor) -> dict[str, sk.ProcessHandle]:
    found = {}
    for child_id, handle in supervisor.which_children():
        assert handle is not None, f"{child_id} is down"
        found[child_id] = handle
    return found


def wait_event(
    stream: sk.EventStream, kind: sk.EventKind, when: Callable[[sk.Event], bool] = lambda e: True
) -> sk.Event:
    return stream.wait_for(lambda e: e.kind is kind and when(e), TIMEOUT)


def restarted(stream: sk.EventStream, child_id: str) -> sk.Event:
    return wait_event(stream, sk.EventKind.RESTARTED, lambda e: e.name == child_id)


def exited(stream: sk.EventStream, pid: int) -> sk.Event:
    return wait_event(stream, sk.EventKind.EXITED, lambda e: e.pid == pid)


def events_of(stream: sk.EventStream, kind: sk.EventKind) -> list[sk.Event]:
    """The events of ``kind`` among those not read yet."""
    return [e for e in stream.drain() if e.kind is kind]


def events_until(stream: sk.EventStream, last: Callable[[sk.Event], bool]) -> list[sk.Event]:
    """Every event up to and including the first one matching ``last``."""
    seen = []
    while not seen or not last(seen[-1]):
        seen.append(stream.get(TIMEOUT))
    return seen


# -- strategies ---------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_failed_child(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "abc", domain_kind), name="sup").start()
    before = pids(sup)
    controls.crash("b", "b went wrong")
    event = restarted(stream, "b")
    after = pids(sup)
    assert after["a"] == before["a"]
    assert after["c"] == before["c"]
    assert after["b"] not in (None, before["b"])
    assert event.pid == after["b"]
    assert event.reason is not None
    assert event.reason.kind is ExitKind.EXCEPTION
    assert event.reason.message == "b went wrong"
    assert [(r.id, r.old_pid, r.new_pid, r.cause) for r in sup.restarts] == [
        ("b", before["b"], after["b"], "b")
    ]
    assert controls.probe("b") == sp.Alive(after["b"], domain_kind)  # type: ignore[arg-type]
    assert events_of(stream, sk.EventKind.RESTARTED) == []
    assert sup.stop().kind is ExitKind.SHUTDOWN


def test_one_for_all_restarts_every_child(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(
        kernel, workers(controls, "abc", domain_kind), strategy=Strategy.ONE_FOR_ALL
    ).start()
    old = handles(sup)
    controls.crash("b")
    events = [restarted(stream, child_id) for child_id in "abc"]  # in start order
    new = handles(sup)
    assert all(new[c].pid != old[c].pid for c in "abc")
    assert [e.pid for e in events] == [new[c].pid for c in "abc"]
    assert old["a"].exit_reason == old["c"].exit_reason == sk.ExitReason.shutdown()
    assert {r.cause for r in sup.restarts} == {"b"}
    assert [r.id for r in sup.restarts] == ["a", "b", "c"]
    # The siblings it stopped itself did not count as failures (intensity is 1).
    assert sup.exit_reason is None
    assert [controls.starts(c) for c in "abc"] == [2, 2, 2]
    sup.stop()


def test_one_for_all_stops_the_others_in_reverse_order(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "abcd"), strategy=Strategy.ONE_FOR_ALL).start()
    old = handles(sup)
    controls.crash("b")
    seen = events_until(stream, lambda e: e.kind is sk.EventKind.RESTARTED and e.name == "d")
    stopped = [
        e.pid
        for e in seen
        if e.kind is sk.EventKind.EXITED and e.reason == sk.ExitReason.shutdown()
    ]
    assert stopped == [old["d"].pid, old["c"].pid, old["a"].pid]
    restarts = [e.name for e in seen if e.kind is sk.EventKind.RESTARTED]
    assert restarts == ["a", "b", "c", "d"]
    sup.stop()


def test_rest_for_one_restarts_the_failed_child_and_those_after_it(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(
        kernel, workers(controls, "abcd", domain_kind), strategy=Strategy.REST_FOR_ONE
    ).start()
    old = handles(sup)
    controls.crash("b")
    restarted(stream, "d")
    new = handles(sup)
    assert new["a"] is old["a"]
    assert all(new[c].pid != old[c].pid for c in "bcd")
    assert [(r.id, r.cause) for r in sup.restarts] == [("b", "b"), ("c", "b"), ("d", "b")]
    assert old["c"].exit_reason == old["d"].exit_reason == sk.ExitReason.shutdown()
    assert controls.probe("d").pid == new["d"].pid
    sup.stop()


def test_one_for_all_does_not_restart_a_temporary_sibling(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    children = [
        *workers(controls, "a", restart=Restart.TEMPORARY),
        *workers(controls, "b"),
    ]
    sup = sk.Supervisor(kernel, children, strategy=Strategy.ONE_FOR_ALL).start()
    old = handles(sup)
    controls.crash("b")
    restarted(stream, "b")
    assert old["a"].exit_reason == sk.ExitReason.shutdown()
    assert sup.child("a") is None
    assert [r.id for r in sup.restarts] == ["b"]
    sup.stop()


# -- restart types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((restart, how, expect), id=f"{restart.value}-{how}")
        for restart, how, expect in [
            (Restart.PERMANENT, "crash", True),
            (Restart.PERMANENT, "finish", True),
            (Restart.TRANSIENT, "crash", True),
            (Restart.TRANSIENT, "finish", False),
            (Restart.TEMPORARY, "crash", False),
            (Restart.TEMPORARY, "finish", False),
        ]
    ],
)
def test_restart_types(
    kernel: sk.Kernel,
    controls: sp.Controls,
    stream: sk.EventStream,
    domain_kind: str,
    case: tuple[Restart, str, bool],
) -> None:
    restart, how, expect_restart = case
    children = [*workers(controls, "w", domain_kind, restart=restart), *workers(controls, "s")]
    sup = sk.Supervisor(kernel, children).start()
    old = handles(sup)
    getattr(controls, how)("w")
    reason = exited(stream, old["w"].pid).reason
    assert reason is not None
    assert reason.kind is (ExitKind.EXCEPTION if how == "crash" else ExitKind.NORMAL)
    now = sup.child("w")  # answered after the supervisor handled the exit
    if expect_restart:
        assert now is not None
        assert now.pid != old["w"].pid
        assert [(r.id, r.reason) for r in sup.restarts] == [("w", reason)]
        assert controls.probe("w").pid == now.pid
    else:
        assert now is None
        assert sup.restarts == ()
        assert events_of(stream, sk.EventKind.RESTARTED) == []
    assert sup.child("s") is old["s"]
    assert sup.exit_reason is None
    sup.stop()


# -- intensity ------------------------------------------------------------------------------


def test_intensity_exceeded_gives_up_and_stops_every_child(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    children = [
        *workers(controls, "a", domain_kind),
        sk.ChildSpec("boom", sp.crash_at_once, domain=domain_kind),
        *workers(controls, "c", domain_kind),
    ]
    clock = sp.ManualClock()
    sup = sk.Supervisor(kernel, children, intensity=2, period=10.0, name="sup", clock=clock)
    sup.start()
    reason = sup.wait(TIMEOUT)
    assert reason.kind is ExitKind.LIMIT
    assert reason.limit == "restart intensity"
    assert [r.id for r in sup.restarts] == ["boom", "boom"]  # the third failure is one too many
    assert pids(sup) == {"a": None, "boom": None, "c": None}
    assert sup.handle is not None
    assert sup.handle.exit_reason == reason
    # Every exit is published by the time wait() returns: boom's three, then the ordered
    # stop of the others (reverse order), the give-up, and the supervisor's own exit.
    seen = [
        (e.kind, e.name, e.reason)
        for e in stream.drain()
        if e.kind in (sk.EventKind.EXITED, sk.EventKind.SUPERVISOR_GAVE_UP)
    ]
    boom = [r for kind, name, r in seen if name == "boom"]
    assert len(boom) == 3
    assert all(r is not None and r.message == "crashed at start" for r in boom)
    assert [(kind, name, r) for kind, name, r in seen if name != "boom"] == [
        (sk.EventKind.EXITED, "c", sk.ExitReason.shutdown()),
        (sk.EventKind.EXITED, "a", sk.ExitReason.shutdown()),
        (sk.EventKind.SUPERVISOR_GAVE_UP, "sup", reason),
        (sk.EventKind.EXITED, "sup", reason),
    ]
    assert sup.stop() == reason  # already gone: stop is a no-op that returns the reason


def test_restarts_older_than_the_period_are_forgotten(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    clock = sp.ManualClock()
    sup = sk.Supervisor(kernel, workers(controls, "w"), intensity=1, period=10.0, clock=clock)
    sup.start()
    controls.crash("w")
    restarted(stream, "w")  # restarts at t=0: [0]
    clock.advance(10.5)
    controls.crash("w")
    restarted(stream, "w")  # t=10.5: the one at 0 is out of the window: [10.5]
    assert len(sup.restarts) == 2
    assert sup.exit_reason is None
    controls.crash("w")  # t=10.5 again: [10.5, 10.5] is two in the window: one too many
    assert sup.wait(TIMEOUT).kind is ExitKind.LIMIT
    assert len(sup.restarts) == 2


def test_a_restart_exactly_one_period_ago_still_counts(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    clock = sp.ManualClock()
    sup = sk.Supervisor(kernel, workers(controls, "w"), intensity=1, period=10.0, clock=clock)
    sup.start()
    controls.crash("w")
    restarted(stream, "w")
    clock.advance(10.0)  # OTP: a restart at now - period is still inside the window
    controls.crash("w")
    assert sup.wait(TIMEOUT).kind is ExitKind.LIMIT
    assert len(sup.restarts) == 1


class FailingOnce:
    """An ``args_factory`` whose second call fails (a restart that cannot start)."""

    def __init__(self, make: Callable[[], tuple[sk.Endpoint]]) -> None:
        self.make = make
        self.calls = 0

    def __call__(self) -> tuple[sk.Endpoint]:
        self.calls += 1
        if self.calls == 2:
            raise OSError("no resources right now")
        return self.make()


@pytest.mark.parametrize(("intensity", "recovers"), [(2, True), (1, False)])
def test_a_failed_restart_is_retried_and_counted(
    kernel: sk.Kernel,
    controls: sp.Controls,
    stream: sk.EventStream,
    intensity: int,
    recovers: bool,
) -> None:
    factory = FailingOnce(controls.factory("w"))
    spec = sk.ChildSpec("w", sp.worker, args_factory=factory)
    sup = sk.Supervisor(kernel, [spec], intensity=intensity, clock=sp.ManualClock()).start()
    first = handles(sup)["w"]
    controls.crash("w")
    if recovers:
        event = restarted(stream, "w")
        assert event.reason is not None
        assert event.reason.exc_type == "builtins.OSError"  # the retry's cause
        assert [(r.old_pid, r.new_pid) for r in sup.restarts] == [(None, event.pid)]
        assert controls.probe("w").pid == event.pid
        assert factory.calls == 3
        sup.stop()
    else:
        reason = sup.wait(TIMEOUT)
        assert reason.kind is ExitKind.LIMIT
        assert "OSError" in reason.message
        assert sup.restarts == ()
        assert factory.calls == 2
    assert first.exit_reason is not None
    assert first.exit_reason.kind is ExitKind.EXCEPTION


# -- nesting ----------------------------------------------------------------------------


def test_a_nested_supervisor_escalates_to_its_parent(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    inner = sk.SupervisorSpec(
        "inner", workers(controls, ["leaf", "twig"], domain_kind), intensity=0
    )
    sup = sk.Supervisor(kernel, [*workers(controls, ["top"]), inner], name="outer").start()
    old = handles(sup)
    assert old["inner"] in kernel.processes()
    controls.crash("leaf")
    gave_up = wait_event(stream, sk.EventKind.SUPERVISOR_GAVE_UP)
    assert (gave_up.name, gave_up.pid) == ("inner", old["inner"].pid)
    event = restarted(stream, "inner")
    assert event.reason is not None
    assert event.reason.kind is ExitKind.LIMIT
    new = handles(sup)
    assert new["top"] is old["top"]
    assert new["inner"].pid == event.pid != old["inner"].pid
    assert old["inner"].exit_reason == event.reason
    # Restarting the nested supervisor started its children afresh.
    assert [controls.starts(c) for c in ("top", "leaf", "twig")] == [1, 2, 2]
    assert controls.probe("twig").isolation == domain_kind
    assert controls.probe("leaf").isolation == domain_kind
    assert [(r.id, r.cause) for r in sup.restarts] == [("inner", "inner")]
    assert sup.stop().kind is ExitKind.SHUTDOWN
    assert new["inner"].exit_reason == sk.ExitReason.shutdown("supervisor stopped")


def test_escalation_past_the_parents_intensity_gives_up_the_whole_tree(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    inner = sk.SupervisorSpec("inner", workers(controls, ["leaf"]), intensity=0)
    sup = sk.Supervisor(kernel, [*workers(controls, ["top"]), inner], intensity=0, name="outer")
    sup.start()
    old = handles(sup)
    controls.crash("leaf")
    reason = sup.wait(TIMEOUT)
    assert reason.kind is ExitKind.LIMIT
    assert "inner limit" in reason.message
    gave_up = [e.name for e in events_of(stream, sk.EventKind.SUPERVISOR_GAVE_UP)]
    assert gave_up == ["inner", "outer"]
    assert old["top"].exit_reason == sk.ExitReason.shutdown()
    assert sup.restarts == ()


def test_stopping_a_nested_supervisor_from_outside_restarts_it(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    inner = sk.SupervisorSpec("inner", workers(controls, ["leaf"]))
    sup = sk.Supervisor(kernel, [inner]).start()
    old = handles(sup)["inner"]
    kernel.kill(old, sk.ExitReason.killed("by the test"))
    event = restarted(stream, "inner")
    assert event.reason == sk.ExitReason.killed("by the test")
    assert controls.starts("leaf") == 2
    assert controls.probe("leaf").isolation == "local"
    sup.stop()


# -- names, arguments, stops --------------------------------------------------------------


def test_register_as_names_every_incarnation(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "w", domain_kind, register_as="service")).start()
    first = kernel.whereis("service")
    assert first is not None
    assert first is sup.child("w")
    controls.crash("w")
    event = restarted(stream, "w")
    second = kernel.whereis("service")
    assert second is not None
    assert second.pid == event.pid != first.pid
    assert second is sup.child("w")
    sup.stop()
    assert kernel.whereis("service") is None


def test_args_factory_gives_each_incarnation_fresh_endpoints(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "w", domain_kind)).start()
    first_end = controls.latest("w")
    first = controls.probe("w")
    controls.crash("w", "first incarnation crashed")
    event = restarted(stream, "w")
    assert controls.starts("w") == 2
    assert controls.latest("w") is not first_end
    with pytest.raises(sk.BrokenChannelError) as broken:
        first_end.recv(timeout=TIMEOUT)  # the old channel died with the old process
    assert broken.value.reason is not None
    assert broken.value.reason.message == "first incarnation crashed"
    assert controls.probe("w").pid == event.pid != first.pid
    sup.stop()


def test_ordered_shutdown_stops_children_in_reverse_start_order(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    with sk.Supervisor(kernel, workers(controls, "abcd", domain_kind), name="sup") as sup:
        started = handles(sup)
    assert sup.exit_reason == sk.ExitReason.shutdown("supervisor stopped")
    exits = events_of(stream, sk.EventKind.EXITED)
    assert [(e.name, e.pid) for e in exits] == [
        *((c, started[c].pid) for c in "dcba"),
        ("sup", sup.handle.pid if sup.handle else None),
    ]
    assert all(e.reason == sk.ExitReason.shutdown() for e in exits[:4])
    assert all(not h.is_alive for h in started.values())
    assert pids(sup) == dict.fromkeys("abcd")


def test_a_child_deaf_to_the_stop_is_killed_after_its_grace(
    kernel: sk.Kernel, stream: sk.EventStream
) -> None:
    # ``deaf`` sleeps in C code, where the stop request cannot reach it.
    spec = sk.ChildSpec("deaf", sp.deaf, domain="process", shutdown=0.1)
    sup = sk.Supervisor(kernel, [spec]).start()
    handle = handles(sup)["deaf"]
    sup.stop()
    assert handle.exit_reason is not None
    assert handle.exit_reason.kind is ExitKind.KILLED  # not SHUTDOWN: the request went unheard


# -- process domains: crashes from outside ---------------------------------------------------


def test_a_sigkilled_process_child_is_restarted_with_a_signal_reason(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    sup = sk.Supervisor(
        kernel, workers(controls, "ab", "process"), strategy=Strategy.ONE_FOR_ONE
    ).start()
    old = handles(sup)
    domain = old["b"].domain
    assert isinstance(domain, sk.Domain)
    os_pid = domain.os_pid  # type: ignore[attr-defined]
    os.kill(os_pid, signal.SIGKILL)
    event = restarted(stream, "b")
    assert event.reason is not None
    assert event.reason.kind is ExitKind.SIGNAL
    assert event.reason.signal == signal.SIGKILL
    new = handles(sup)
    assert new["a"] is old["a"]
    assert new["b"].pid == event.pid != old["b"].pid
    assert new["b"].domain.os_pid != os_pid  # type: ignore[attr-defined]
    assert controls.probe("b") == sp.Alive(new["b"].pid, "process")
    assert [r.reason.kind for r in sup.restarts] == [ExitKind.SIGNAL]
    sup.stop()


# -- the kernel and the supervisor's own process -------------------------------------------------


def test_kernel_shutdown_restarts_nothing(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream, domain_kind: str
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "abc", domain_kind)).start()
    kernel.shutdown()
    reason = sup.wait(TIMEOUT)
    assert reason.kind is ExitKind.SHUTDOWN
    assert sup.restarts == ()
    kinds = {e.kind for e in stream.drain()}
    assert sk.EventKind.RESTARTED not in kinds
    assert sk.EventKind.SUPERVISOR_GAVE_UP not in kinds
    assert pids(sup) == dict.fromkeys("abc")


def test_killing_the_supervisors_process_stops_its_children(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    sup = sk.Supervisor(kernel, workers(controls, "ab"), name="sup").start()
    old = handles(sup)
    assert sup.handle is not None
    assert kernel.process(sup.handle.pid) is sup.handle
    kernel.kill(sup.handle, sk.ExitReason.killed("by the test"))
    assert sup.wait(TIMEOUT) == sk.ExitReason.killed("by the test")
    assert old["a"].exit_reason == old["b"].exit_reason == sk.ExitReason.shutdown()
    assert sup.restarts == ()


def test_a_child_that_cannot_start_fails_start_and_stops_the_others(
    kernel: sk.Kernel, controls: sp.Controls, stream: sk.EventStream
) -> None:
    children = [*workers(controls, "a"), sk.ChildSpec("bad", lambda: None)]
    sup = sk.Supervisor(kernel, children)
    with pytest.raises(sk.NotImportableError):
        sup.start()
    a = wait_event(stream, sk.EventKind.EXITED, lambda e: e.name == "a")
    assert a.reason == sk.ExitReason.shutdown()
    reason = sup.wait(0)
    assert reason.kind is ExitKind.EXCEPTION
    assert reason.exc_type is not None
    assert reason.exc_type.endswith(".NotImportableError")
    assert pids(sup) == {"a": None, "bad": None}


def test_a_taken_name_fails_start(kernel: sk.Kernel, controls: sp.Controls) -> None:
    squatter = kernel.spawn(sp.idle)
    kernel.register("service", squatter)
    sup = sk.Supervisor(kernel, workers(controls, "w", register_as="service"))
    with pytest.raises(sk.RegistryError):
        sup.start()
    assert kernel.whereis("service") is squatter
    assert sup.exit_reason is not None


# -- misuse -------------------------------------------------------------------------------------


def test_misuse_is_refused(kernel: sk.Kernel, controls: sp.Controls) -> None:
    exporter, importer = sk.channel(sp.CONTROL)
    with pytest.raises(sk.UsageError, match="args_factory"):
        sk.ChildSpec("w", sp.worker, args=(exporter,))  # moved away at the first start
    sk.ChildSpec("w", sp.worker, args=(exporter,), restart=Restart.TEMPORARY)  # fine
    with pytest.raises(sk.UsageError, match="not both"):
        sk.ChildSpec("w", sp.worker, args=(1,), args_factory=tuple)
    with pytest.raises(sk.UsageError, match="non-empty"):
        sk.ChildSpec("", sp.worker)
    with pytest.raises(sk.UsageError, match="shutdown"):
        sk.ChildSpec("w", sp.worker, shutdown=-1.0)
    spec = sk.ChildSpec("w", sp.idle)
    with pytest.raises(sk.UsageError, match="two children"):
        sk.Supervisor(kernel, [spec, spec])
    with pytest.raises(sk.UsageError, match="intensity"):
        sk.Supervisor(kernel, [spec], intensity=-1)
    with pytest.raises(sk.UsageError, match="period"):
        sk.SupervisorSpec("s", [spec], period=0.0)
    never = sk.Supervisor(kernel, [spec])
    assert never.stop() == sk.ExitReason.shutdown("stopped before it started")
    with pytest.raises(sk.UsageError, match="already started"):
        never.start()
    assert never.handle is None
    sup = sk.Supervisor(kernel, [spec]).start()
    with pytest.raises(sk.UsageError, match="already started"):
        sup.start()
    with pytest.raises(sk.UsageError, match="no child 'x'"):
        sup.child("x")
    sup.stop()
    exporter.close()
    importer.close()
