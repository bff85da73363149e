"""Shared fixtures: a kernel, the domain kinds, and a leak check around every test.

The leak check (autouse) snapshots this OS process's open descriptors, its
descendant OS processes, its live threads and sipkernel's cgroups before each test, and after the
test (and after every fixture it used, the kernel's shutdown included) waits
a bounded time for what the test created to go away. Whatever is still there
fails the test: a kernel that has shut down holds no child process, thread or
descriptor. Tests that deliberately leave something behind opt out with
``@pytest.mark.no_leak_check`` and say why.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

import sipkernel as sk

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # procs.py must be importable by name everywhere
    sys.path.insert(0, str(TESTS))

SETTLE = 10.0
"""Seconds what a test started may take to go away after it ends."""

DOMAIN_KINDS = ["local", "process", "sandbox"]
"""Every domain kind the behavioural suite runs against (later rungs add theirs)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_leak_check: the test knowingly leaves a thread, fd or process behind"
    )


# -- what this OS process holds ---------------------------------------------------------


def open_fds(pid: int | str = "self") -> dict[int, str]:
    """``{fd: target}`` of a process's open descriptors (``/proc/PID/fd``)."""
    fds = {}
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue  # closed while we looked (the listing's own descriptor)
        if not target.startswith(f"/proc/{os.getpid()}/") and not target.startswith("/proc/self"):
            fds[int(name)] = target
    return fds


def python_c(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (``python -c``): its output, status and errors."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _ppids() -> dict[int, tuple[int, str]]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        rest = stat[stat.rindex(")") + 2 :].split()
        table[int(name)] = (int(rest[1]), rest[0])
    return table


def descendants(root: int | None = None) -> dict[int, str]:
    """``{pid: state}`` of every descendant OS process of ``root`` (default: us)."""
    root = os.getpid() if root is None else root
    table = _ppids()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                todo.append(child)
    return found


def pid_exists(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll (bounded by ``timeout``) until none of ``pids`` exists; returns the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if pid_exists(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.01)  # polling an external condition with a deadline, not a wait-for-luck


def _is_watchdog(thread: threading.Thread) -> bool:
    function = getattr(thread, "function", None)
    return getattr(function, "__module__", "") == "pytest_timeout"


def _leftover_threads(before: set[threading.Thread], deadline: float) -> list[threading.Thread]:
    left = []
    for thread in threading.enumerate():
        if thread in before or _is_watchdog(thread) or thread is threading.current_thread():
            continue
        if not thread.name.startswith("sipkernel"):
            continue
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            left.append(thread)
    return left


def sipkernel_cgroups() -> set[str]:
    """The cgroup directories of this process's kernels' sandboxes, in every hierarchy.

    A sandbox's cgroup is named after the kernel that owns it
    (``sipkernel-domain-KERNELPID-...``); other runs on the machine are not ours.
    """
    mine = f"sipkernel-domain-{os.getpid()}-"
    found = set()
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        found.update(os.path.join(root, name) for name in dirs if name.startswith(mine))
    return found


class Snapshot:
    def __init__(self) -> None:
        self.fds = open_fds()
        self.children = set(descendants())
        self.threads = set(threading.enumerate())
        self.cgroups = sipkernel_cgroups()

    def leaks(self, settle: float = SETTLE) -> list[str]:
        deadline = time.monotonic() + settle
        problems = []
        threads = _leftover_threads(self.threads, deadline)
        problems += [f"thread {t.name!r} (daemon={t.daemon})" for t in threads]
        new_children = [pid for pid in descendants() if pid not in self.children]
        for pid in wait_gone(new_children, max(deadline - time.monotonic(), 0.0)):
            problems.append(f"OS process {pid} ({_cmdline(pid)})")
        while True:
            fds = {fd: target for fd, target in open_fds().items() if self.fds.get(fd) != target}
            if not fds or time.monotonic() >= deadline:
                break
            time.sleep(0.01)  # a descriptor closed by a thread that just ended
        problems += [f"fd {fd} -> {target}" for fd, target in sorted(fds.items())]
        problems += [f"cgroup {path}" for path in sorted(sipkernel_cgroups() - self.cgroups)]
        return problems


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed or hasattr(report, "wasxfail")
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def leak_check(request: pytest.FixtureRequest) -> Iterator[Snapshot]:
    """Fail a test that leaves a descriptor, descendant process or thread behind.

    A test that failed (or xfailed) is not checked: its traceback keeps its
    objects alive, and its failure is the news. Its garbage is collected here
    with resource warnings silenced, so that they do not surface in a later test.
    """
    snapshot = Snapshot()
    yield snapshot
    if request.node.stash.get(_CALL_FAILED, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        return
    gc.collect()  # an object closed only by its finaliser warns (an error) here, in its test
    if request.node.get_closest_marker("no_leak_check"):
        return
    problems = snapshot.leaks()
    if problems:
        pytest.fail("leaked after the test:\n  " + "\n  ".join(problems), pytrace=False)


# -- kernels and domains ---------------------------------------------------------------------


@pytest.fixture
def kernel() -> Iterator[sk.Kernel]:
    """A kernel, shut down (with a short grace) after the test."""
    k = sk.Kernel(grace=2.0)
    try:
        yield k
    finally:
        k.shutdown()


@pytest.fixture(params=DOMAIN_KINDS)
def domain_kind(request: pytest.FixtureRequest) -> str:
    """Each domain kind in turn: the behavioural suite runs once per kind."""
    kind: str = request.param
    return kind


@pytest.fixture
def domain(kernel: sk.Kernel, domain_kind: str) -> sk.Domain:
    """A fresh domain of ``domain_kind`` in ``kernel``."""
    return kernel.domain(domain_kind)


@pytest.fixture(params=["sync", "async"])
def style(request: pytest.FixtureRequest) -> str:
    """``def`` or ``async def`` processes."""
    value: str = request.param
    return value


def lingering_sipkernel_threads(
    before: set[threading.Thread], settle: float = 0.5
) -> list[threading.Thread]:
    """Threads started since ``before`` that belong to sipkernel and are still alive.

    A sipkernel ``threading.Timer`` still waiting counts at once; other threads
    get ``settle`` seconds in all to finish the last lines they are running.
    """
    left = []
    deadline = time.monotonic() + settle
    for thread in threading.enumerate():
        if thread in before or _is_watchdog(thread):
            continue
        if isinstance(thread, threading.Timer):
            module = getattr(getattr(thread, "function", None), "__module__", "") or ""
            if module.startswith("sipkernel") and thread.is_alive():
                left.append(thread)
            continue
        if not thread.name.startswith("sipkernel"):
            continue
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            left.append(thread)
    return left


# -- host services for the escape suites -------------------------------------------------------


class Listeners(NamedTuple):
    context: dict[str, object]
    udp: socket.socket


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listeners]:
    """Host services the sandbox tries to reach: TCP, UDP, abstract and path UNIX sockets."""
    service = tmp_path_factory.mktemp("escape-net") / "service.sock"
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    abstract = socket.socket(socket.AF_UNIX)
    path = socket.socket(socket.AF_UNIX)
    try:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        address = f"\0sipkernel-escape-{os.getpid()}".encode()
        abstract.bind(address)
        abstract.listen()
        path.bind(str(service))
        path.listen()
        yield Listeners(
            {
                "tcp_port": tcp.getsockname()[1],
                "udp_port": udp.getsockname()[1],
                "abstract": address,
                "service": str(service),
            },
            udp,
        )
    finally:
        for sock in (tcp, udp, abstract, path):
            sock.close()
