"""Sandbox rlimits: each limit binds in a forked child, and never raises a hard limit.

Limits are applied only in forked children (never in the test process); each
child reports through a pipe and is reaped by exit status.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import warnings
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from sipkernel._core._errors import UsageError
from sipkernel.sandbox._rlimits import RlimitError, Rlimits, apply_rlimits, rlimit_signal_reason

MiB = 1 << 20


def run_child(body: Callable[[], object]) -> tuple[int, object]:
    """Run ``body`` in a forked child; (its wait status, what it returned as JSON, or None)."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns when forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
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
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return status, json.loads(data) if data else None


def _ok(status: int, report: object) -> object:
    assert os.WIFEXITED(status), report
    assert os.WEXITSTATUS(status) == 0, report
    return report


# -- the struct ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address_space": -1},
        {"cpu_seconds": True},
        {"open_files": 1.5},
        {"file_size": "1"},
        {"core": -1},
        {"core": None},
    ],
)
def test_invalid_limits_raise_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        Rlimits(**kwargs)  # type: ignore[arg-type]


def test_defaults_inherit_everything_but_core() -> None:
    limits = Rlimits()
    assert limits.core == 0
    assert all(getattr(limits, f) is None for f in limits.__struct_fields__ if f != "core")
    assert msgspec.convert({"stack": 8 * MiB}, Rlimits) == Rlimits(stack=8 * MiB)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"nofile": 3}, Rlimits)
    with pytest.raises(UsageError):
        apply_rlimits({"core": 0})  # type: ignore[arg-type]


def test_signal_reasons() -> None:
    limits = Rlimits(cpu_seconds=3, file_size=4096)
    assert rlimit_signal_reason(signal.SIGXCPU, limits) == "cpu time limit 3 s"
    assert rlimit_signal_reason(signal.SIGXFSZ, limits) == "file size limit 4096 bytes"
    assert rlimit_signal_reason(signal.SIGXCPU, Rlimits()) == "cpu time limit (inherited)"
    assert rlimit_signal_reason(signal.SIGKILL, limits) is None
    assert rlimit_signal_reason(signal.SIGSEGV, limits) is None


# -- each limit binds ----------------------------------------------------------------------


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


def test_address_space_makes_a_big_allocation_raise_memory_error() -> None:
    def allocate() -> object:
        apply_rlimits(Rlimits(address_space=_vm_size() + 64 * MiB))
        small = bytearray(8 * MiB)  # still room for this
        try:
            bytearray(512 * MiB)
        except MemoryError:
            return {"small": len(small), "big": "MemoryError"}
        return {"small": len(small), "big": "allocated"}

    status, report = run_child(allocate)
    assert _ok(status, report) == {"small": 8 * MiB, "big": "MemoryError"}


@pytest.mark.slow
def test_cpu_seconds_kill_a_busy_child_with_sigxcpu() -> None:
    limits = Rlimits(cpu_seconds=1)

    def spin() -> object:
        apply_rlimits(limits)
        while True:
            pass

    status, report = run_child(spin)
    assert os.WIFSIGNALED(status), report
    assert os.WTERMSIG(status) == signal.SIGXCPU
    assert not os.WCOREDUMP(status)  # core defaults to 0
    assert rlimit_signal_reason(os.WTERMSIG(status), limits) == "cpu time limit 1 s"


def test_open_files_make_open_fail_with_emfile() -> None:
    def open_until_refused() -> object:
        apply_rlimits(Rlimits(open_files=16))
        opened: list[int] = []
        try:
            while len(opened) < 100:
                opened.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            return {"errno": e.errno, "highest": max(opened, default=-1)}
        finally:
            for fd in opened:
                os.close(fd)
        return {"errno": None}

    status, report = run_child(open_until_refused)
    report = _ok(status, report)
    assert isinstance(report, dict)
    assert report["errno"] == errno.EMFILE
    assert report["highest"] < 16


def test_file_size_makes_a_write_fail_with_efbig(tmp_path: Path) -> None:
    path = tmp_path / "big"

    def write_past_the_limit() -> object:
        apply_rlimits(Rlimits(file_size=4096))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        written = 0
        try:
            while written < 10_000:
                written += os.write(fd, b"x" * 1000)
        except OSError as e:
            return {"errno": e.errno, "written": written}
        finally:
            os.close(fd)
        return {"errno": None, "written": written}

    status, report = run_child(write_past_the_limit)
    assert _ok(status, report) == {"errno": errno.EFBIG, "written": 4096}
    assert path.stat().st_size == 4096


# -- clamping and errors ---------------------------------------------------------------------


def test_values_above_the_hard_limit_are_clamped_to_it() -> None:
    def clamp() -> object:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CPU, (100, 100))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 * MiB, 1 * MiB))
        apply_rlimits(Rlimits(open_files=100_000, cpu_seconds=500, file_size=4096))
        return [
            resource.getrlimit(which)
            for which in (resource.RLIMIT_NOFILE, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE)
        ]

    status, report = run_child(clamp)
    assert _ok(status, report) == [[64, 64], [100, 100], [4096, 4096]]


def test_limits_not_given_are_inherited_and_core_is_zero() -> None:
    def defaults() -> object:
        before = resource.getrlimit(resource.RLIMIT_NOFILE)
        apply_rlimits(Rlimits(cpu_seconds=30))
        return {
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE) == before,
            "core": resource.getrlimit(resource.RLIMIT_CORE),
            "cpu": resource.getrlimit(resource.RLIMIT_CPU),
        }

    status, report = run_child(defaults)
    assert _ok(status, report) == {"nofile": True, "core": [0, 0], "cpu": [30, 31]}


def test_a_refused_limit_raises_rlimit_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(which: int, limits: tuple[int, int]) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    with pytest.raises(RlimitError, match="core limit to 0") as info:
        apply_rlimits(Rlimits())
    assert info.value.limit == "core"
    assert isinstance(info.value.__cause__, OSError)
