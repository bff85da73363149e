"""The escape suite, the domain kind: the same walls around a domain's processes.

The attempts of part one (test_sandbox_escape.py), made by a process of a
``sandbox`` domain rather than by a command: each must fail with its exact
errno or a typed kill. The probes are in escape_probes.py.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import escape_probes as ep
import procs
import sipkernel as sk
from conftest import Listeners
from escape_harness import (
    RUNNER,
    SECRET_ENV,
    SETUID_0,
    SITE_PACKAGES,
    ZYGOTE_ENVIRON,
)
from sipkernel._core._kernel import NESTED_ENV
from sipkernel.sandbox import Limits, Policy
from sipkernel.sandbox._compose import sandbox_env

pytestmark = pytest.mark.timeout(120)

# -- the sandbox domain kind: the same walls around a domain's processes ----------------------


def attempt_in_domain(kernel: sk.Kernel, name: str, *args: object) -> str:
    """Make escape_probes attempt ``name`` in a fresh sandbox domain; its outcome."""
    results, report = procs.report_channel()
    handle = kernel.spawn(ep.attempt, name, args, report, domain="sandbox")
    text = results.recv(timeout=30).text
    assert handle.join(30).kind is sk.ExitKind.NORMAL
    return text


DOMAIN_ATTEMPTS = [
    # (id, attempt, arguments, outcome)
    ("read /etc/shadow", "read", ("/etc/shadow",), "errno ENOENT"),
    ("read the runner's cmdline", "read", (f"/proc/{RUNNER}/cmdline",), "errno ENOENT"),
    # Root's sandbox changed uid (0 to 1000 inside) and is no longer dumpable; a user's
    # did not, and reads its first environment: the sandbox zygote's allow-list.
    ("read pid 1's environ", "environ_names", ("/proc/1/environ",), ZYGOTE_ENVIRON),
    ("read its own environ", "environ_names", ("/proc/self/environ",), ZYGOTE_ENVIRON),
    ("list the pids in /proc", "proc_pids", (), "ok [1]"),
    ("SIGCONT to the runner", "kill", (RUNNER,), "errno ESRCH"),
    ("raw packet socket", "raw_socket", (), "errno EAFNOSUPPORT"),
    ("netlink socket", "netlink", (), "errno EAFNOSUPPORT"),
    ("clone3", "clone3", (), "errno ENOSYS"),
    ("personality(READ_IMPLIES_EXEC)", "personality", (0x0400000,), "errno EPERM"),
    ("setuid(0)", "setuid", (0,), SETUID_0),
    (
        "plant a module in the import path",
        "create",
        (str(Path(__file__).with_name("escape_planted.py")),),
        "errno EROFS",
    ),
    ("plant a module in site-packages", "create", (SITE_PACKAGES + "/planted.py",), "errno EROFS"),
    (
        "every thread is filtered and unprivileged",
        "threads",
        (),
        "ok ['2 1 0000000000000000']",  # seccomp filter mode, no_new_privs, no capability
    ),
]


@pytest.mark.parametrize(
    ("attempt", "args", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in DOMAIN_ATTEMPTS],
)
def test_a_domain_cannot_get_out(
    kernel: sk.Kernel, attempt: str, args: tuple[object, ...], expected: str
) -> None:
    assert attempt_in_domain(kernel, attempt, *args) == expected


def test_a_domain_cannot_reach_host_sockets(kernel: sk.Kernel, listeners: Listeners) -> None:
    host = listeners.context
    assert attempt_in_domain(kernel, "tcp", "127.0.0.1", host["tcp_port"]) == "errno EAFNOSUPPORT"
    assert attempt_in_domain(kernel, "udp", "127.0.0.1", host["udp_port"]) == "errno EAFNOSUPPORT"
    assert attempt_in_domain(kernel, "unix", host["abstract"]) == "errno ECONNREFUSED"
    assert attempt_in_domain(kernel, "unix", host["service"]) == "errno ENOENT"


def test_a_domain_holds_no_descriptor_of_the_hosts(kernel: sk.Kernel, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        text = attempt_in_domain(kernel, "fds")
    finally:
        os.close(fd)
    fds = ast.literal_eval(text.removeprefix("ok "))
    assert {0, 1, 2} <= fds.keys()
    # Beyond stdio: only the domain's own sockets (its control channel, its event loop's
    # wake-up pair) and that loop's epoll; no file of the host's, no seccomp listener
    # (with which it could answer its own violations).
    extra = {n: target for n, target in fds.items() if n > 2}
    assert extra, fds
    own = ("socket:[", "anon_inode:[eventpoll]")
    assert all(target.startswith(own) for target in extra.values()), fds
    assert list(fds.values()).count("anon_inode:[eventpoll]") <= 1, fds
    assert str(secret) not in fds.values()


def test_a_domain_sees_no_secret_in_its_environment(
    kernel: sk.Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "hunter2")  # before the kernel starts its sandbox zygote
    names = repr(sorted({*sandbox_env(Policy()), NESTED_ENV}))
    assert attempt_in_domain(kernel, "env") == f"ok {names}"
    assert attempt_in_domain(kernel, "c_environ") == f"ok {names}"


DOMAIN_LETHAL = [
    # (the call the kill names, arguments)
    ("execve", ()),
    ("mount", ()),
    ("chroot", ()),
    ("unshare", ()),
    ("clone", ()),
    ("ptrace", (RUNNER,)),
    ("process_vm_readv", (RUNNER,)),
    ("pidfd_getfd", ()),
    ("keyctl", ()),
    ("bpf", ()),
    ("userfaultfd", ()),
    ("io_uring_setup", ()),
    ("ioctl", ()),  # TIOCSTI
]


@pytest.mark.parametrize(("name", "args"), DOMAIN_LETHAL, ids=[row[0] for row in DOMAIN_LETHAL])
def test_a_dangerous_call_kills_the_domain(
    kernel: sk.Kernel, name: str, args: tuple[object, ...]
) -> None:
    results, report = procs.report_channel()
    handle = kernel.spawn(ep.lethal, name, args, report, domain="sandbox")
    assert results.recv(timeout=30).text == "trying"
    reason = handle.join(30)
    assert reason.kind is sk.ExitKind.SECCOMP_VIOLATION, reason
    assert reason.describe() == f"seccomp violation: {name}"
    try:
        after = results.recv(timeout=30).text
    except sk.BrokenChannelError:
        after = None
    assert after is None  # the call never returned


# Without a cgroup (memory and tasks unlimited here; an unprivileged user without a
# delegated cgroup gets none either), killing the sandbox must still kill all of it.
NO_CGROUP = Policy(limits=Limits(memory=None, pids=None))


def _next_report(results: sk.Endpoint) -> str | None:
    """The text of the next report, or None if the reporting process ended first."""
    try:
        return str(results.recv(timeout=30).text)
    except sk.BrokenChannelError:
        return None


def test_a_dangerous_call_kills_a_domain_that_has_no_cgroup(kernel: sk.Kernel) -> None:
    box = kernel.domain("sandbox", policy=NO_CGROUP)
    results, report = procs.report_channel()
    handle = kernel.spawn(ep.lethal, "bpf", (), report, domain=box)
    assert results.recv(timeout=30).text == "trying"
    reason = handle.join(30)
    assert _next_report(results) is None  # the call never returned
    assert reason.describe() == "seccomp violation: bpf"


def test_a_domain_that_has_no_cgroup_does_not_outlive_its_time_limit(kernel: sk.Kernel) -> None:
    policy = NO_CGROUP.replace(limits=Limits(memory=None, pids=None, wall_seconds=0.5))
    box = kernel.domain("sandbox", policy=policy)
    results, report = procs.report_channel()
    handle = kernel.spawn(ep.linger, 3.0, report, domain=box)
    assert results.recv(timeout=30).text == "lingering"
    reason = handle.join(30)
    assert _next_report(results) is None  # killed at 0.5 s, not still there at 3 s
    assert reason.describe() == "limit: time limit 0.5 s"
