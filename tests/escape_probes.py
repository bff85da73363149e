"""Escape attempts made from inside a ``sandbox`` domain (see test_sandbox_escape.py).

Each probe reports through the ``REPORT`` channel. ``attempt`` makes one
attempt that the sandbox must refuse without dying and reports how it ended:
``"ok <repr of the result>"`` if it succeeded, ``"errno NAME"`` if it failed
with an OSError, or the exception's type name. ``lethal`` reports
``"trying"``, makes a call the seccomp filter must kill the domain for, and
reports ``"survived ..."`` only if the call returned.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import termios
import threading
import time
from collections.abc import Callable

import sipkernel as sk
from procs import Report
from sipkernel.sandbox._seccomp import syscall_number

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def outcome(action: Callable[[], object]) -> str:
    """Run ``action``; describe how it ended."""
    try:
        result = action()
    except OSError as exc:
        return f"errno {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    except Exception as exc:
        return type(exc).__name__
    return f"ok {result!r}"


def syscall(name: str, *args: int) -> int:
    """Make system call ``name`` raw; its result, or OSError with its errno."""
    function = LIBC["syscall"]  # a new function object: argument types of our own
    function.argtypes = (ctypes.c_long, *(ctypes.c_ulong for _ in args))
    function.restype = ctypes.c_long
    ctypes.set_errno(0)
    result = int(function(syscall_number(name), *args))
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


# -- attempts the sandbox refuses (the process lives on) ---------------------------------------


def _read(path: str) -> str:
    with open(path) as f:
        return f.read(64)


def _environ_names(path: str) -> list[str]:
    """The variable names of an environment block (``/proc/PID/environ``), whole."""
    with open(path, "rb") as f:
        block = f.read()
    return sorted(entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if entry)


def _create(path: str) -> str:
    with open(path, "x") as f:
        f.write("planted")
    return "created"


def _tcp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5):
        return "connected"


def _udp(host: str, port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return sock.sendto(b"escaped", (host, port))


def _unix(address: str | bytes) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(address)
        return "connected"


def _proc_pids() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def _fds() -> dict[int, str]:
    """``{fd: target}`` of this process; the listing's own descriptor is gone when read."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue
    return found


def _c_environ() -> list[str]:
    """The names in the C library's ``environ`` (what a program exec'd from here would get)."""
    envp = ctypes.POINTER(ctypes.c_char_p).in_dll(LIBC, "environ")
    names = []
    index = 0
    while envp[index] is not None:
        names.append(envp[index].split(b"=", 1)[0].decode())
        index += 1
    return sorted(names)


def _every_thread() -> list[str]:
    """The distinct (seccomp mode, no_new_privs, effective capabilities) of every thread."""
    release = threading.Event()
    extra = threading.Thread(target=release.wait)
    extra.start()
    try:
        states = []
        for task in sorted(os.listdir("/proc/self/task")):
            with open(f"/proc/self/task/{task}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            states.append(
                " ".join(fields[key].strip() for key in ("Seccomp", "NoNewPrivs", "CapEff"))
            )
        return sorted(set(states))  # one line per distinct state
    finally:
        release.set()
        extra.join()


ATTEMPTS: dict[str, Callable[..., object]] = {
    "read": _read,
    "environ_names": _environ_names,
    "create": _create,
    "listdir": lambda path: sorted(os.listdir(path)),
    "proc_pids": _proc_pids,
    "kill": lambda pid: os.kill(pid, signal.SIGCONT),  # harmless, were it delivered
    "tcp": _tcp,
    "udp": _udp,
    "unix": _unix,
    "raw_socket": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW),
    "netlink": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW),
    "clone3": lambda: syscall("clone3", 0, 0),
    "personality": lambda flags: syscall("personality", flags),
    "setuid": os.setuid,
    "fds": _fds,
    "env": lambda: sorted(os.environ),
    "c_environ": _c_environ,
    "threads": _every_thread,
}


def attempt(name: str, args: tuple[object, ...], report: sk.Endpoint) -> None:
    """Make attempt ``name`` with ``args``; report how it ended."""
    report.send(Report(text=outcome(lambda: ATTEMPTS[name](*args))))


# -- calls the seccomp filter kills for ----------------------------------------------------------


def _execve() -> None:
    os.execv("/usr/bin/true", ["true"])


def _mount() -> int:
    return int(LIBC.mount(b"none", b"/tmp", b"tmpfs", 0, None))


def _chroot() -> None:
    os.makedirs("/tmp/jail", exist_ok=True)
    os.chroot("/tmp/jail")


def _pidfd_getfd() -> int:
    return syscall("pidfd_getfd", os.pidfd_open(os.getpid()), 0, 0)


def _tiocsti() -> None:
    fcntl.ioctl(0, termios.TIOCSTI, b"x")


LETHAL: dict[str, Callable[..., object]] = {
    "execve": _execve,
    "mount": _mount,
    "chroot": _chroot,
    "unshare": lambda: syscall("unshare", CLONE_NEWUSER),
    "clone": lambda: syscall("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "ptrace": lambda pid: syscall("ptrace", 16, pid, 0, 0),  # PTRACE_ATTACH
    "process_vm_readv": lambda pid: syscall("process_vm_readv", pid, 0, 0, 0, 0, 0),
    "pidfd_getfd": _pidfd_getfd,
    "keyctl": lambda: syscall("keyctl", 0, 2**32 - 3, 0),  # KEYCTL_GET_KEYRING_ID, session
    "bpf": lambda: syscall("bpf", 0, 0, 0),
    "userfaultfd": lambda: syscall("userfaultfd", 0),
    "io_uring_setup": lambda: syscall("io_uring_setup", 1, 0),
    "ioctl": _tiocsti,
}


def lethal(name: str, args: tuple[object, ...], report: sk.Endpoint) -> None:
    """Say ``trying``, make call ``name``; say ``survived`` if the sandbox let it return."""
    report.send(Report(text="trying"))
    result = outcome(lambda: LETHAL[name](*args))
    report.send(Report(text=f"survived {result}"))


def linger(seconds: float, report: sk.Endpoint) -> None:
    """Say ``lingering``, stay ``seconds``, then say ``outlived`` (if nothing ended it)."""
    report.send(Report(text="lingering"))
    time.sleep(seconds)
    report.send(Report(text="outlived"))
