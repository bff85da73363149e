"""Process functions that probe a sandbox from inside and report what they saw.

Each probe returns a short text through the ``REPORT`` channel: ``"ok ..."``
when the operation succeeded, ``"errno NAME"`` when it failed with an OSError,
or the exception's type name otherwise. The tests then assert the exact
failure they expect.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
import threading
from collections.abc import Callable

import sipkernel as sk
from procs import Report


def outcome(action: Callable[[], object]) -> str:
    """Run ``action``; describe how it ended."""
    try:
        result = action()
    except OSError as exc:
        return f"errno {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    except Exception as exc:
        return type(exc).__name__
    return f"ok {result}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read(65536)


def _write(path: str) -> int:
    with open(path, "w") as f:
        return f.write("x")


def probe_identity(report: sk.Endpoint) -> None:
    """uid, gid, pid and host name as the sandboxed code sees them."""
    text = f"{os.getuid()} {os.getgid()} {os.getpid()} {socket.gethostname()}"
    report.send(Report(text=text, kind=sk.current().isolation()))


def probe_preloaded(module: str, report: sk.Endpoint) -> None:
    """Which thread imported ``module`` ahead of this process, if one did.

    The spare's preload thread started before the domain was handed over, so
    once it is joined its imports are complete: the answer does not depend on
    timing.
    """
    for thread in threading.enumerate():
        if thread.name == "sipkernel-preload":
            thread.join()
    loaded = sys.modules.get(module)
    if loaded is None:
        text = "not imported"
    else:
        text = f"imported by {loaded.IMPORTED_BY} in pid {loaded.IMPORTED_IN}"
    report.send(Report(text=text))


def probe_read(path: str, report: sk.Endpoint) -> None:
    report.send(Report(text=outcome(lambda: _read(path))))


def probe_write(path: str, report: sk.Endpoint) -> None:
    report.send(Report(text=outcome(lambda: _write(path))))


def probe_listdir(path: str, report: sk.Endpoint) -> None:
    report.send(Report(text=outcome(lambda: sorted(os.listdir(path)))))


def probe_env(report: sk.Endpoint) -> None:
    report.send(Report(text=" ".join(sorted(os.environ))))


def probe_tcp_connect(host: str, port: int, report: sk.Endpoint) -> None:
    def connect() -> str:
        with socket.create_connection((host, port), timeout=5):
            return "connected"

    report.send(Report(text=outcome(connect)))


def probe_ptrace(report: sk.Endpoint) -> None:
    """Try ptrace(PTRACE_TRACEME): the seccomp filter must end the domain."""
    report.send(Report(text="trying"))
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.ptrace(0, 0, 0, 0)
    report.send(Report(text=f"survived {result}"))


def probe_kill_pid(pid: int, report: sk.Endpoint) -> None:
    report.send(Report(text=outcome(lambda: os.kill(pid, 0))))


def probe_fds(report: sk.Endpoint) -> None:
    report.send(Report(numbers=sorted(int(fd) for fd in os.listdir("/proc/self/fd"))))


def hog_memory(report: sk.Endpoint) -> None:
    report.send(Report(text="ready"))
    hoard = []
    while True:
        chunk = bytearray(16 << 20)
        chunk[::4096] = b"x" * len(chunk[::4096])
        hoard.append(chunk)


def burn_cpu(report: sk.Endpoint) -> None:
    report.send(Report(text="ready"))
    while True:
        pass
