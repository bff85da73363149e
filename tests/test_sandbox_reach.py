"""A module the sandbox's user cannot read is refused at spawn, naming what blocks it."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import sipkernel as sk
from procs import ECHO
from sipkernel.sandbox import Policy
from sipkernel.sandbox._contain import NOBODY
from sipkernel.sandbox._policy import Identity
from sipkernel.sandbox._reach import Reader, check_module

pytestmark = pytest.mark.timeout(60)

STRANGER = Policy(identity=Identity(outside_uid=54321, outside_gid=54321))
"""A sandbox whose code runs as ids that own nothing here."""


@pytest.fixture
def module_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module ``reach_probe`` in ``tmp_path/code``, as if the kernel had imported it."""
    code = tmp_path / "code"
    code.mkdir()
    source = code / "reach_probe.py"
    source.write_text("VALUE = 1\n")
    module = types.ModuleType("reach_probe")
    module.__file__ = str(source)
    monkeypatch.setitem(sys.modules, "reach_probe", module)
    yield code
    code.chmod(0o755)  # so that tmp_path can be removed


def test_the_reader_of_a_root_kernels_sandbox_is_nobody_without_groups() -> None:
    reader = Reader(Policy())
    if os.getuid() == 0:
        assert (reader.uid, reader.gid, reader.groups) == (NOBODY, NOBODY, frozenset())
    else:  # an unprivileged caller's sandbox is that user outside, groups and all
        assert (reader.uid, reader.gid) == (os.getuid(), os.getgid())
        assert reader.groups == frozenset(os.getgroups())


def test_readable_code_passes(module_in: Path) -> None:
    module_in.chmod(0o755)
    check_module("reach_probe", "f", [str(module_in)], Reader(STRANGER))


def test_a_directory_only_its_owner_may_enter_is_named(module_in: Path) -> None:
    module_in.chmod(0o700)
    with pytest.raises(sk.NotImportableError) as caught:
        check_module("reach_probe", "f", [str(module_in)], Reader(STRANGER))
    assert f"{module_in} (mode 0700, owner uid {os.getuid()}) is not readable" in str(caught.value)
    assert "uid 54321 outside it" in str(caught.value)


def test_an_unreadable_file_is_named(module_in: Path) -> None:
    (module_in / "reach_probe.py").chmod(0o600)
    with pytest.raises(sk.NotImportableError, match=r"reach_probe\.py \(mode 0600"):
        check_module("reach_probe", "f", [str(module_in)], Reader(STRANGER))


def test_a_subpackage_directory_is_checked_below_the_shown_root(module_in: Path) -> None:
    module_in.parent.chmod(0o755)  # the shown root
    module_in.chmod(0o711)  # below it: searchable but not listable
    with pytest.raises(sk.NotImportableError, match="mode 0711"):
        check_module("reach_probe", "f", [str(module_in.parent)], Reader(STRANGER))


def test_code_the_sandbox_does_not_show_is_refused(module_in: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(sk.NotImportableError, match="which the sandbox does not show"):
        check_module("reach_probe", "f", [str(elsewhere)], Reader(STRANGER))


def test_modules_without_a_file_are_not_checked() -> None:
    check_module("sys", "f", [], Reader(STRANGER))  # built in: nothing to read


def test_spawn_refuses_what_the_sandbox_cannot_read(
    kernel: sk.Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "unreadable"
    code.mkdir()
    (code / "unreadable_code.py").write_text("def main(ep):\n    ep.close()\n")
    monkeypatch.syspath_prepend(str(code))
    module = importlib.import_module("unreadable_code")
    monkeypatch.setitem(sys.modules, "unreadable_code", module)
    code.chmod(0o300)  # write and search only: not even its owner may list it
    try:
        _, end = sk.channel(ECHO)
        with pytest.raises(sk.NotImportableError, match=f"{code} \\(mode 0300"):
            kernel.spawn(module.main, end, domain="sandbox")
    finally:
        code.chmod(0o755)
