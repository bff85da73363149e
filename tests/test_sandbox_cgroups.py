"""Sandbox cgroups: each limit really binds, kill ends a fork bomb, close leaves nothing.

These are isolation tests: they never skip. On a machine that cannot give the
memory or pids controller they fail, with ``cgroup_support``'s reason.
Children are forked; each reports through a pipe and is reaped by exit status.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import signal
import time
import warnings
from collections.abc import Callable

import msgspec
import pytest

from sipkernel._core._errors import UsageError
from sipkernel.sandbox import _cgroups
from sipkernel.sandbox._cgroups import (
    Cgroup,
    CgroupError,
    CgroupLimits,
    CgroupSupport,
    CgroupUnavailable,
    ControllerSupport,
    cgroup_support,
    join_cgroup,
)

MiB = 1 << 20
_PR_SET_CHILD_SUBREAPER = 36


# -- forked children ---------------------------------------------------------------------


def _fork() -> int:
    with warnings.catch_warnings():  # Python 3.12+ warns when forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


class Child:
    """A forked child running ``body``; what it returns comes back as JSON."""

    def __init__(self, body: Callable[[], object]) -> None:
        read, write = os.pipe()
        self.pid = _fork()
        if self.pid == 0:
            code = 70
            try:
                os.close(read)
                try:
                    report = body()
                    code = 0
                except BaseException as e:
                    report = {"error": repr(e)}
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(code)
        os.close(write)
        self._read = read

    def finish(self) -> tuple[int, object]:
        """(The child's wait status, its report or None): reads to EOF, then reaps."""
        with os.fdopen(self._read, "rb") as f:
            data = f.read()
        _, status = os.waitpid(self.pid, 0)
        return status, json.loads(data) if data else None


def run_child(body: Callable[[], object]) -> tuple[int, object]:
    """Run ``body`` in a forked child and wait for it."""
    return Child(body).finish()


def _exited_ok(status: int, report: object) -> None:
    assert os.WIFEXITED(status), report
    assert os.WEXITSTATUS(status) == 0, report


# -- fixtures ----------------------------------------------------------------------------


def _required() -> CgroupSupport:
    support = cgroup_support()
    for name in ("memory", "pids", "cpu"):
        found = support.get(name)
        if not found.available:
            pytest.fail(f"isolation test cannot run: {found.reason}")
    return support


@pytest.fixture(params=["unified", "v1-only"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """As the machine is; then as if it had no v2 tree (the freezer and cpuacct path)."""
    support = _required()
    if request.param == "v1-only":
        gone = ControllerSupport(name="unified", reason="unified: simulated absence")
        fake = msgspec.structs.replace(support, unified=gone, cgroup_kill=False)
        monkeypatch.setattr(_cgroups, "cgroup_support", lambda: fake)
    mode: str = request.param
    return mode


def _own_cgroup(controller: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(",") or (controller == "" and names == ""):
                return path
    raise AssertionError(f"not in a {controller!r} cgroup")


# -- support and validation ------------------------------------------------------------


def test_support_names_a_place_for_every_limit_under_our_own_cgroup() -> None:
    support = _required()
    for name in ("memory", "pids", "cpu"):
        found = support.get(name)
        own = _own_cgroup("" if found.version == "v2" else name)
        assert found.parent is not None
        assert found.parent.rstrip("/").endswith(own.rstrip("/")), (found, own)
    assert f"memory: {support.memory.version} in " in support.describe()
    assert cgroup_support() is cgroup_support()  # cached


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory_bytes": 0},
        {"memory_bytes": -1},
        {"memory_bytes": True},
        {"memory_bytes": 1.5},
        {"pids": 0},
        {"cpu_cores": 0},
        {"cpu_cores": -0.5},
        {"cpu_cores": 0.001},
        {"cpu_cores": math.nan},
        {"cpu_cores": math.inf},
        {"cpu_cores": "1"},
    ],
)
def test_invalid_limits_raise_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        CgroupLimits(**kwargs)  # type: ignore[arg-type]


def test_limits_decode_strictly() -> None:
    assert msgspec.convert({"pids": 4}, CgroupLimits) == CgroupLimits(pids=4)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"memory": 1}, CgroupLimits)
    with pytest.raises(msgspec.ValidationError, match="pids"):
        msgspec.convert({"pids": 0}, CgroupLimits)


def test_bad_names_are_refused() -> None:
    for name in ("", "a/b", "a b", "x" * 65):
        with pytest.raises(UsageError, match="name"):
            Cgroup.create(name, CgroupLimits())


def test_an_unavailable_controller_raises_and_makes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    support = _required()
    why = "cpu: simulated: no v2 controller and no v1 hierarchy is mounted: delegate one"
    fake = msgspec.structs.replace(support, cpu=ControllerSupport(name="cpu", reason=why))
    monkeypatch.setattr(_cgroups, "cgroup_support", lambda: fake)
    before = set(os.listdir(support.memory.parent or "/"))
    with pytest.raises(CgroupUnavailable, match="simulated") as info:
        Cgroup.create("nocpu", CgroupLimits(memory_bytes=64 * MiB, cpu_cores=1.0))
    assert info.value.controller == "cpu"
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, CgroupError)
    assert set(os.listdir(support.memory.parent or "/")) == before


# -- each limit binds ------------------------------------------------------------------------


def test_memory_limit_kills_a_child_that_allocates_too_much() -> None:
    _required()
    with Cgroup.create("memory", CgroupLimits(memory_bytes=64 * MiB)) as group:
        paths = group.attach_paths()

        def allocate() -> object:
            join_cgroup(paths)
            hog = b"\x01" * (200 * MiB)  # written, so every page is really used
            return len(hog)

        status, report = run_child(allocate)
        assert os.WIFSIGNALED(status), report
        assert os.WTERMSIG(status) == signal.SIGKILL
        assert group.oom_killed()
        peak = group.memory_peak()
        assert peak is not None
        assert 32 * MiB <= peak <= 64 * MiB


def test_pids_limit_makes_fork_fail_with_eagain(mode: str) -> None:
    with Cgroup.create("pids", CgroupLimits(pids=8)) as group:
        paths = group.attach_paths()

        def fork_until_refused() -> object:
            join_cgroup(paths)
            hold_read, hold_write = os.pipe()
            children: list[int] = []
            try:
                for _ in range(20):
                    pid = os.fork()
                    if pid == 0:
                        try:
                            os.close(hold_write)
                            os.read(hold_read, 1)  # returns at EOF: when the parent lets go
                        finally:
                            os._exit(0)
                    children.append(pid)
            except OSError as e:
                return {"forked": len(children), "errno": e.errno}
            finally:
                os.close(hold_write)
                for pid in children:
                    os.waitpid(pid, 0)
            return {"forked": len(children), "errno": None}

        status, report = run_child(fork_until_refused)
        _exited_ok(status, report)
        assert report == {"forked": 7, "errno": errno.EAGAIN}
        assert group.pids_limit_hit()


def test_cpu_limit_is_written_and_cpu_time_is_counted(mode: str) -> None:
    with Cgroup.create("cpu", CgroupLimits(cpu_cores=0.2)) as group:
        cpu = group.directory_of("cpu")
        assert cpu is not None
        if os.path.exists(f"{cpu}/cpu.max"):
            with open(f"{cpu}/cpu.max") as f:
                assert f.read().split() == ["20000", "100000"]
        else:
            with open(f"{cpu}/cpu.cfs_quota_us") as f, open(f"{cpu}/cpu.cfs_period_us") as g:
                assert (int(f.read()), int(g.read())) == (20000, 100000)
        before = group.cpu_time_ns()
        assert before is not None
        paths = group.attach_paths()

        def burn() -> object:
            join_cgroup(paths)
            while time.process_time() < 0.05:  # 50 ms of CPU time, not of waiting
                pass
            return time.process_time()

        status, report = run_child(burn)
        _exited_ok(status, report)
        after = group.cpu_time_ns()
        assert after is not None
        assert after - before >= 40_000_000


def test_attach_moves_a_running_process_in(mode: str) -> None:
    with Cgroup.create("attach", CgroupLimits(pids=4)) as group:
        go_read, go_write = os.pipe()

        def wait_for_go() -> object:
            os.close(go_write)
            os.read(go_read, 1)
            with open("/proc/self/cgroup") as f:
                return f.read()

        child = Child(wait_for_go)
        os.close(go_read)
        try:
            group.attach(child.pid)
            assert group.procs() == (child.pid,)
        finally:
            os.close(go_write)
        status, report = child.finish()
        _exited_ok(status, report)
        leaf = os.path.basename(group.directories[0])
        assert isinstance(report, str)
        assert f"/{leaf}\n" in report


# -- kill and close ----------------------------------------------------------------------


def _tree(depth: int, ready: int, block: int) -> None:
    """Fork a binary tree below this process; leaves fork and reap for ever."""
    for _ in range(2 if depth else 0):
        if os.fork() == 0:
            try:
                _tree(depth - 1, ready, block)
            finally:
                os._exit(0)
    os.write(ready, b".")
    if depth:
        os.read(block, 1)  # never: nobody writes, and every process holds the write end
    while True:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def test_kill_ends_a_fork_bomb_and_close_removes_everything(mode: str) -> None:
    group = Cgroup.create("bomb", CgroupLimits(pids=128, memory_bytes=2048 * MiB))
    ready_read, ready_write = os.pipe()
    block_read, block_write = os.pipe()
    paths = group.attach_paths()

    def reaper() -> object:
        """Outside the cgroup: adopts orphans of the bomb and reaps every one."""
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        bomb = os.fork()
        if bomb == 0:
            try:
                join_cgroup(paths)
                _tree(5, ready_write, block_read)
            finally:
                os._exit(0)
        reaped: dict[int, int] = {}
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return {"bomb": reaped[bomb], "reaped": len(reaped)}
            reaped[pid] = status

    try:
        child = Child(reaper)
        os.close(ready_write)
        os.close(block_read)
        got = b""
        while len(got) < 63:  # every process of the tree is up
            chunk = os.read(ready_read, 63 - len(got))
            assert chunk, f"the tree broke after {len(got)} processes"
            got += chunk
        assert len(group.procs()) >= 63
        if mode == "v1-only" and cgroup_support().freezer.available:
            assert group.directory_of("freezer") is not None  # kill() freezes first
        group.kill()
        status, report = child.finish()
        _exited_ok(status, report)
        assert isinstance(report, dict)
        assert report["reaped"] >= 63
        assert os.WIFSIGNALED(report["bomb"])
        assert os.WTERMSIG(report["bomb"]) == signal.SIGKILL
        assert group.procs() == ()
    finally:
        os.close(ready_read)
        os.close(block_write)
        group.close()
    assert [d for d in group.directories if os.path.exists(d)] == []
    group.close()  # idempotent


def test_close_kills_what_is_left_and_removes_the_directories(mode: str) -> None:
    group = Cgroup.create("close", CgroupLimits(pids=4))
    paths = group.attach_paths()

    def join_and_stop() -> object:
        join_cgroup(paths)
        os.kill(os.getpid(), signal.SIGSTOP)
        return "continued"

    child = Child(join_and_stop)
    _, status = os.waitpid(child.pid, os.WUNTRACED)  # stopped: it has joined
    assert os.WIFSTOPPED(status)
    assert group.procs() == (child.pid,)
    group.close()
    status, report = child.finish()
    assert os.WIFSIGNALED(status), report
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert [d for d in group.directories if os.path.exists(d)] == []
    with pytest.raises(CgroupError, match="closed"):
        group.attach(os.getpid())
