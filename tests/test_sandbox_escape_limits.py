"""The escape suite, part two: programs, the terminal, resources, what crosses at start.

Each attempt asserts how it fails: an errno inside or a typed kill outside
(status and the ``sipkernel: killed: ...`` line), and where resources run out,
that the host stays responsive. Part one is test_sandbox_escape.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from escape_harness import (
    KILLED_BY_SECCOMP,
    SECRET_ENV,
    Attempt,
    Ran,
    Survey,
    rows,
    run_command,
    sandboxed,
    survey,
)
from sipkernel.sandbox import Policy
from sipkernel.sandbox._compose import exec_files, sandbox_env
from sipkernel.sandbox._seccomp import syscall_number

pytestmark = pytest.mark.timeout(120)

# -- programs: without --allow-exec nothing but the command runs; set-uid gains nothing -------

LOADER = exec_files(sys.executable)[-1]  # the interpreter's ELF interpreter (ld.so)
ID = os.path.realpath(shutil.which("id") or "/usr/bin/id")  # a program that says it ran

COPY_ID = f"import shutil\nshutil.copy({ID!r}, '/tmp/id')\nos.chmod('/tmp/id', 0o755)"
SCRIPT = "open('/tmp/s', 'w').write('#!/bin/sh\\necho ran\\n')\nos.chmod('/tmp/s', 0o755)"
MEMFD = f"fd = os.memfd_create('id')\nos.write(fd, open({ID!r}, 'rb').read())"

EXEC_ATTEMPTS = {
    # id: (set-up code, the exec, the call the filter names); without --allow-exec only
    # the command's own start may exec: every later execve or execveat kills the sandbox.
    "exec /bin/sh": ("", "os.execv('/bin/sh', ['sh', '-c', 'echo ran'])", "execve"),
    "exec a copy of a program in /tmp": (COPY_ID, "os.execv('/tmp/id', ['id'])", "execve"),
    "exec a #! script in /tmp": (SCRIPT, "os.execv('/tmp/s', ['s'])", "execve"),
    "exec a program through the dynamic loader": (
        "",
        f"os.execv({LOADER!r}, ['ld.so', {ID!r}])",
        "execve",
    ),
    "exec a program from a memfd": (MEMFD, "os.execve(fd, ['id'], {})", "execveat"),
}


@pytest.mark.parametrize("name", EXEC_ATTEMPTS)
def test_no_other_program_runs_without_allow_exec(name: str) -> None:
    setup, exec_call, syscall = EXEC_ATTEMPTS[name]
    ran = sandboxed(f"{setup}\nprint(outcome(lambda: {exec_call}))")
    assert ran.status == 159, ran
    assert ran.stdout == ""
    assert f"sipkernel: killed: seccomp violation: {syscall}" in ran.stderr


def test_with_allow_exec_a_program_outside_the_view_still_cannot_run() -> None:
    ran = sandboxed(
        f"{COPY_ID}\nprint(outcome(lambda: os.execv('/tmp/id', ['id'])))", "--allow-exec"
    )
    assert (ran.status, ran.stdout) == (0, "errno EACCES\n"), ran


SETUID_HELPERS = """
def exec_setuid(path):
    # Run a set-uid program; once it exits, read its ids from its zombie (not yet reaped).
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.dup2(w, 2)
        try:
            os.execv(path, [path])
        finally:
            os._exit(99)
    os.close(w)
    while os.read(r, 4096):
        pass
    with open(f"/proc/{pid}/status") as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    with open(f"/proc/{pid}/comm") as f:
        comm = f.read().strip()
    os.waitpid(pid, 0)
    return comm, " ".join(uids)
"""


def setuid_program(path: str) -> object:
    present = os.path.exists(path) and os.stat(path).st_mode & stat.S_ISUID
    return pytest.param(
        path, marks=pytest.mark.skipif(not present, reason=f"no set-uid {path} here")
    )


@pytest.mark.parametrize(
    "path", [setuid_program(p) for p in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/chsh")]
)
def test_a_setuid_program_runs_with_the_sandboxs_ids(path: str) -> None:
    ran = sandboxed(
        SETUID_HELPERS + f"print(outcome(lambda: exec_setuid({path!r})))", "--allow-exec"
    )
    # real, effective, saved and filesystem uid: all the sandbox's, none root's
    assert ran.stdout == f"ok ({os.path.basename(path)!r}, '1000 1000 1000 1000')\n", ran


@pytest.mark.parametrize("path", [setuid_program("/usr/bin/mount")])
def test_a_setuid_mount_is_killed_at_its_mount_call(path: str) -> None:
    ran = run_command("--", path, "-t", "tmpfs", "none", "/tmp")
    assert ran == Ran(KILLED_BY_SECCOMP, "", "sipkernel: killed: seccomp violation: mount\n")


def test_a_setuid_root_copy_of_id_gains_nothing(tmp_path: Path) -> None:
    # As root this is a real set-uid-root program (the command's file is bound nosuid,
    # and no_new_privs is set); as an unprivileged user it is set-uid to that user,
    # who is uid 1000 inside. Either way `id` would print "euid=" after the gid if the
    # effective uid differed. (The groups that follow depend on the caller's own.)
    program = tmp_path / "id"
    shutil.copy(os.path.realpath(shutil.which("id") or "/usr/bin/id"), program)
    os.chmod(program, 0o4755)
    assert os.stat(program).st_uid == os.getuid()
    ran = run_command("--", str(program))
    assert (ran.status, ran.stderr) == (0, ""), ran
    assert ran.stdout.split(" groups=")[0] == "uid=1000(sandbox) gid=1000(sandbox)", ran


# -- the terminal: no typing into the terminal the sandbox was started from -------------------

TERMINAL_ATTEMPTS = {
    "TIOCSTI": "fcntl.ioctl(0, 0x5412, b'x')",
    "TIOCLINUX": "fcntl.ioctl(0, 0x541C, b'\\x06')",
    "TIOCSTI with junk in the high bits": (
        f"syscall({syscall_number('ioctl')}, 0, 0x100005412, "
        "ctypes.addressof(ctypes.create_string_buffer(b'x')))"
    ),
}


@pytest.mark.parametrize("name", TERMINAL_ATTEMPTS)
def test_nothing_is_typed_into_the_host_terminal(name: str) -> None:
    master, slave = pty.openpty()
    try:
        code = f"import fcntl\nprint('trying', flush=True)\n{TERMINAL_ATTEMPTS[name]}\n"
        ran = sandboxed(code + "print('survived')", stdin=slave, stdout=slave)
        assert (ran.status, ran.stderr) == (
            KILLED_BY_SECCOMP,
            "sipkernel: killed: seccomp violation: ioctl\n",
        )
        # Output: what the sandbox printed, then our marker; an injected byte would be
        # echoed in between.
        os.write(slave, b"END\n")
        output = b""
        while not output.endswith(b"END\r\n"):
            assert select.select([master], [], [], 10)[0], output
            output += os.read(master, 1024)
        assert output == b"trying\r\nEND\r\n"
        # Input: the next line typed on the terminal arrives alone, nothing before it.
        os.write(master, b"typed\n")
        assert select.select([slave], [], [], 10)[0]
        assert os.read(slave, 1024) == b"typed\n"
    finally:
        os.close(master)
        os.close(slave)


# -- resources: the sandbox hits its limits, the host stays responsive ------------------------

FORK_BOMB = """
children = []
hold, keep = os.pipe()  # children wait on it, and die with the pid namespace
try:
    while True:
        pid = os.fork()
        if pid == 0:
            os.read(hold, 1)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    print("errno", errno.errorcode[exc.errno])
"""

THREAD_BOMB = """
import threading
release = threading.Event()
try:
    while True:
        threading.Thread(target=release.wait, daemon=True).start()
except RuntimeError as exc:
    print(exc)
release.set()
"""


def test_a_fork_bomb_is_bounded_and_the_host_can_still_fork() -> None:
    ran = sandboxed(FORK_BOMB, "--pids", "32")
    assert ran == Ran(0, "errno EAGAIN\n", ""), ran
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_thread_bomb_is_bounded_by_the_pids_limit() -> None:
    ran = sandboxed(THREAD_BOMB, "--pids", "16")
    assert ran == Ran(0, "can't start new thread\n", ""), ran


def test_a_memory_bomb_is_a_typed_kill(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    code = (
        "hoard = []\n"
        "while True:\n"
        "    hoard.append(bytearray(16 << 20))\n"
        "    hoard[-1][::4096] = b'x' * 4096\n"
    )
    ran = sandboxed(code, "--mem", "64M", "--json-status", str(status))
    assert ran == Ran(137, "", "sipkernel: killed: memory limit 64 MiB\n"), ran
    record = json.loads(status.read_text())
    assert (record["reason"], record["detail"]) == ("limit", "killed: memory limit 64 MiB")
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_busy_loop_meets_the_wall_clock_limit() -> None:
    ran = sandboxed("while True:\n    pass\n", "--time", "0.5")
    assert ran == Ran(124, "", "sipkernel: killed: time limit 0.5 s\n"), ran


def test_a_busy_loop_meets_the_cpu_time_limit() -> None:
    ran = sandboxed("while True:\n    pass\n", "--cpu", "1")
    assert ran == Ran(128 + signal.SIGXCPU, "", "sipkernel: killed: cpu time limit 1 s\n"), ran


FILL = """
def fill(path, chunk):
    with open(path, "wb", buffering=0) as f:
        while True:
            f.write(b"x" * chunk)
print(outcome(lambda: fill({path!r}, {chunk})))
"""


@pytest.mark.parametrize(
    ("flags", "path", "chunk", "expected"),
    [
        pytest.param(("--tmp-size", "1M"), "/tmp/fill", 65536, "errno ENOSPC", id="tmpfs"),
        pytest.param((), "/dev/shm/fill", 1 << 20, "errno ENOSPC", id="dev-shm"),
        pytest.param(("--fsize", "1M"), "/tmp/big", 65536, "errno EFBIG", id="file-size"),
    ],
)
def test_filling_a_disk_stops_at_its_cap(
    flags: tuple[str, ...], path: str, chunk: int, expected: str
) -> None:
    ran = sandboxed(FILL.format(path=path, chunk=chunk), *flags)
    assert ran == Ran(0, f"{expected}\n", ""), ran


def test_descriptors_run_out_at_the_open_files_limit() -> None:
    code = (
        "held = []\n"
        "print(outcome(lambda: [held.append(os.open('/dev/null', os.O_RDONLY)) "
        "for _ in iter(int, 1)]), len(held) + 3)\n"
    )
    ran = sandboxed(code, "--files", "32")
    assert ran == Ran(0, "errno EMFILE 32\n", ""), ran


# -- what crosses at the start: no inherited descriptor, no secret in the environment ---------


def test_an_inherited_descriptor_does_not_cross(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    fd = os.open(secret, os.O_RDONLY)
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)  # inheritable, and clear of 0-3
    os.close(fd)
    try:
        assert os.get_inheritable(high)
        code = (
            "print(sorted(os.listdir('/proc/self/fd'), key=int))\n"
            f"print(outcome(lambda: os.read({high}, 64)))\n"
        )
        ran = sandboxed(code, pass_fds=(high,))
    finally:
        os.close(high)
    # 0-2 and the listing's own descriptor; the secret's fd is not open inside
    assert ran == Ran(0, "['0', '1', '2', '3']\nerrno EBADF\n", ""), ran


STDIO_ATTEMPTS = {
    # stdin is a host file, opened read-only (and writable by anyone on the host)
    "reopen stdin for writing": Attempt(
        "open('/proc/self/fd/0', 'r+').write('owned')", "errno EACCES", landlock=True
    ),
    "reopen stdin for reading": Attempt(
        "open('/proc/self/fd/0').read()", "errno EACCES", landlock=True
    ),
    "read stdin as given": Attempt("os.read(0, 64)", "ok b'host data\\n'"),
}


@pytest.fixture(scope="module")
def stdio_survey(tmp_path_factory: pytest.TempPathFactory) -> tuple[Survey, Path]:
    given = tmp_path_factory.mktemp("escape-stdio") / "stdin.txt"
    given.write_text("host data\n")
    os.chmod(given, 0o666)  # only the sandbox's own layers stand in the way
    with open(given) as stdin:
        return survey(STDIO_ATTEMPTS, {}, stdin=stdin), given


@pytest.mark.parametrize("name", rows(STDIO_ATTEMPTS))
def test_inherited_stdio_cannot_be_reopened_wider(
    stdio_survey: tuple[Survey, Path], name: str
) -> None:
    survey_, given = stdio_survey
    outcome, expected = survey_[name]
    assert outcome == expected
    assert given.read_text() == "host data\n"


ENV_ATTEMPTS = {
    "os.environ": Attempt("sorted(os.environ)", "$names"),
    "/proc/self/environ": Attempt(
        "sorted(e.split(b'=')[0].decode() for e in open('/proc/self/environ', 'rb')"
        ".read().split(b'\\0') if e)",
        "$names",
    ),
    "/proc/1/environ (pid 1 is the command)": Attempt(
        "sorted(e.split(b'=')[0].decode() for e in open('/proc/1/environ', 'rb')"
        ".read().split(b'\\0') if e)",
        "$names",
    ),
}


@pytest.fixture(scope="module")
def env_survey() -> Survey:
    names = sorted(sandbox_env(Policy()))  # the allow-list, as set in this environment
    env = dict(os.environ, **{SECRET_ENV: "hunter2"})
    return survey(ENV_ATTEMPTS, {"names": f"ok {names!r}"}, env=env)


@pytest.mark.parametrize("name", rows(ENV_ATTEMPTS))
def test_the_hosts_secrets_stay_out_of_the_environment(env_survey: Survey, name: str) -> None:
    outcome, expected = env_survey[name]
    assert SECRET_ENV not in outcome
    assert outcome == expected
