"""cgroup v2 files, on a hierarchy laid out as cgroupfs lays it out.

This machine's v2 tree offers no memory, pids or cpu controller (they are on
v1), so test_sandbox_cgroups.py exercises the v2 code only for membership,
killing and CPU time. Here the v2 limit files and counters are checked on
plain directories with the files a v2 cgroup has: which file each limit is
written to and in which format, and how each counter is read back. What
only a kernel can show (a limit enforced, a process moved) is not claimed
here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipkernel.sandbox import _cgroups
from sipkernel.sandbox._cgroups import (
    Cgroup,
    CgroupLimits,
    CgroupSupport,
    CgroupUnavailable,
    ControllerSupport,
)

V2_FILES = {  # the limit files empty: a write to cgroupfs replaces, to a plain file it overlays
    "memory.max": "",
    "memory.swap.max": "",
    "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "pids.max": "",
    "pids.events": "max 0\n",
    "cpu.max": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cgroup.procs": "",
}


@pytest.fixture
def v2_group(tmp_path: Path) -> Cgroup:
    """A v2 cgroup directory serving memory, pids and cpu (plus the unified tree)."""
    leaf = tmp_path / "sipkernel-test-1"
    leaf.mkdir()
    for name, text in V2_FILES.items():
        (leaf / name).write_text(text)
    return Cgroup.adopt("test", ((str(leaf), "v2", ("cpu", "memory", "pids", "unified")),))


def written(group: Cgroup, name: str) -> str:
    directory = group.directory_of("memory")
    assert directory is not None
    return (Path(directory) / name).read_text()


def test_limits_go_to_the_v2_files_in_their_formats(v2_group: Cgroup) -> None:
    v2_group._write_limits(CgroupLimits(memory_bytes=256 << 20, pids=64, cpu_cores=0.5))
    assert written(v2_group, "memory.max") == str(256 << 20)
    assert written(v2_group, "memory.swap.max") == "0"  # no swapping past the limit
    assert written(v2_group, "pids.max") == "64"
    assert written(v2_group, "cpu.max") == "50000 100000"  # quota and period, in µs


def test_a_limit_not_asked_for_is_left_alone(v2_group: Cgroup) -> None:
    v2_group._write_limits(CgroupLimits(pids=8))
    assert written(v2_group, "pids.max") == "8"
    assert written(v2_group, "memory.max") == ""  # never written
    assert written(v2_group, "cpu.max") == ""


def test_the_v2_counters_are_read_back(v2_group: Cgroup) -> None:
    directory = Path(v2_group.directory_of("memory") or "")
    assert (v2_group.memory_peak(), v2_group.oom_killed(), v2_group.pids_limit_hit()) == (
        0,
        False,
        False,
    )
    (directory / "memory.peak").write_text("123456789\n")
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (directory / "pids.events").write_text("max 2\n")
    (directory / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert v2_group.memory_peak() == 123456789
    assert v2_group.oom_killed()
    assert v2_group.pids_limit_hit()
    assert v2_group.cpu_time_ns() == 1_500_000


def _support(memory: str, pids: str, cpu: str, parent_of: dict[str, str]) -> CgroupSupport:
    def found(name: str, version: str) -> ControllerSupport:
        return ControllerSupport(name=name, version=version, parent=parent_of[version])  # type: ignore[arg-type]

    return CgroupSupport(
        memory=found("memory", memory),
        pids=found("pids", pids),
        cpu=found("cpu", cpu),
        unified=found("unified", "v2"),
        cpuacct=found("cpuacct", "v1"),
        freezer=found("freezer", "v1"),
        cgroup_kill=True,
    )


def test_an_all_v2_plan_is_one_directory_in_the_unified_tree() -> None:
    support = _support("v2", "v2", "v2", {"v2": "/v2", "v1": "/v1"})
    plan = _cgroups._plan(support, CgroupLimits(memory_bytes=1 << 30, pids=10, cpu_cores=1.0))
    assert plan == {"/v2": ("v2", {"memory", "pids", "cpu", "unified"})}


def test_a_mixed_plan_keeps_the_v2_tree_for_killing_and_cpu_time() -> None:
    support = _support("v1", "v2", "v1", {"v2": "/v2", "v1": "/v1"})
    plan = _cgroups._plan(support, CgroupLimits(memory_bytes=1 << 30, pids=10))
    assert plan == {"/v1": ("v1", {"memory"}), "/v2": ("v2", {"pids", "unified"})}


def test_a_limit_with_no_controller_is_refused_before_anything_is_made() -> None:
    support = _support("v2", "v2", "v2", {"v2": "/v2", "v1": "/v1"})
    missing = ControllerSupport(name="pids", reason="pids: no v2 controller and not mounted")
    support = CgroupSupport(
        **{**{f: getattr(support, f) for f in support.__struct_fields__}, "pids": missing}
    )
    with pytest.raises(CgroupUnavailable, match="cannot enforce the pids limit: no v2 controller"):
        _cgroups._plan(support, CgroupLimits(pids=10))


def test_enabling_a_v2_controller_needs_it_offered_by_the_parent(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu\n")
    assert _cgroups._enable_v2("memory", str(tmp_path)) == "no v2 controller"
    assert _cgroups._enable_v2("cpu", str(tmp_path)) is None  # already enabled: no write
    assert (tmp_path / "cgroup.subtree_control").read_text() == "cpu\n"
