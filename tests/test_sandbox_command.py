"""``sipkernel sandbox -- CMD``: pass-through, exit statuses, typed reasons, JSON status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import python_c

SANDBOX = [sys.executable, "-m", "sipkernel", "sandbox"]

NOT_IMPORTED = (
    "asyncio",
    "sipkernel._api",
    "sipkernel._core._channel",
    "sipkernel._core._kernel",
    "sipkernel._core._process",
    "sipkernel._supervisor",
    "sipkernel.app",
    "sipkernel.bench",
    "sipkernel.broker",
    "sipkernel.domains",
    "sipkernel.sandbox._domain",
    "sipkernel.sandbox._zygote_main",
    "json",
    "logging",
    "shlex",
    "tomllib",
)
"""What ``sipkernel sandbox -- CMD`` never imports: the kernel, the packages above
it, and what only other flags (``--policy``, ``--json-status``) or other
subcommands need."""


def run(*argv: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SANDBOX, *argv], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_output_and_exit_status_pass_through() -> None:
    result = run("--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.returncode == 3


def test_stdin_passes_through() -> None:
    result = run("--", "tr", "a-z", "A-Z", stdin="hello\n")
    assert result.stdout == "HELLO\n"
    assert result.returncode == 0


def test_command_runs_as_an_unprivileged_uid_as_pid_1_with_no_network() -> None:
    script = "id -u; echo $$; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"
    result = run("--allow-exec", "--", "sh", "-c", script)
    uid, pid, *interfaces = result.stdout.split()
    assert (uid, pid) == ("1000", "1")
    assert interfaces == ["lo"]


def test_environment_is_cleared_but_for_the_allow_list() -> None:
    env = dict(os.environ, SIPKERNEL_TEST_SECRET="hunter2", LANG="C.UTF-8")
    result = subprocess.run(
        [*SANDBOX, "--", "env"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "SIPKERNEL_TEST_SECRET" not in names
    assert "LANG" in names
    assert names <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "HOME"}


def test_env_flag_passes_one_more_variable() -> None:
    env = dict(os.environ, SIPKERNEL_TEST_VALUE="42")
    result = subprocess.run(
        [*SANDBOX, "--env", "SIPKERNEL_TEST_VALUE", "--", "sh", "-c", "echo $SIPKERNEL_TEST_VALUE"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.stdout == "42\n"


def test_not_found_is_127() -> None:
    result = run("--", "no-such-command-here")
    assert result.returncode == 127
    assert "not found" in result.stderr


def test_seccomp_violation_is_named_with_status_159(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    code = "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0); print('survived')"
    result = run("--json-status", str(status), "--", sys.executable, "-I", "-S", "-c", code)
    assert result.returncode == 159
    assert "survived" not in result.stdout
    assert "sipkernel: killed: seccomp violation: ptrace" in result.stderr
    record = json.loads(status.read_text())
    assert record["reason"] == "seccomp_violation"
    assert record["exit_code"] == 159
    assert record["detail"] == "killed: seccomp violation: ptrace"
    assert record["wall_seconds"] > 0


def test_wall_time_limit_kills_with_124() -> None:
    result = run("--time", "0.5", "--", "sleep", "30")
    assert result.returncode == 124
    assert "sipkernel: killed: time limit 0.5 s" in result.stderr


def test_memory_limit_kills_with_a_typed_line() -> None:
    code = "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    result = run("--mem", "64M", "--", sys.executable, "-I", "-S", "-c", code)
    assert result.returncode == 137, result.stderr
    assert "sipkernel: killed: memory limit 64 MiB" in result.stderr


def test_json_status_of_a_normal_exit(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    result = run("--json-status", str(status), "--", "true")
    assert result.returncode == 0
    assert result.stderr == ""
    record = json.loads(status.read_text())
    assert record["reason"] == "normal" or record["exit_code"] == 0
    assert set(record) == {
        "exit_code", "reason", "detail", "wall_seconds", "cpu_seconds", "peak_memory_bytes"
    }  # fmt: skip


def test_exec_of_another_program_is_refused_without_allow_exec() -> None:
    result = run("--", "sh", "-c", "echo started; ls /usr > /dev/null && echo ran-ls")
    assert result.stdout == "started\n"
    assert result.returncode == 159
    assert "sipkernel: killed: seccomp violation: execve" in result.stderr


def test_exec_through_the_dynamic_loader_is_refused_too() -> None:
    code = "import os; os.execv('/lib64/ld-linux-x86-64.so.2', ['ld.so', '/usr/bin/true'])"
    result = run("--", sys.executable, "-I", "-S", "-c", code)
    assert result.returncode == 159
    assert "sipkernel: killed: seccomp violation: execve" in result.stderr


def test_allow_exec_lets_the_command_start_programs() -> None:
    result = run("--allow-exec", "--", "sh", "-c", "ls /usr > /dev/null && echo ran-ls")
    assert result.stdout == "ran-ls\n"


def test_ro_flag_shows_a_directory_read_only(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("granted\n")
    os.chmod(tmp_path, 0o755)
    script = f"read -r line < {tmp_path}/data.txt; echo $line; echo x > {tmp_path}/new.txt"
    result = run("--ro", str(tmp_path), "--", "sh", "-c", script + " || echo refused")
    assert result.stdout.startswith("granted\n")
    assert "refused" in result.stdout
    assert not (tmp_path / "new.txt").exists()


def test_rw_flag_shows_a_directory_writable(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    result = run("--rw", str(tmp_path), "--", "sh", "-c", f"echo written > {tmp_path}/out.txt")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.txt").read_text() == "written\n"


def test_usage_error_without_a_command() -> None:
    result = run("--mem", "64M")
    assert result.returncode == 2
    assert "give the command" in result.stderr


@pytest.mark.parametrize("flag", ["--mem", "--time"])
def test_bad_flag_values_exit_2(flag: str) -> None:
    result = run(flag, "nonsense", "--", "true")
    assert result.returncode == 2


def test_a_grant_through_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    result = run("--ro", str(tmp_path / "link"), "--", "true")
    assert result.returncode == 2
    assert "leads through a symlink" in result.stderr


def test_the_command_may_live_inside_a_granted_directory(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    program = tmp_path / "prog"
    program.write_text("#!/bin/sh\necho from the grant\n")
    program.chmod(0o755)
    result = run("--ro", str(tmp_path), "--", str(program))
    assert (result.returncode, result.stdout) == (0, "from the grant\n"), result.stderr


def test_refused_user_namespaces_are_named_with_the_fix() -> None:
    """Inside a user namespace whose limit of nested user namespaces is 0 (as a
    locked-down container has), the sandbox cannot start and says why."""
    script = (
        "echo 0 > /proc/sys/user/max_user_namespaces && "
        f"exec {sys.executable} -m sipkernel sandbox -- true"
    )
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 125, result.stderr
    assert "namespace limit is reached" in result.stderr
    assert "raise it with sysctl" in result.stderr


def test_the_apparmor_and_docker_causes_are_explained() -> None:
    import errno

    from sipkernel.sandbox._contain import explain_unshare_failure
    from sipkernel.sandbox._linux import CLONE_NEWUSER

    text = explain_unshare_failure(OSError(errno.EPERM, "denied"), CLONE_NEWUSER)
    assert "apparmor_restrict_unprivileged_userns=0" in text
    assert "Docker's default seccomp profile" in text


def test_the_command_imports_only_what_it_uses() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from sipkernel._cli import main\n"
        "status = main(['sandbox', '--', 'true'])\n"
        f"print(status, *sorted(set({NOT_IMPORTED!r}) & (set(sys.modules) - before)))\n"
    )
    done = python_c(code)
    assert done.stdout.split() == ["0"], done.stdout + done.stderr


def test_the_keeper_gets_the_filter_the_supervisor_compiled() -> None:
    from sipkernel.sandbox._command import _program_bytes, _program_from
    from sipkernel.sandbox._seccomp import SyscallPolicy, compile_filter

    held = compile_filter(SyscallPolicy(allow_exec=False, exec_once=True), listener=True)
    failing = compile_filter(SyscallPolicy(on_violation="errno"), listener=True)
    assert (held.notify, failing.notify) == (True, False)
    for program in (held, failing):
        assert _program_from(_program_bytes(program)) == program
    assert _program_from(_program_bytes(None)) is None  # pid 1 compiles it, and says if it fails


def test_pyseccomp_is_imported_without_a_library_search() -> None:
    """Its own lookups of libc and libseccomp would run ldconfig (tens of ms)."""
    code = (
        "import ctypes.util\n"
        "def searched(name):\n"
        "    raise AssertionError(f'searched for {name}')\n"
        "ctypes.util.find_library = searched\n"
        "from sipkernel.sandbox import _seccomp\n"
        "_seccomp._pyseccomp()\n"
        "assert ctypes.util.find_library is searched  # put back\n"
        "print(_seccomp.syscall_name(_seccomp.syscall_number('ptrace')))\n"
    )
    done = python_c(code)
    assert done.stdout.split() == ["ptrace"], done.stdout + done.stderr
