"""The escape suite, part one: files, network, other processes, privilege, seccomp.

Code inside a sandbox tries to get out, and each attempt must fail in a
precise way: an errno seen inside, or a typed kill seen outside (``sipkernel:
killed: seccomp violation: NAME``), never merely that nothing crashed. The
attempts run through the command (``python -m sipkernel sandbox -- python -I
-S -c CODE``); those refused without dying are batched, one sandbox per table
(see escape_harness.py); the domain kind's attempts are in
test_sandbox_escape_domain.py. Part two (test_sandbox_escape_limits.py) covers programs,
the terminal, resources and what crosses at the start. Outcomes that depend
on who runs the suite (root or a user) are computed for the case at hand.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import pytest

from conftest import Listeners
from escape_harness import (
    KILLED_BY_SECCOMP,
    PYTHON_BINARY,
    RUNNER,
    SANDBOX_USERS,
    SETUID_0,
    SITE_PACKAGES,
    STDLIB_OS,
    Attempt,
    Ran,
    Survey,
    call,
    listing_outcome,
    other_home_file,
    rows,
    sandboxed,
    survey,
    write_outcome,
)
from sipkernel.sandbox._seccomp import syscall_number

pytestmark = pytest.mark.timeout(120)

# -- files: nothing outside the grant can be read, written, linked or reached -----------------

FILE_ATTEMPTS = {
    "read /etc/shadow": Attempt("read('/etc/shadow')", "errno ENOENT"),
    "create /etc/shadow": Attempt("create('/etc/shadow')", "errno EROFS"),
    "/etc/passwd is the sandbox's": Attempt("users('/etc/passwd')", SANDBOX_USERS),
    "list /root": Attempt("os.listdir('/root')", listing_outcome("/root"), landlock=True),
    "read /root/.bashrc": Attempt("read('/root/.bashrc')", "errno ENOENT"),
    "list /home": Attempt("os.listdir('/home')", listing_outcome("/home"), landlock=True),
    "read another home": Attempt(f"read({other_home_file()!r})", "errno ENOENT"),
    "read a file in the host's /tmp": Attempt("read($host_tmp)", "errno ENOENT"),
    "read the secret beside the grant": Attempt("read($secret)", "errno ENOENT"),
    "read .. out of the grant": Attempt("read($ro + '/../secret.txt')", "errno ENOENT"),
    "list .. of the grant": Attempt("sorted(os.listdir($ro + '/..'))", "$parent_listing"),
    "planted absolute symlink": Attempt("read($rw + '/abs-link')", "errno ENOENT"),
    "planted relative symlink": Attempt("read($rw + '/rel-link')", "errno ENOENT"),
    "planted symlink to /etc/shadow": Attempt("read($rw + '/shadow-link')", "errno ENOENT"),
    "symlink made inside": Attempt(
        "os.symlink($secret, $rw + '/mine') or read($rw + '/mine')", "errno ENOENT"
    ),
    "hard link of a host file": Attempt("os.link($secret, '/tmp/stolen')", "errno ENOENT"),
    "hard link of a shown file into /tmp": Attempt(
        f"os.link({PYTHON_BINARY!r}, '/tmp/python')", "errno EXDEV"
    ),
    "hard link from the ro grant to the rw grant": Attempt(
        "os.link($ro + '/data.txt', $rw + '/data.txt')", "errno EXDEV"
    ),
    "list /proc/self/root": Attempt("os.listdir('/proc/self/root')", "errno EACCES", landlock=True),
    "read /proc/self/root/etc/shadow": Attempt(
        "read('/proc/self/root/etc/shadow')", "errno ENOENT"
    ),
    "/proc/1/root/etc/passwd is the sandbox's": Attempt(
        "users('/proc/1/root/etc/passwd')", SANDBOX_USERS
    ),
    "climb above / with ..": Attempt(
        "[os.chdir('..') for _ in range(8)] and os.getcwd()", "ok '/'"
    ),
    "list / through ..": Attempt("os.listdir('/tmp/../..')", "errno EACCES", landlock=True),
    "create in /usr": Attempt("create('/usr/escape-planted')", "errno EROFS"),
    "create in the venv's site-packages": Attempt(
        f"create({SITE_PACKAGES + '/escape_planted.py'!r})", "errno EROFS"
    ),
    "create in the interpreter's prefix": Attempt(
        f"create({os.path.dirname(STDLIB_OS) + '/escape_planted.py'!r})", "errno EROFS"
    ),
    "open the stdlib's os.py for writing": Attempt(
        f"open({STDLIB_OS!r}, 'a').close()", write_outcome(STDLIB_OS)
    ),
    "create in the read-only grant": Attempt("create($ro + '/planted')", "errno EROFS"),
    "/sys is not mounted": Attempt("os.listdir('/sys')", "errno ENOENT"),
    "read /dev/mem": Attempt("read('/dev/mem')", "errno ENOENT"),
}


@pytest.fixture(scope="module")
def files_survey(tmp_path_factory: pytest.TempPathFactory) -> Survey:
    base = tmp_path_factory.mktemp("escape-files")
    secret = base / "secret.txt"
    secret.write_text("host secret\n")
    ro, rw = base / "ro", base / "rw"
    ro.mkdir(mode=0o755)
    rw.mkdir()
    os.chmod(ro, 0o755)
    os.chmod(rw, 0o777)  # the sandbox's uid may write here
    (ro / "data.txt").write_text("granted\n")
    (rw / "abs-link").symlink_to(secret)
    (rw / "rel-link").symlink_to("../secret.txt")
    (rw / "shadow-link").symlink_to("/etc/shadow")
    fd, host_tmp = tempfile.mkstemp(prefix="sipkernel-escape-", dir="/tmp")
    os.close(fd)
    # Inside, the grants' parent is an empty skeleton: in the private /tmp (writable,
    # so listable) when the grants live under /tmp, else in the read-only root.
    in_tmp = str(base).startswith("/tmp/")
    context = {
        "secret": str(secret),
        "ro": str(ro),
        "rw": str(rw),
        "host_tmp": host_tmp,
        "parent_listing": "ok ['ro', 'rw']" if in_tmp else "errno EACCES",
    }
    try:
        return survey(FILE_ATTEMPTS, context, "--ro", str(ro), "--rw", str(rw))
    finally:
        os.unlink(host_tmp)


@pytest.mark.parametrize("name", rows(FILE_ATTEMPTS))
def test_files_outside_the_grant_are_out_of_reach(files_survey: Survey, name: str) -> None:
    outcome, expected = files_survey[name]
    assert outcome == expected


# -- network: no route out of the sandbox's own network namespace -----------------------------

NETWORK_ATTEMPTS = {
    "TCP to the host's 127.0.0.1": Attempt(
        "socket.create_connection(('127.0.0.1', $tcp_port), timeout=5)", "errno EAFNOSUPPORT"
    ),
    "UDP to the host's 127.0.0.1": Attempt(
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', $udp_port))",
        "errno EAFNOSUPPORT",
    ),
    "TCP over IPv6": Attempt(
        "socket.create_connection(('::1', $tcp_port), timeout=5)", "errno EAFNOSUPPORT"
    ),
    "raw packet socket": Attempt(
        "socket.socket(socket.AF_PACKET, socket.SOCK_RAW)", "errno EAFNOSUPPORT"
    ),
    "raw IP socket": Attempt(
        "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
        "errno EAFNOSUPPORT",
    ),
    "netlink route socket": Attempt(
        "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)", "errno EAFNOSUPPORT"
    ),
    "kernel crypto socket (AF_ALG)": Attempt(
        "socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET)", "errno EAFNOSUPPORT"
    ),
    "VM socket (AF_VSOCK)": Attempt("socket.socket(socket.AF_VSOCK)", "errno EAFNOSUPPORT"),
    "INET socketpair": Attempt("socket.socketpair(socket.AF_INET)", "errno EAFNOSUPPORT"),
    "AF_INET with junk in the high bits": Attempt(
        call("socket", socket.AF_INET | 1 << 32, socket.SOCK_STREAM, 0), "errno EAFNOSUPPORT"
    ),
    "the host's abstract UNIX socket": Attempt(
        "socket.socket(socket.AF_UNIX).connect($abstract)", "errno ECONNREFUSED"
    ),
    "a host service's UNIX socket path": Attempt(
        "socket.socket(socket.AF_UNIX).connect($service)", "errno ENOENT"
    ),
    "the system D-Bus socket": Attempt(
        "socket.socket(socket.AF_UNIX).connect('/run/dbus/system_bus_socket')", "errno ENOENT"
    ),
    "the syslog socket": Attempt(
        "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', '/dev/log')",
        "errno ENOENT",
    ),
}

LOOPBACK_ATTEMPTS = {  # --net loopback: IP sockets work, on the sandbox's own loopback only
    "TCP to the host's 127.0.0.1": Attempt(
        "socket.create_connection(('127.0.0.1', $tcp_port), timeout=5)", "errno ECONNREFUSED"
    ),
    "UDP to the host's 127.0.0.1": Attempt(
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'escaped', "
        "('127.0.0.1', $udp_port))",
        "ok 7",  # sent on the sandbox's own loopback; the test asserts the host got nothing
    ),
    "the host's abstract UNIX socket": Attempt(
        "socket.socket(socket.AF_UNIX).connect($abstract)", "errno ECONNREFUSED"
    ),
}


@pytest.fixture(scope="module")
def network_survey(listeners: Listeners) -> Survey:
    return survey(NETWORK_ATTEMPTS, listeners.context)


@pytest.fixture(scope="module")
def loopback_survey(listeners: Listeners) -> Survey:
    return survey(LOOPBACK_ATTEMPTS, listeners.context, "--net", "loopback")


@pytest.mark.parametrize("name", rows(NETWORK_ATTEMPTS))
def test_no_socket_reaches_the_host(network_survey: Survey, name: str) -> None:
    outcome, expected = network_survey[name]
    assert outcome == expected


@pytest.mark.parametrize("name", rows(LOOPBACK_ATTEMPTS))
def test_the_loopback_network_is_the_sandboxs_own(loopback_survey: Survey, name: str) -> None:
    outcome, expected = loopback_survey[name]
    assert outcome == expected


def test_a_datagram_sent_on_the_sandboxs_loopback_never_arrives(
    loopback_survey: Survey, listeners: Listeners
) -> None:
    assert loopback_survey["UDP to the host's 127.0.0.1"][0] == "ok 7"  # sent, inside
    with pytest.raises(BlockingIOError):  # and nothing came here
        listeners.udp.recv(64)


# -- other processes: the host's are invisible, and touching any process's memory kills -------

PROCESS_ATTEMPTS = {
    "list the pids in /proc": Attempt(
        "sorted(int(p) for p in os.listdir('/proc') if p.isdigit())", "ok [1]"
    ),
    "the parent is out of sight": Attempt("os.getppid()", "ok 0"),
    # (harmless signals: were the walls down, a SIGKILL would take the test run with it)
    "signal 0 to the runner": Attempt("os.kill($pid, 0)", "errno ESRCH"),
    "SIGCONT to the runner": Attempt("os.kill($pid, signal.SIGCONT)", "errno ESRCH"),
    "signal 0 to every process": Attempt("os.kill(-1, 0)", "errno ESRCH"),
    "the runner's environ": Attempt("read('/proc/$pid/environ')", "errno ENOENT"),
    "the runner's cmdline": Attempt("read('/proc/$pid/cmdline')", "errno ENOENT"),
    "the runner's memory": Attempt("open('/proc/$pid/mem', 'rb').read(1)", "errno ENOENT"),
    "the runner's root": Attempt("os.listdir('/proc/$pid/root')", "errno ENOENT"),
    "a pidfd of the runner": Attempt("os.pidfd_open($pid)", "errno ESRCH"),
}


@pytest.fixture(scope="module")
def process_survey() -> Survey:
    return survey(PROCESS_ATTEMPTS, {"pid": RUNNER})


@pytest.mark.parametrize("name", rows(PROCESS_ATTEMPTS))
def test_host_processes_are_invisible(process_survey: Survey, name: str) -> None:
    outcome, expected = process_survey[name]
    assert outcome == expected


# -- privilege: no way back to root, no capability, no change to the sandbox itself ----------

PRIVILEGE_HELPERS = """
import fcntl, struct
def capset_sys_admin():
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))
    data = ctypes.create_string_buffer(struct.pack("6I", 1 << 21, 1 << 21, 0, 0, 0, 0))
    return syscall($nr_capset, ctypes.addressof(header), ctypes.addressof(data))
def raise_nofile():
    limit = ctypes.create_string_buffer(struct.pack("QQ", 1 << 20, 1 << 20))
    return syscall($nr_setrlimit, 7, ctypes.addressof(limit))  # RLIMIT_NOFILE
def sethostname():
    return syscall($nr_sethostname, ctypes.addressof(ctypes.create_string_buffer(b"host")), 4)
def own_seccomp_listener():
    allow = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000))
    program = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", 1, ctypes.addressof(allow)))
    return syscall($nr_seccomp, 1, 8, ctypes.addressof(program))  # NEW_LISTENER
def user_ns_parent():
    return fcntl.ioctl(os.open("/proc/self/ns/user", os.O_RDONLY), 0xB702)  # NS_GET_PARENT
"""

PRIVILEGE_ATTEMPTS = {
    "setuid(0)": Attempt("os.setuid(0)", SETUID_0),
    "setgroups([0])": Attempt("os.setgroups([0])", "errno EPERM"),
    "rewrite the uid map": Attempt(
        "open('/proc/self/uid_map', 'w').write('0 0 1\\n')", "errno EACCES", landlock=True
    ),
    "capset CAP_SYS_ADMIN": Attempt("capset_sys_admin()", "errno EPERM"),
    "raise a hard rlimit": Attempt("raise_nofile()", "errno EPERM"),
    "set the host name": Attempt("sethostname()", "errno EPERM"),
    "the parent user namespace": Attempt("user_ns_parent()", "errno EPERM"),
    "a seccomp listener of its own": Attempt("own_seccomp_listener()", "errno EBUSY"),
    "personality(READ_IMPLIES_EXEC)": Attempt(call("personality", 0x0400000), "errno EPERM"),
    "clone3 (flags out of the filter's sight)": Attempt(call("clone3", 0, 0), "errno ENOSYS"),
    "mknod a block device": Attempt(
        "os.mknod('/tmp/sda', 0o600 | 0o60000, os.makedev(8, 0))", "errno EPERM"
    ),
    "open core_pattern for writing": Attempt(  # (and write nothing, should it open)
        "open('/proc/sys/kernel/core_pattern', 'w').close()", "errno EACCES"
    ),
}


@pytest.fixture(scope="module")
def privilege_survey() -> Survey:
    calls = ("capset", "setrlimit", "sethostname", "seccomp")
    numbers = {f"nr_{name}": syscall_number(name) for name in calls}
    return survey(PRIVILEGE_ATTEMPTS, numbers, helpers=PRIVILEGE_HELPERS)


@pytest.mark.parametrize("name", rows(PRIVILEGE_ATTEMPTS))
def test_no_privilege_can_be_gained(privilege_survey: Survey, name: str) -> None:
    outcome, expected = privilege_survey[name]
    assert outcome == expected


# -- the seccomp filter: each dangerous call kills the sandbox and is named -------------------

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWTIME, SIGCHLD = 0x10000000, 0x40000000, 0x80, 17
AT_FDCWD = 2**32 - 100

LETHAL = {
    # id: (the call the kill names, code making it)
    "ptrace(PTRACE_TRACEME)": ("ptrace", call("ptrace", 0, 0, 0, 0)),
    "ptrace(PTRACE_ATTACH) to the runner": ("ptrace", call("ptrace", 16, RUNNER, 0, 0)),
    "process_vm_readv of the runner": ("process_vm_readv", call("process_vm_readv", RUNNER)),
    "process_vm_writev of the runner": ("process_vm_writev", call("process_vm_writev", RUNNER)),
    "pidfd_getfd": ("pidfd_getfd", call("pidfd_getfd", "os.pidfd_open(os.getpid())", 0, 0)),
    "kcmp": ("kcmp", call("kcmp", 1, 1, 0, 0, 0)),
    "mount": ("mount", call("mount")),
    "umount2": ("umount2", call("umount2", 0, 2)),
    "pivot_root": ("pivot_root", call("pivot_root")),
    "chroot": ("chroot", "os.chroot('/tmp')"),
    "open_tree": ("open_tree", call("open_tree", AT_FDCWD)),
    "fsopen": ("fsopen", call("fsopen")),
    "move_mount": ("move_mount", call("move_mount")),
    "unshare(CLONE_NEWUSER)": ("unshare", call("unshare", CLONE_NEWUSER)),
    "setns into a namespace": (
        "setns",
        call("setns", "os.open('/proc/self/ns/net', os.O_RDONLY)", 0),
    ),
    "clone(CLONE_NEWUSER)": ("clone", call("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
    "clone(CLONE_NEWNET)": ("clone", call("clone", CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)),
    "clone(CLONE_NEWTIME)": ("clone", call("clone", CLONE_NEWTIME, 0, 0, 0, 0)),
    "keyctl": ("keyctl", call("keyctl", 0, 2**32 - 3, 0)),
    "add_key": ("add_key", call("add_key")),
    "request_key": ("request_key", call("request_key")),
    "bpf": ("bpf", call("bpf")),
    "perf_event_open": ("perf_event_open", call("perf_event_open", 0, 0, 2**32 - 1)),
    "io_uring_setup": ("io_uring_setup", call("io_uring_setup", 1, 0)),
    "userfaultfd": ("userfaultfd", call("userfaultfd")),
    "kexec_load": ("kexec_load", call("kexec_load")),
    "init_module": ("init_module", call("init_module")),
    "finit_module": ("finit_module", call("finit_module")),
    "reboot": ("reboot", call("reboot", 0xFEE1DEAD, 672274793, 0x4321FEDC)),
    "swapon": ("swapon", call("swapon")),
    "open_by_handle_at": ("open_by_handle_at", call("open_by_handle_at", AT_FDCWD)),
    "name_to_handle_at": ("name_to_handle_at", call("name_to_handle_at", AT_FDCWD)),
    "syslog (the kernel log)": ("syslog", call("syslog", 3)),
    "settimeofday": ("settimeofday", call("settimeofday")),
    "acct": ("acct", call("acct")),
    "iopl": ("iopl", call("iopl", 3)),
}


def assert_killed_for(ran: Ran, syscall: str) -> None:
    """The sandbox was killed for ``syscall``, named, before the call returned."""
    assert ran.status == KILLED_BY_SECCOMP, ran
    assert ran.stderr == f"sipkernel: killed: seccomp violation: {syscall}\n", ran
    assert "survived" not in ran.stdout, ran


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                syscall_number(named) < 0, reason=f"no {named} on this architecture"
            ),
        )
        for name, (named, _) in LETHAL.items()
    ],
)
def test_a_dangerous_call_is_a_named_kill(name: str) -> None:
    named, code = LETHAL[name]
    ran = sandboxed(f"print('trying', flush=True)\n{code}\nprint('survived')")
    assert_killed_for(ran, named)
    assert ran.stdout == "trying\n"


OTHER_ABIS = {
    # Through an ABI the filter was not built for, the kernel kills at once (SIGSYS):
    # no listener is asked, so no call is named.
    "x32 ptrace": f"syscall({0x40000000 | 101}, 0, 0, 0, 0)",
    "int 0x80 ptrace (i386)": """
import mmap
machine_code = bytes([0xB8, 26, 0, 0, 0, 0x31, 0xDB, 0xCD, 0x80, 0xC3])  # ptrace(TRACEME)
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(machine_code)
ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
""",
}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 ABIs")
@pytest.mark.parametrize("name", OTHER_ABIS)
def test_a_call_through_another_abi_is_killed_at_once(name: str) -> None:
    ran = sandboxed(f"print('trying', flush=True)\n{OTHER_ABIS[name]}\nprint('survived')")
    assert ran == Ran(KILLED_BY_SECCOMP, "trying\n", "sipkernel: killed: signal SIGSYS\n"), ran


def test_a_kill_is_recorded_in_the_json_status(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    ran = sandboxed(call("bpf"), "--json-status", str(status))
    assert_killed_for(ran, "bpf")
    record = json.loads(status.read_text())
    assert (record["reason"], record["exit_code"]) == ("seccomp_violation", KILLED_BY_SECCOMP)
    assert record["detail"] == "killed: seccomp violation: bpf"
