"""The kernel: spawn, join, kill, links, monitors, the registry, events and shutdown.

Most tests use the ``local`` domain (the kernel core knows no domain kind);
the behavioural suite repeats the essentials on every kind.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest

import procs
import sipkernel as sk
from conftest import descendants, lingering_sipkernel_threads, open_fds
from procs import ECHO, STREAM, Item, Ping

pytestmark = pytest.mark.timeout(30)


def _ready(kernel: sk.Kernel, fn, *args, **kwargs) -> sk.ProcessHandle:
    """Spawn ``fn(report, *args)`` and wait until it says it runs."""
    ready, report = procs.report_channel()
    handle = kernel.spawn(fn, report, *args, **kwargs)
    assert ready.recv(timeout=10).text == "ready"
    return handle


def _blocked(kernel: sk.Kernel, **kwargs) -> tuple[sk.ProcessHandle, sk.Endpoint]:
    """A process blocked in ``recv`` on a channel whose other end we keep."""
    server, client = sk.channel(ECHO)
    return _ready(kernel, procs.ready_then_block, server, **kwargs), client


# -- spawn and join -------------------------------------------------------------------------------


def test_spawn_returns_a_handle_and_join_returns_the_exit_reason(kernel: sk.Kernel) -> None:
    handle = kernel.spawn(procs.return_now)
    reason = handle.join(10)
    assert reason.kind is sk.ExitKind.NORMAL
    assert reason.is_normal
    assert handle.exit_reason == reason
    assert not handle.is_alive
    assert handle.name == "return_now"
    assert handle.pid >= 1
    assert handle.domain.kind == "local"


def test_spawn_names_and_pids(kernel: sk.Kernel) -> None:
    first = kernel.spawn(procs.return_now, name="first")
    second = kernel.spawn(procs.return_now)
    assert first.name == "first"
    assert second.pid != first.pid
    first.join(10)
    second.join(10)


def test_processes_lists_the_live_ones(kernel: sk.Kernel) -> None:
    handle, client = _blocked(kernel)
    assert handle in kernel.processes()
    assert kernel.process(handle.pid) is handle
    client.close()  # ready_then_block's recv breaks: it ends with an exception
    assert handle.join(10).kind is sk.ExitKind.EXCEPTION
    assert handle not in kernel.processes()
    assert kernel.process(handle.pid) is None


def test_join_times_out(kernel: sk.Kernel) -> None:
    handle, client = _blocked(kernel)
    with pytest.raises(sk.JoinTimeout):
        handle.join(0.05)
    with pytest.raises(TimeoutError):
        handle.join(0)
    client.close()
    handle.join(10)


def test_ajoin(kernel: sk.Kernel) -> None:
    handle, client = _blocked(kernel)

    async def main() -> sk.ExitReason:
        with pytest.raises(sk.JoinTimeout):
            await handle.ajoin(0.05)
        asyncio.get_running_loop().call_soon(handle.kill, "from ajoin")
        return await handle.ajoin(10)

    reason = asyncio.run(main())
    assert reason == sk.ExitReason.killed("from ajoin")
    del client


def test_current_is_only_available_inside_a_process(kernel: sk.Kernel) -> None:
    with pytest.raises(sk.UsageError):
        sk.current()
    ready, report = procs.report_channel()
    handle = kernel.spawn(procs.whoami, report, name="me")
    seen = ready.recv(timeout=10)
    assert (seen.count, seen.text, seen.kind) == (handle.pid, "me", "local")


def test_a_process_sees_no_kernel(kernel: sk.Kernel) -> None:
    ready, report = procs.report_channel()
    kernel.spawn(procs.spawn_from_inside, report)
    assert ready.recv(timeout=10).ok


# -- spawn errors, at the call site -------------------------------------------------------------


def _closure() -> object:
    def inner() -> None:
        pass

    return inner


@pytest.mark.parametrize(
    ("fn", "error"),
    [
        (lambda: None, sk.NotImportableError),
        (_closure(), sk.NotImportableError),
        (42, sk.UsageError),
        (len, sk.NotImportableError),
        (functools.partial(procs.fail, "x"), sk.NotImportableError),
        (procs.Report().__eq__, sk.NotImportableError),
    ],
    ids=["lambda", "closure", "non-callable", "builtin", "partial", "bound-method"],
)
@pytest.mark.parametrize("domain", ["local", "process"])
def test_spawn_rejects_what_no_domain_can_import(
    kernel: sk.Kernel, fn: object, error: type[Exception], domain: str
) -> None:
    stream = kernel.events.stream()
    before = descendants()
    with pytest.raises(error):
        kernel.spawn(fn, domain=domain)  # type: ignore[arg-type]
    assert kernel.processes() == ()
    assert not [e for e in stream.drain() if e.kind is sk.EventKind.SPAWNED]
    assert descendants() == before  # not even a domain was started


def test_not_importable_is_a_usage_error() -> None:
    assert issubclass(sk.NotImportableError, sk.UsageError)
    assert issubclass(sk.UsageError, ValueError)


def test_spawn_rejects_an_unpicklable_argument_in_a_local_domain(kernel: sk.Kernel) -> None:
    server, client = sk.channel(ECHO)
    stream = kernel.events.stream()
    with pytest.raises(sk.UsageError):
        kernel.spawn(procs.block_in_recv, server, threading.Lock())
    assert kernel.processes() == ()
    assert not [e for e in stream.drain() if e.kind is sk.EventKind.SPAWNED]
    client.send(Ping(1))  # the endpoint did not move: it is still ours
    assert server.recv(timeout=0) == Ping(1)


def _settled_descendants(count: int, timeout: float = 10.0) -> dict[int, str]:
    """Our descendants once there are ``count`` of them (the zygote forks its spare
    child just after answering a fork, so it may still be on its way)."""
    deadline = time.monotonic() + timeout
    while len(found := descendants()) != count:
        assert time.monotonic() < deadline, f"descendants: {found}"
        time.sleep(0.01)
    return found


def test_spawn_rejects_an_unpicklable_argument_before_starting_a_domain(
    kernel: sk.Kernel,
) -> None:
    assert kernel.domain("process").os_pid  # the zygote and a domain are up
    _settled_descendants(3)  # the zygote, the domain, the zygote's spare child
    with pytest.raises(sk.UsageError):
        kernel.spawn(procs.fail, threading.Lock(), domain="process")
    assert kernel.processes() == ()
    assert len(kernel.domains) == 1
    # No second domain came (with it, a fourth process: the zygote's next spare). The
    # pids may differ: a spare that predates the kernel's script is replaced.
    _settled_descendants(3)


def test_spawn_with_a_moved_endpoint_argument_fails_at_the_call_site(kernel: sk.Kernel) -> None:
    server, _client = sk.channel(ECHO)
    kernel.spawn(procs.echo, server)
    with pytest.raises(sk.EndpointMovedError):
        kernel.spawn(procs.echo, server)


def test_spawn_into_an_unknown_domain_kind(kernel: sk.Kernel) -> None:
    with pytest.raises(sk.UnknownDomainError):
        kernel.spawn(procs.return_now, domain="no-such-kind")
    with pytest.raises(sk.UnknownDomainError):
        kernel.domain("no-such-kind")


def test_spawn_into_a_foreign_domain(kernel: sk.Kernel) -> None:
    with sk.Kernel() as other:
        foreign = other.domain("local")
        with pytest.raises(sk.UsageError):
            kernel.spawn(procs.return_now, domain=foreign)


def test_domain_names_are_unique(kernel: sk.Kernel) -> None:
    kernel.domain("local", name="mine")
    with pytest.raises(sk.UsageError):
        kernel.domain("local", name="mine")


def test_spawning_after_shutdown_raises_kernel_closed() -> None:
    kernel = sk.Kernel()
    kernel.shutdown()
    assert kernel.closed
    with pytest.raises(sk.KernelClosedError):
        kernel.spawn(procs.return_now)
    with pytest.raises(sk.KernelClosedError):
        kernel.spawn(procs.return_now, domain="process")
    with pytest.raises(sk.KernelClosedError):
        kernel.domain("process")


# -- kill and stop ------------------------------------------------------------------------------


def test_kill_a_sync_process_blocked_in_recv(kernel: sk.Kernel) -> None:
    handle, client = _blocked(kernel)
    handle.kill("enough")
    reason = handle.join(10)
    assert reason == sk.ExitReason.killed("enough")
    with pytest.raises(sk.BrokenChannelError) as broken:
        client.recv(timeout=10)
    assert broken.value.reason == reason  # the peer learns why


def test_kill_a_cpu_loop(kernel: sk.Kernel) -> None:
    handle = _ready(kernel, procs.ready_then_spin)
    kernel.kill(handle, sk.ExitReason.killed("spinning"))
    assert handle.join(10) == sk.ExitReason.killed("spinning")


def test_kill_an_async_process(kernel: sk.Kernel) -> None:
    handle = _ready(kernel, procs.aready_then_block)
    handle.kill()
    assert handle.join(10).kind is sk.ExitKind.KILLED


def test_kill_an_async_process_blocked_in_arecv(kernel: sk.Kernel) -> None:
    server, _client = sk.channel(ECHO)
    handle = _ready(kernel, procs.aready_then_recv, server)
    handle.kill("async")
    assert handle.join(10) == sk.ExitReason.killed("async")


def test_kill_an_async_process_before_it_first_runs(kernel: sk.Kernel) -> None:
    go_in, go_out = sk.channel(STREAM)
    _ready(kernel, procs.hog_the_loop, go_in)  # the local domain's loop is now blocked
    server, _client = sk.channel(ECHO)
    handle = kernel.spawn(procs.ablock_in_recv, server)  # its task is not created yet
    handle.kill("early")
    go_out.send(Item(0))  # free the loop: the task is created, cancelled, and must report
    assert handle.join(5) == sk.ExitReason.killed("early")


def test_kill_after_exit_changes_nothing(kernel: sk.Kernel) -> None:
    handle = kernel.spawn(procs.return_now)
    handle.join(10)
    handle.kill()
    assert handle.exit_reason is not None
    assert handle.exit_reason.kind is sk.ExitKind.NORMAL


def test_stop_asks_with_a_shutdown(kernel: sk.Kernel) -> None:
    handle, _client = _blocked(kernel)
    reason = kernel.stop(handle, grace=5)
    assert reason.kind is sk.ExitKind.SHUTDOWN
    assert reason.is_normal


def test_an_exception_ends_only_that_process(kernel: sk.Kernel) -> None:
    survivor, client = _blocked(kernel)
    failed = kernel.spawn(procs.fail, "kaput")
    reason = failed.join(10)
    assert reason.kind is sk.ExitKind.EXCEPTION
    assert reason.exc_type == "builtins.ValueError"
    assert reason.message == "kaput"
    assert "raise ValueError(message)" in (reason.traceback or "")
    assert "kaput" in reason.describe()
    assert survivor.is_alive
    client.close()
    survivor.join(10)


# -- links ------------------------------------------------------------------------------------


def test_an_abnormal_exit_kills_the_linked_process(kernel: sk.Kernel) -> None:
    stream = kernel.events.stream()
    survivor, _client = _blocked(kernel)
    server, client = sk.channel(ECHO)
    crasher = kernel.spawn(procs.fail_after_ping, server, link=survivor)
    client.send(Ping(1))
    assert crasher.join(10).kind is sk.ExitKind.EXCEPTION
    reason = survivor.join(10)
    assert reason.kind is sk.ExitKind.LINKED
    assert str(crasher.pid) in reason.message
    fired = stream.wait_for(lambda e: e.kind is sk.EventKind.LINK_FIRED, timeout=10)
    assert fired.pid == survivor.pid


def test_links_are_symmetric(kernel: sk.Kernel) -> None:
    one, _c1 = _blocked(kernel)
    other, c2 = _blocked(kernel)
    other.link(one)
    other.kill("pulled")
    assert one.join(10).kind is sk.ExitKind.LINKED
    del c2


def test_a_normal_exit_does_not_kill_the_linked_process(kernel: sk.Kernel) -> None:
    survivor, client = _blocked(kernel)
    server, quit_ = sk.channel(ECHO)
    quitter = _ready(kernel, procs.hold_until_told, server, link=survivor)
    quit_.send(Ping(0))  # hold_until_told returns once it has this
    assert quitter.join(10).kind is sk.ExitKind.NORMAL
    stopped, _c = _blocked(kernel, link=survivor)
    assert kernel.stop(stopped, grace=5).kind is sk.ExitKind.SHUTDOWN  # normal as well
    with pytest.raises(sk.JoinTimeout):
        survivor.join(0.05)
    assert survivor.is_alive
    client.close()
    survivor.join(10)


def test_linking_to_a_dead_process_fires_at_once(kernel: sk.Kernel) -> None:
    dead = kernel.spawn(procs.fail, "gone")
    dead.join(10)
    survivor, _client = _blocked(kernel)
    kernel.link(survivor, dead)
    assert survivor.join(10).kind is sk.ExitKind.LINKED


def test_unlink(kernel: sk.Kernel) -> None:
    survivor, client = _blocked(kernel)
    other, _c = _blocked(kernel)
    kernel.link(survivor, other)
    kernel.unlink(other, survivor)
    other.kill()
    other.join(10)
    assert survivor.is_alive
    client.close()
    survivor.join(10)


def test_trap_exits_turns_a_linked_exit_into_a_message(kernel: sk.Kernel) -> None:
    ready, report = procs.report_channel()
    trapper = kernel.spawn(procs.trap_one, report, trap_exits=True)
    assert ready.recv(timeout=10).text == "ready"
    crasher = kernel.spawn(procs.fail, "trapped", link=trapper, name="crasher")
    seen = ready.recv(timeout=10)
    assert (seen.count, seen.text, seen.kind) == (crasher.pid, "crasher", "exception")
    assert trapper.join(10).kind is sk.ExitKind.NORMAL  # it was told, not killed


def test_without_trap_exits_there_are_no_exit_signals(kernel: sk.Kernel) -> None:
    ready, report = procs.report_channel()
    handle = kernel.spawn(procs.trap_one, report)
    assert handle.join(10).kind is sk.ExitKind.EXCEPTION  # asserts exit_signals is not None
    del ready


# -- monitors -------------------------------------------------------------------------------


def test_monitor_calls_back_with_the_reason(kernel: sk.Kernel) -> None:
    handle, _client = _blocked(kernel)
    calls: list[tuple[sk.ProcessHandle, sk.ExitReason]] = []
    stream = kernel.events.stream()
    monitor = kernel.monitor(handle, lambda h, r: calls.append((h, r)))
    handle.kill("watched")
    assert monitor.wait(10) == sk.ExitReason.killed("watched")
    assert calls == [(handle, sk.ExitReason.killed("watched"))]
    event = stream.wait_for(lambda e: e.kind is sk.EventKind.MONITOR_FIRED, timeout=10)
    assert event.pid == handle.pid


def test_monitor_on_a_dead_process_fires_at_once(kernel: sk.Kernel) -> None:
    handle = kernel.spawn(procs.return_now)
    handle.join(10)
    calls: list[sk.ExitReason] = []
    handle.monitor(lambda _h, r: calls.append(r))
    assert [r.kind for r in calls] == [sk.ExitKind.NORMAL]


def test_a_cancelled_monitor_stays_silent(kernel: sk.Kernel) -> None:
    handle, _client = _blocked(kernel)
    calls: list[sk.ExitReason] = []
    monitor = handle.monitor(lambda _h, r: calls.append(r))
    monitor.cancel()
    handle.kill()
    handle.join(10)
    assert calls == []


def test_monitor_await_down(kernel: sk.Kernel) -> None:
    handle, _client = _blocked(kernel)
    monitor = handle.monitor()

    async def main() -> sk.ExitReason:
        asyncio.get_running_loop().call_soon(handle.kill, "awaited")
        return await monitor.await_down(10)

    assert asyncio.run(main()) == sk.ExitReason.killed("awaited")


# -- the registry ------------------------------------------------------------------------------


def test_register_and_whereis(kernel: sk.Kernel) -> None:
    handle, client = _blocked(kernel)
    kernel.register("svc", handle)
    assert kernel.whereis("svc") is handle
    assert kernel.registered() == {"svc": handle}
    assert kernel.whereis("nobody") is None
    client.close()
    handle.join(10)


def test_a_name_is_unique(kernel: sk.Kernel) -> None:
    one, _c1 = _blocked(kernel)
    two, _c2 = _blocked(kernel)
    kernel.register("svc", one)
    with pytest.raises(sk.RegistryError):
        kernel.register("svc", two)
    with pytest.raises(KeyError):  # RegistryError is a KeyError too
        kernel.register("svc", two)
    assert kernel.whereis("svc") is one


def test_a_name_is_freed_at_exit(kernel: sk.Kernel) -> None:
    one, client = _blocked(kernel)
    kernel.register("svc", one)
    client.close()
    one.join(10)
    assert kernel.whereis("svc") is None
    two, _c2 = _blocked(kernel)
    kernel.register("svc", two)
    assert kernel.whereis("svc") is two


def test_unregister(kernel: sk.Kernel) -> None:
    handle, _client = _blocked(kernel)
    kernel.register("svc", handle)
    kernel.unregister("svc")
    assert kernel.whereis("svc") is None
    with pytest.raises(sk.RegistryError):
        kernel.unregister("svc")


def test_a_dead_process_cannot_be_registered(kernel: sk.Kernel) -> None:
    handle = kernel.spawn(procs.return_now)
    handle.join(10)
    with pytest.raises(sk.RegistryError):
        kernel.register("late", handle)


# -- events ---------------------------------------------------------------------------------


def test_events_stream_spawned_and_exited_with_reasons(kernel: sk.Kernel) -> None:
    stream = kernel.events.stream()
    ok = kernel.spawn(procs.return_now, name="ok")
    bad = kernel.spawn(procs.fail, "evented", name="bad")
    ok.join(10)
    bad.join(10)
    events = []
    while len([e for e in events if e.kind is sk.EventKind.EXITED]) < 2:
        events.append(stream.get(timeout=10))
    spawned = {e.pid: e for e in events if e.kind is sk.EventKind.SPAWNED}
    exited = {e.pid: e for e in events if e.kind is sk.EventKind.EXITED}
    assert set(spawned) == set(exited) == {ok.pid, bad.pid}
    assert spawned[ok.pid].name == "ok"
    assert spawned[ok.pid].domain == ok.domain.name
    assert exited[ok.pid].reason == ok.exit_reason
    assert exited[bad.pid].reason is not None
    assert exited[bad.pid].reason.kind is sk.ExitKind.EXCEPTION
    assert "evented" in exited[bad.pid].describe()


def test_spawned_comes_before_exited(kernel: sk.Kernel) -> None:
    stream = kernel.events.stream()
    handles = [kernel.spawn(procs.return_now) for _ in range(20)]
    for handle in handles:
        handle.join(10)
    order = [
        (e.pid, e.kind)
        for e in stream.drain()
        if e.kind in (sk.EventKind.SPAWNED, sk.EventKind.EXITED)
    ]
    for handle in handles:
        mine = [kind for pid, kind in order if pid == handle.pid]
        assert mine == [sk.EventKind.SPAWNED, sk.EventKind.EXITED], handle


def test_event_subscribers_are_called_and_can_unsubscribe(kernel: sk.Kernel) -> None:
    seen: list[sk.Event] = []
    unsubscribe = kernel.events.subscribe(seen.append)
    kernel.spawn(procs.return_now).join(10)
    unsubscribe()
    count = len(seen)
    kernel.spawn(procs.return_now).join(10)
    assert count >= 2
    assert len(seen) == count
    assert {e.kind for e in seen} >= {sk.EventKind.SPAWNED, sk.EventKind.EXITED}


def test_a_failing_subscriber_does_not_break_the_kernel(
    kernel: sk.Kernel, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_event: sk.Event) -> None:
        raise RuntimeError("subscriber")

    kernel.events.subscribe(broken)
    assert kernel.spawn(procs.return_now).join(10).kind is sk.ExitKind.NORMAL
    assert "subscriber" in caplog.text


def test_event_stream_wait_for_times_out(kernel: sk.Kernel) -> None:
    with kernel.events.stream() as stream, pytest.raises(TimeoutError):
        stream.wait_for(lambda e: e.kind is sk.EventKind.SUPERVISOR_GAVE_UP, timeout=0.05)


def test_domain_events(kernel: sk.Kernel) -> None:
    stream = kernel.events.stream()
    domain = kernel.domain("process", name="evented")
    started = stream.wait_for(lambda e: e.kind is sk.EventKind.DOMAIN_STARTED, timeout=10)
    assert started.domain == "evented"
    assert started.detail == "process"
    domain.sigkill()
    exited = stream.wait_for(lambda e: e.kind is sk.EventKind.DOMAIN_EXITED, timeout=10)
    assert exited.domain == "evented"
    assert exited.reason is not None
    assert exited.reason.signal == 9


# -- shutdown ---------------------------------------------------------------------------------


def _busy_kernel(grace: float) -> tuple[sk.Kernel, list[sk.ProcessHandle], list[sk.Endpoint]]:
    """A kernel with processes blocked in recv, spinning, and awaiting, in both kinds."""
    kernel = sk.Kernel(grace=grace)
    handles, keep = [], []
    process_domain = kernel.domain("process")
    for domain in ("local", process_domain, "process"):
        handle, client = _blocked(kernel, domain=domain)
        handles.append(handle)
        keep.append(client)
        handles.append(_ready(kernel, procs.ready_then_spin, domain=domain))
        handles.append(_ready(kernel, procs.aready_then_block, domain=domain))
    return kernel, handles, keep


def test_shutdown_stops_running_processes_within_the_grace() -> None:
    kernel, handles, _keep = _busy_kernel(grace=3.0)
    started = time.monotonic()
    kernel.shutdown()
    assert time.monotonic() - started < 3.0 + 1.0
    assert kernel.closed
    for handle in handles:
        assert handle.exit_reason is not None, handle
        assert handle.exit_reason.kind is sk.ExitKind.SHUTDOWN, handle
    assert kernel.processes() == ()
    assert kernel.domains == ()


def test_shutdown_leaves_no_os_process_descriptor_or_thread(leak_check) -> None:
    kernel, _handles, keep = _busy_kernel(grace=3.0)
    kernel.shutdown()
    for endpoint in keep:
        endpoint.close()
    # Right after shutdown() returns, not eventually.
    assert descendants() == {}, "child OS processes survive shutdown"
    fds = {fd: t for fd, t in open_fds().items() if leak_check.fds.get(fd) != t}
    assert fds == {}
    assert lingering_sipkernel_threads(leak_check.threads) == []


def test_no_kill_escalation_timer_outlives_shutdown() -> None:
    before = set(threading.enumerate())
    with sk.Kernel(grace=2.0) as kernel:
        handle = _ready(kernel, procs.ready_then_spin, domain="process")
        handle.kill()
        assert handle.join(10).kind is sk.ExitKind.KILLED
    assert lingering_sipkernel_threads(before) == []


def test_shutdown_is_idempotent() -> None:
    kernel = sk.Kernel()
    kernel.spawn(procs.return_now).join(10)
    kernel.shutdown()
    kernel.shutdown()
    assert kernel.closed


def test_shutdown_from_two_threads_at_once() -> None:
    kernel, _handles, _keep = _busy_kernel(grace=3.0)
    other = threading.Thread(target=kernel.shutdown)
    other.start()
    kernel.shutdown()
    other.join()
    assert kernel.closed
    assert kernel.processes() == ()


def test_context_manager_shuts_down() -> None:
    with sk.Kernel() as kernel:
        handle, _client = _blocked(kernel)
    assert kernel.closed
    assert handle.exit_reason is not None
    assert handle.exit_reason.kind is sk.ExitKind.SHUTDOWN


def _raise_inside_a_kernel(kernel: sk.Kernel, handles: list[sk.ProcessHandle]) -> None:
    with kernel:
        handles.append(_blocked(kernel, domain="process")[0])
        raise RuntimeError("in the block")


def test_context_manager_shuts_down_when_the_block_raises() -> None:
    kernel = sk.Kernel()
    handles: list[sk.ProcessHandle] = []
    with pytest.raises(RuntimeError, match="in the block"):
        _raise_inside_a_kernel(kernel, handles)
    (handle,) = handles
    assert kernel.closed
    assert handle.exit_reason is not None


def test_async_with() -> None:
    async def main() -> tuple[sk.Kernel, sk.ProcessHandle, list[int]]:
        async with sk.Kernel() as kernel:
            server, client = sk.channel(ECHO)
            kernel.spawn(procs.aecho, server)
            got = []
            for n in range(10):
                await client.asend(Ping(n))
                got.append((await client.arecv(timeout=10)).n)
            ready, report = procs.report_channel()
            blocked_server, _blocked_client = sk.channel(ECHO)
            handle = kernel.spawn(procs.aready_then_recv, report, blocked_server, domain="process")
            assert (await ready.arecv(timeout=10)).text == "ready"
        return kernel, handle, got

    kernel, handle, got = asyncio.run(main())
    assert got == list(range(10))
    assert kernel.closed
    assert handle.exit_reason is not None
    assert handle.exit_reason.kind is sk.ExitKind.SHUTDOWN


def test_the_test_side_of_a_channel_sees_shutdown(kernel: sk.Kernel) -> None:
    with sk.Kernel() as other:
        handle, client = _blocked(other, domain="process")
    assert handle.exit_reason is not None
    assert handle.exit_reason.kind is sk.ExitKind.SHUTDOWN
    with pytest.raises(sk.ChannelError):
        client.send(Ping(1))


def test_shutting_down_one_kernel_leaves_another_kernels_channels_alone(
    kernel: sk.Kernel,
) -> None:
    server, client = sk.channel(ECHO)
    kernel.spawn(procs.echo, server, domain="process")
    client.send(Ping(1))
    assert client.recv(timeout=10).n == 1
    sk.Kernel().shutdown()
    client.send(Ping(2))
    assert client.recv(timeout=10).n == 2
