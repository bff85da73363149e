"""The Landlock layer of the sandbox: each case forks a child that restricts itself.

The child applies a policy, tries one operation and writes back through a pipe
either ``ok`` or the name of the errno the operation failed with; the parent
asserts the exact answer. A Landlock restriction can never be lifted, so it is
only ever applied in a forked child, never in the test process.

These tests need a kernel with Landlock ABI 6 or later (TCP rules and
scoping); on a kernel without it they fail rather than skip.
"""

from __future__ import annotations

import errno
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from sipkernel._core._errors import UsageError
from sipkernel.sandbox import _landlock
from sipkernel.sandbox._landlock import (
    FsRule,
    LandlockPolicy,
    LandlockReport,
    abi_version,
    restrict,
)

pytestmark = pytest.mark.timeout(30)

TRUE = "/bin/true"
SYSTEM = tuple(p for p in ("/usr", "/bin", "/lib", "/lib64") if os.path.exists(p))
"""Where a dynamically linked program and its libraries may live."""
NOT_SUPPORTED = errno.errorcode[errno.EOPNOTSUPP]
"""``ENOTSUP``: on Linux the same number as ``EOPNOTSUPP``."""


@pytest.fixture(autouse=True)
def _landlock_available() -> None:
    if abi_version() < 6:
        pytest.fail(
            f"Landlock ABI {abi_version()} on this kernel; these tests need ABI 6 or later "
            "(0 means Landlock is missing or disabled: check the lsm= boot parameter)",
            pytrace=False,
        )


def in_child(action: Callable[[], str | None], policy: LandlockPolicy | None = None) -> str:
    """Fork; the child applies ``policy`` (if any), then runs ``action``.

    Returns what ``action`` returned, ``"ok"`` for None, the errno name of an
    OSError it raised, or ``"UsageError: ..."``.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() beside pytest-timeout's watchdog thread; the
        # child only makes system calls and never takes a lock that thread could hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, _answer(action, policy).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child failed; it said {answer!r}"
    return answer


def _answer(action: Callable[[], str | None], policy: LandlockPolicy | None) -> str:
    try:
        if policy is not None:
            restrict(policy)
        result = action()
    except UsageError as e:
        return f"UsageError: {e}"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return "ok" if result is None else result


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``ro/data``, ``ro/escape`` (a symlink to ``outside/secret``), ``rw/``, ``outside/secret``,
    ``files/one`` and ``files/two``."""
    for name in ("ro", "rw", "outside", "files"):
        (tmp_path / name).mkdir()
    (tmp_path / "ro" / "data").write_text("data")
    (tmp_path / "outside" / "secret").write_text("secret")
    (tmp_path / "ro" / "escape").symlink_to("../outside/secret")
    (tmp_path / "files" / "one").write_text("one")
    (tmp_path / "files" / "two").write_text("two")
    return tmp_path


def dirs(tree: Path) -> LandlockPolicy:
    """``ro`` read-only and ``rw`` read-write; nothing else."""
    return LandlockPolicy(fs=(FsRule(f"{tree}/ro", "ro"), FsRule(f"{tree}/rw", "rw")))


def read(path: str | Path) -> Callable[[], str]:
    def action() -> str:
        with open(path) as f:
            return f.read()

    return action


def create(path: str | Path) -> Callable[[], None]:
    def action() -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    return action


def applying(policy: LandlockPolicy) -> Callable[[], None]:
    def action() -> None:
        restrict(policy)

    return action


def run_true() -> None:
    pid = os.posix_spawn(TRUE, [TRUE], os.environ)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- the kernel ----------------------------------------------------------------------------


def test_abi_version_is_6_or_later() -> None:
    assert abi_version() >= 6
    assert abi_version() is abi_version()  # cached


def test_report_says_what_was_enforced() -> None:
    def report(policy: LandlockPolicy) -> LandlockReport:
        answer = in_child(lambda: msgspec.json.encode(restrict(policy)).decode())
        return msgspec.json.decode(answer, type=LandlockReport)

    full = report(LandlockPolicy())
    assert full == LandlockReport(abi_version(), True, True, True)
    unscoped = report(LandlockPolicy(scope_abstract_unix=False, scope_signals=False))
    assert unscoped == LandlockReport(abi_version(), True, True, False)


def test_restrict_leaves_no_descriptor_open(tree: Path) -> None:
    def action() -> str | None:
        before = set(os.listdir("/proc/self/fd"))
        restrict(LandlockPolicy(fs=(FsRule("/proc", "ro"), *dirs(tree).fs), tcp_connect=(1,)))
        after = set(os.listdir("/proc/self/fd"))
        return None if after <= before else f"left open: {after - before}"

    assert in_child(action) == "ok"


# -- the filesystem ------------------------------------------------------------------------


def test_read_allowed_under_a_read_only_dir(tree: Path) -> None:
    assert in_child(read(tree / "ro" / "data"), dirs(tree)) == "data"


def test_write_denied_under_a_read_only_dir(tree: Path) -> None:
    def write() -> None:
        os.close(os.open(tree / "ro" / "data", os.O_WRONLY))

    assert in_child(write, dirs(tree)) == "EACCES"
    assert in_child(create(tree / "ro" / "new"), dirs(tree)) == "EACCES"


def test_create_denied_where_no_rule_applies(tree: Path) -> None:
    assert in_child(create(tree / "outside" / "new"), dirs(tree)) == "EACCES"
    assert not (tree / "outside" / "new").exists()


def test_create_allowed_under_a_read_write_dir(tree: Path) -> None:
    assert in_child(create(tree / "rw" / "new"), dirs(tree)) == "ok"
    assert (tree / "rw" / "new").exists()


@pytest.mark.parametrize(("access", "expected"), [("rx", "ok"), ("ro", "EACCES")])
def test_exec_needs_rx(access: str, expected: str) -> None:
    policy = msgspec.convert(
        {"fs": [{"path": p, "access": access} for p in SYSTEM]}, LandlockPolicy
    )
    assert in_child(run_true, policy) == expected


@pytest.mark.parametrize(("name", "expected"), [("one", "one"), ("two", "EACCES"), (".", "EACCES")])
def test_rule_on_a_single_file(tree: Path, name: str, expected: str) -> None:
    policy = LandlockPolicy(fs=(FsRule(f"{tree}/files/one", "ro"),))
    path = tree / "files" / name
    action = (lambda: str(os.listdir(path))) if name == "." else read(path)
    assert in_child(action, policy) == expected


@pytest.mark.parametrize("access", ["rw", "rwx"])
def test_writable_rule_on_a_single_file(tree: Path, access: str) -> None:
    # Directory rights on a file are EINVAL for the kernel: only file rights are asked for.
    def append() -> None:
        with open(tree / "files" / "one", "a") as f:
            f.write("+")

    policy = LandlockPolicy(fs=(FsRule(f"{tree}/files/one", access),))  # type: ignore[arg-type]
    assert in_child(append, policy) == "ok"
    assert (tree / "files" / "one").read_text() == "one+"


def test_dot_dot_out_of_an_allowed_dir_is_denied(tree: Path) -> None:
    assert in_child(read(f"{tree}/ro/../outside/secret"), dirs(tree)) == "EACCES"


def test_symlink_out_of_an_allowed_dir_is_denied(tree: Path) -> None:
    assert read(tree / "ro" / "escape")() == "secret"  # unrestricted, the link works
    assert in_child(read(tree / "ro" / "escape"), dirs(tree)) == "EACCES"


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        # Linking into another directory needs REFER on both sides: the source's
        # directory has no rule, so the kernel answers EXDEV (a "cross-device" link).
        ("outside/secret", "rw/alias", "EXDEV"),
        # A read-only directory lacks REFER too.
        ("ro/data", "rw/alias", "EXDEV"),
        # The target directory lacks MAKE_REG, which is checked first: EACCES.
        ("rw/own", "outside/alias", "EACCES"),
        ("rw/own", "rw/alias", "ok"),
    ],
)
def test_hard_links_across_the_rules(tree: Path, source: str, target: str, expected: str) -> None:
    (tree / "rw" / "own").write_text("own")
    assert in_child(lambda: os.link(tree / source, tree / target), dirs(tree)) == expected
    assert (tree / target).exists() == (expected == "ok")


def test_missing_rule_path_is_a_usage_error(tree: Path) -> None:
    policy = LandlockPolicy(fs=(FsRule(f"{tree}/missing", "ro"),))
    answer = in_child(lambda: None, policy)
    assert answer == f"UsageError: Landlock rule path does not exist: {tree}/missing"


def test_kernel_refusal_names_the_step(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_landlock, "_FILE_RIGHTS", _landlock.AccessFs(0xFFFF))

    def action() -> str:
        try:
            restrict(LandlockPolicy(fs=(FsRule(f"{tree}/files/one", "rw"),)))
        except OSError as e:
            return f"{errno.errorcode[e.errno or 0]} {e.strerror}"
        return "restricted"

    assert in_child(action) == f"EINVAL landlock_add_rule for {tree}/files/one: Invalid argument"


# -- TCP -----------------------------------------------------------------------------------


@pytest.fixture
def tcp_port() -> Iterator[int]:
    """A loopback port with a listener on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def connect_tcp(port: int) -> Callable[[], None]:
    def action() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("127.0.0.1", port))

    return action


def bind_tcp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))


def test_tcp_connect_denied_unless_its_port_is_allowed(tcp_port: int) -> None:
    assert in_child(connect_tcp(tcp_port), LandlockPolicy()) == "EACCES"
    assert in_child(connect_tcp(tcp_port), LandlockPolicy(tcp_connect=(tcp_port + 1,))) == "EACCES"
    assert in_child(connect_tcp(tcp_port), LandlockPolicy(tcp_connect=(tcp_port,))) == "ok"
    assert in_child(connect_tcp(tcp_port), LandlockPolicy(tcp_bind=(tcp_port,))) == "EACCES"


def test_tcp_bind_denied_unless_its_port_is_allowed() -> None:
    # Port 0 in a rule allows binding to an ephemeral port (port 0 in bind).
    assert in_child(bind_tcp, LandlockPolicy()) == "EACCES"
    assert in_child(bind_tcp, LandlockPolicy(tcp_connect=(0,))) == "EACCES"
    assert in_child(bind_tcp, LandlockPolicy(tcp_bind=(0,))) == "ok"


def test_ports_out_of_range_are_usage_errors() -> None:
    for bad in (-1, 65536, True):
        with pytest.raises(UsageError, match="TCP port"):
            LandlockPolicy(tcp_connect=(bad,))
    with pytest.raises(msgspec.ValidationError, match="TCP port"):
        msgspec.convert({"tcp_bind": [70000]}, LandlockPolicy)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"tcp": [80]}, LandlockPolicy)
    with pytest.raises(UsageError, match="access"):
        FsRule("/", "w")  # type: ignore[arg-type]


# -- scopes --------------------------------------------------------------------------------


def test_signals_out_of_the_domain_are_denied() -> None:
    # Signal 0 only checks permission, and Landlock checks it like any other signal.
    parent = os.getpid()
    assert in_child(lambda: os.kill(parent, 0), LandlockPolicy()) == "EPERM"
    assert in_child(lambda: os.kill(parent, 0), LandlockPolicy(scope_signals=False)) == "ok"
    assert in_child(lambda: os.kill(os.getpid(), 0), LandlockPolicy()) == "ok"


def test_abstract_unix_sockets_out_of_the_domain_are_denied() -> None:
    address = f"\0sipkernel-test-{os.getpid()}"

    def connect() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen()
        assert in_child(connect, LandlockPolicy()) == "EPERM"
        assert in_child(connect, LandlockPolicy(scope_abstract_unix=False)) == "ok"


# -- older kernels (simulated) -----------------------------------------------------------


def test_required_feature_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_landlock, "abi_version", lambda: 3)
    policy = LandlockPolicy(tcp_connect=(443,), scope_signals=False, scope_abstract_unix=False)
    required = msgspec.structs.replace(policy, required=True)
    assert in_child(applying(required)) == NOT_SUPPORTED
    with_scopes = LandlockPolicy(required=True)  # the scopes need ABI 6
    assert in_child(applying(with_scopes)) == NOT_SUPPORTED


def test_best_effort_applies_what_the_abi_has(
    tcp_port: int, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_landlock, "abi_version", lambda: 3)
    policy = dirs(tree)

    def connect_after_restrict() -> str:
        report = restrict(policy)
        connect_tcp(tcp_port)()
        return repr(report)

    # ABI 3 has no TCP rules: the connection goes through, and the report says so.
    assert in_child(connect_after_restrict) == repr(LandlockReport(3, True, False, False))
    assert in_child(create(tree / "outside" / "new"), policy) == "EACCES"


def test_without_landlock(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_landlock, "abi_version", lambda: 0)
    policy = dirs(tree)
    assert in_child(lambda: repr(restrict(policy))) == repr(LandlockReport(0, False, False, False))
    assert in_child(create(tree / "outside" / "new"), policy) == "ok"
    required = msgspec.structs.replace(policy, required=True)
    assert in_child(applying(required)) == NOT_SUPPORTED
