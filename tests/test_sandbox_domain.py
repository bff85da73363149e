"""The ``sandbox`` domain kind: contained before any application code, typed exits.

The behavioural suite (test_behaviour.py) runs against ``sandbox`` too; this
file covers what only a sandbox does: its identity and view, its refusals,
its named seccomp kill, its limits, and its start failures.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import procs
import sandboxed_procs as sp
import sipkernel as sk
from procs import ECHO, Ping, Pong
from sipkernel.sandbox import Policy, SandboxUnavailable
from sipkernel.sandbox._policy import MiB

pytestmark = pytest.mark.timeout(60)


def probe(kernel: sk.Kernel, fn, *args, domain: sk.Domain | str = "sandbox") -> procs.Report:
    """Run ``fn(*args, report)`` in a sandbox and return its one report."""
    results, report = procs.report_channel()
    handle = kernel.spawn(fn, *args, report, domain=domain)
    message = results.recv(timeout=30)
    handle.join(30)
    return message


def test_a_sandboxed_process_runs_as_uid_1000_as_pid_1_in_its_own_uts(
    kernel: sk.Kernel,
) -> None:
    report = probe(kernel, sp.probe_identity)
    assert report.text == "1000 1000 1 sipkernel"
    assert report.kind == "sandbox"


def test_channels_work_across_the_sandbox_boundary(kernel: sk.Kernel) -> None:
    server, client = sk.channel(ECHO)
    handle = kernel.spawn(procs.echo, server, domain="sandbox")
    for n in range(5):
        client.send(Ping(n), timeout=30)
        assert client.recv(timeout=30) == Pong(n)
    client.close()
    assert handle.join(30).kind is sk.ExitKind.NORMAL


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/shadow", "errno ENOENT"),
        ("/root/.bashrc", "errno ENOENT"),
    ],
)
def test_host_files_are_not_in_view(kernel: sk.Kernel, path: str, expected: str) -> None:
    assert probe(kernel, sp.probe_read, path).text.startswith(expected)


def test_the_initial_environment_block_holds_no_secret(kernel: sk.Kernel, monkeypatch) -> None:
    """/proc/1/environ is the environment pid 1 was exec'd with: the sandbox zygote's."""
    monkeypatch.setenv("SIPKERNEL_TEST_SECRET", "hunter2")
    text = probe(kernel, sp.probe_read, "/proc/1/environ").text
    if os.getuid() == 0:  # pid 1 changed uid (0 to 1000 inside): not dumpable, unreadable
        assert text == "errno EACCES"
    else:
        assert text.startswith("ok PATH=")
        assert "SIPKERNEL_TEST_SECRET" not in text


def test_the_environment_is_the_allow_list(kernel: sk.Kernel, monkeypatch) -> None:
    monkeypatch.setenv("SIPKERNEL_TEST_SECRET", "hunter2")
    names = set(probe(kernel, sp.probe_env).text.split())
    assert "SIPKERNEL_TEST_SECRET" not in names
    assert names <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "HOME", "SIPKERNEL_ZYGOTE"}


def test_the_root_is_read_only_and_tmp_is_private(kernel: sk.Kernel) -> None:
    assert probe(kernel, sp.probe_write, "/etc/passwd").text == "errno EROFS"
    assert probe(kernel, sp.probe_write, "/tmp/scratch").text == "ok 1"
    assert not os.path.exists("/tmp/scratch")


def test_no_network_by_default(kernel: sk.Kernel) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        text = probe(kernel, sp.probe_tcp_connect, "127.0.0.1", port).text
    assert text == "errno EAFNOSUPPORT"


def test_host_pids_are_invisible(kernel: sk.Kernel) -> None:
    assert probe(kernel, sp.probe_kill_pid, os.getpid()).text == "errno ESRCH"


def test_only_its_own_descriptors_cross(kernel: sk.Kernel) -> None:
    numbers = probe(kernel, sp.probe_fds).numbers
    # 0-2, the control socket, its channels, the listing, and the event loop's epoll
    # and wake-up pair (the spare starts the loop while it waits)
    assert len(numbers) <= 11, numbers


def test_a_forbidden_system_call_kills_the_domain_and_is_named(kernel: sk.Kernel) -> None:
    results, report = procs.report_channel()
    handle = kernel.spawn(sp.probe_ptrace, report, domain="sandbox")
    assert results.recv(timeout=30).text == "trying"
    reason = handle.join(30)
    assert reason.kind is sk.ExitKind.SECCOMP_VIOLATION
    assert reason.describe() == "seccomp violation: ptrace"
    with pytest.raises(sk.BrokenChannelError):
        results.recv(timeout=30)


def test_the_memory_limit_is_a_typed_exit(kernel: sk.Kernel) -> None:
    box = kernel.domain("sandbox", policy=Policy.from_dict({"limits": {"memory": 128 * MiB}}))
    results, report = procs.report_channel()
    handle = kernel.spawn(sp.hog_memory, report, domain=box)
    assert results.recv(timeout=30).text == "ready"
    reason = handle.join(30)
    assert reason.kind in (sk.ExitKind.LIMIT, sk.ExitKind.EXCEPTION), reason
    if reason.kind is sk.ExitKind.LIMIT:
        assert reason.message == "memory limit 128 MiB"
    else:  # the allocation failed inside before the cgroup killed it
        assert reason.exc_type == "builtins.MemoryError"


def test_a_granted_directory_is_visible_read_only(kernel: sk.Kernel, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("granted")
    os.chmod(tmp_path, 0o755)
    box = kernel.domain("sandbox", policy=Policy.from_dict({"filesystem": {"ro": [str(tmp_path)]}}))
    assert probe(kernel, sp.probe_read, str(tmp_path / "data.txt"), domain=box).text == "ok granted"
    box2 = kernel.domain(
        "sandbox", policy=Policy.from_dict({"filesystem": {"ro": [str(tmp_path)]}})
    )
    assert probe(kernel, sp.probe_write, str(tmp_path / "new"), domain=box2).text == "errno EROFS"


def test_a_refused_namespace_is_a_clear_error(kernel: sk.Kernel) -> None:
    # Without a user namespace only root may create the others; as root, the code
    # then runs as the outside uid itself (nobody).
    policy = Policy.from_dict({"namespaces": {"user": False}})
    if os.getuid() == 0:
        box = kernel.domain("sandbox", policy=policy)
        assert probe(kernel, sp.probe_identity, domain=box).text.split()[:2] == ["65534", "65534"]
    else:
        with pytest.raises(SandboxUnavailable, match="namespaces other than user need root"):
            kernel.domain("sandbox", policy=policy)


def test_the_cpu_time_limit_is_a_typed_exit(kernel: sk.Kernel) -> None:
    box = kernel.domain("sandbox", policy=Policy.from_dict({"limits": {"cpu_seconds": 1}}))
    results, report = procs.report_channel()
    handle = kernel.spawn(sp.burn_cpu, report, domain=box)
    assert results.recv(timeout=30).text == "ready"
    reason = handle.join(30)
    assert (reason.kind, reason.message) == (sk.ExitKind.LIMIT, "cpu time limit 1 s")


def test_without_a_cgroup_a_violation_still_ends_the_whole_sandbox(kernel: sk.Kernel) -> None:
    """With no cgroup to kill, the kill goes to the keeper; pid 1 dies with it, and the
    violating call never returns meanwhile."""
    policy = Policy.from_dict({"limits": {"memory": None, "pids": None}})
    box = kernel.domain("sandbox", policy=policy)
    results, report = procs.report_channel()
    handle = kernel.spawn(sp.probe_ptrace, report, domain=box)
    assert results.recv(timeout=30).text == "trying"
    assert handle.join(30).kind is sk.ExitKind.SECCOMP_VIOLATION
    with pytest.raises(sk.BrokenChannelError):
        results.recv(timeout=30)


def test_the_domain_says_what_enforces_each_limit(kernel: sk.Kernel) -> None:
    box = kernel.domain("sandbox")
    assert set(box.enforcement) == {"memory", "pids", "open_files", "file_size"}
    assert box.enforcement["memory"] in ("cgroup v1", "cgroup v2") or box.enforcement[
        "memory"
    ].startswith("RLIMIT_AS")
    assert box.enforcement["open_files"] == "rlimit"


def test_preloaded_modules_are_imported_inside_each_sandbox_ahead_of_its_start() -> None:
    with sk.Kernel(preload=["preloaded"], grace=2.0) as kernel:
        for _ in range(3):  # the first sandbox is built on request, later ones ahead of it
            text = probe(kernel, sp.probe_preloaded, "preloaded").text
            # pid 1: inside the sandbox's pid namespace, not in the zygote outside it
            assert text == "imported by sipkernel-preload in pid 1"


def test_a_preloaded_module_that_fails_to_import_does_not_stop_a_sandbox() -> None:
    with sk.Kernel(preload=["preload_fails", "preloaded"], grace=2.0) as kernel:
        text = probe(kernel, sp.probe_preloaded, "preloaded").text
        assert text == "imported by sipkernel-preload in pid 1"
        assert probe(kernel, sp.probe_preloaded, "preload_fails").text == "not imported"


def test_a_preloaded_module_that_breaks_the_filter_ends_its_domain_with_the_name() -> None:
    """The import blocks on the seccomp listener until the domain is handed over; then
    the kernel holds the listener, names the call and ends the domain: no hang."""
    with sk.Kernel(preload=["preload_violates"], grace=2.0) as kernel:
        box = kernel.domain("sandbox")
        mine, theirs = sk.channel(ECHO)
        handle = kernel.spawn(procs.block_in_recv, theirs, domain=box)
        reason = handle.join(30)
        assert reason.kind is sk.ExitKind.SECCOMP_VIOLATION
        assert reason.describe() == "seccomp violation: ptrace"
        mine.close()
