"""What the escape suite runs on: code in a sandbox, tables of attempts, outcomes.

``sandboxed(code, *flags)`` runs ``python -I -S -c CODE`` through ``sipkernel
sandbox``; a table of :class:`Attempt` rows runs in one sandbox and comes back
as one outcome per row (``survey``); the constants describe what the sandbox
should look like for whoever runs the suite (root or a user).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from string import Template
from typing import NamedTuple

import pytest

from sipkernel.sandbox import Policy
from sipkernel.sandbox._compose import exec_files
from sipkernel.sandbox._policy import DEFAULT_ENV
from sipkernel.sandbox._seccomp import syscall_number
from sipkernel.sandbox._view import View

# -- running code in a sandbox ---------------------------------------------------------------

SANDBOX = (sys.executable, "-m", "sipkernel", "sandbox")
PYTHON = (sys.executable, "-I", "-S", "-c")
KILLED_BY_SECCOMP = 128 + signal.SIGSYS  # 159

PRELUDE = """\
import ctypes, errno, os, signal, socket, sys
LIBC = ctypes.CDLL(None, use_errno=True)

def outcome(action):
    try:
        result = action()
    except OSError as exc:
        return "errno " + errno.errorcode.get(exc.errno, str(exc.errno))
    except Exception as exc:
        return type(exc).__name__
    return "ok " + repr(result)

def report(name, action):
    print(name, outcome(action), sep="\\t", flush=True)

def syscall(number, *args):
    function = LIBC["syscall"]
    function.argtypes = (ctypes.c_long,) + (ctypes.c_ulong,) * len(args)
    function.restype = ctypes.c_long
    ctypes.set_errno(0)
    result = function(number, *args)
    if result == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result

def read(path):
    with open(path) as f:
        return f.read(64)

def create(path):
    with open(path, "x") as f:
        f.write("planted")
    return "created"

def users(path):
    with open(path) as f:
        return [line.split(":")[0] for line in f]
"""
"""Helpers every sandboxed snippet starts with (the sandboxed interpreter has no site)."""


class Ran(NamedTuple):
    status: int
    stdout: str
    stderr: str


def sandboxed(code: str, *flags: str, **popen: object) -> Ran:
    """Run ``code`` (after ``PRELUDE``) in ``sipkernel sandbox [flags] -- python -I -S -c``."""
    return run_command(*flags, "--", *PYTHON, PRELUDE + code, **popen)


def run_command(*argv: str, **popen: object) -> Ran:
    """Run ``sipkernel sandbox ARGV``; its exit status, stdout and stderr."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    result = subprocess.run(
        [*SANDBOX, *argv],
        text=True,
        timeout=60,
        check=False,
        **popen,  # type: ignore[call-overload]
    )
    return Ran(result.returncode, result.stdout or "", result.stderr or "")


Survey = dict[str, tuple[str, str]]
"""``{attempt: (outcome, expected outcome)}`` of one batch."""


class Attempt(NamedTuple):
    """One batched attempt: an expression run inside, and the outcome it must have.

    ``$name`` in either is replaced by the survey's context (as a Python literal
    in the code, as text in the outcome).
    """

    code: str
    expected: str
    landlock: bool = False
    """The outcome comes from the Landlock layer (so it needs a kernel with Landlock)."""


def survey(
    attempts: Mapping[str, Attempt],
    context: Mapping[str, object],
    *flags: str,
    helpers: str = "",
    **popen: object,
) -> Survey:
    """Make every attempt in one sandbox (after ``helpers``); ``{name: (outcome, expected)}``."""
    code_context = {key: repr(value) for key, value in context.items()}
    text_context = {key: str(value) for key, value in context.items()}
    lines = [Template(helpers).substitute(code_context)] + [
        f"report({name!r}, lambda: {Template(attempt.code).substitute(code_context)})"
        for name, attempt in attempts.items()
    ]
    ran = sandboxed("\n".join(lines), *flags, **popen)
    assert ran.status == 0, ran
    outcomes = dict(line.split("\t", 1) for line in ran.stdout.splitlines())
    assert outcomes.keys() == attempts.keys(), ran
    return {
        name: (outcomes[name], Template(attempt.expected).substitute(text_context))
        for name, attempt in attempts.items()
    }


def rows(attempts: Mapping[str, Attempt]) -> list[object]:
    """Parameters for one test per attempt. Those Landlock stops are not skipped on a
    kernel without it: there they fail, as an isolation test must."""
    return [pytest.param(name) for name in attempts]


def call(name: str, *args: int | str) -> str:
    """Code that makes system call ``name`` raw (numbers resolved here, for this machine)."""
    return f"syscall({', '.join(str(a) for a in (syscall_number(name), *args))})"


SECRET_ENV = "SIPKERNEL_ESCAPE_SECRET"
"""A secret the suite puts in the host's environment: it must never be seen inside."""
RUNNER = os.getpid()
"""The test runner: the host process the sandbox most wants to reach."""

# What the sandbox's files look like for the case at hand.
ROOT = os.getuid() == 0
SETUID_0 = "errno EPERM" if ROOT else "errno EINVAL"
"""Root's sandbox maps 0 (it may not become it); a user's does not map 0 at all."""
_ALLOWED_HERE = {name for name in DEFAULT_ENV if name in os.environ}
ZYGOTE_ENVIRON = (
    "errno EACCES" if ROOT else f"ok {sorted({*_ALLOWED_HERE, 'HOME', 'PATH', 'PYTHONPATH'})}"
)
OUTSIDE_UID = 65534 if ROOT else os.getuid()  # the host uid the sandbox's uid 1000 maps to
OUTSIDE_GID = 65534 if ROOT else os.getgid()
COMMAND_VIEW = [
    bind.inside
    for bind in View(Policy(), extra_ro=exec_files(sys.executable), import_path=False).binds
]


def skeleton(path: str) -> bool:
    """Is ``path`` an empty directory inside, only there as a parent of something shown?"""
    return any(inside.startswith(path.rstrip("/") + "/") for inside in COMMAND_VIEW)


def listing_outcome(path: str) -> str:
    """Listing ``path`` inside: a skeleton's listing is refused (no Landlock rule covers
    it), anything else of the host's is simply not there."""
    return "errno EACCES" if skeleton(path) else "errno ENOENT"


def write_outcome(path: str) -> str:
    """Opening a shown file for writing without truncating: the read-only bind refuses
    it (EROFS) only once the file's permissions would let the sandbox's uid write."""
    st = os.stat(path)
    if st.st_uid == OUTSIDE_UID:
        writable = st.st_mode & stat.S_IWUSR
    elif st.st_gid == OUTSIDE_GID:
        writable = st.st_mode & stat.S_IWGRP
    else:
        writable = st.st_mode & stat.S_IWOTH
    return "errno EROFS" if writable else "errno EACCES"


def other_home_file() -> str:
    """A file in a home directory that is not on the sandbox's view (on this host if any)."""
    homes = sorted(os.listdir("/home")) if os.path.isdir("/home") else []
    for home in (f"/home/{name}" for name in homes):
        if skeleton(home) or home in COMMAND_VIEW:
            continue
        for name in (".bashrc", ".profile", ".bash_history"):
            if os.path.exists(f"{home}/{name}"):
                return f"{home}/{name}"
    return "/home/sipkernel-escape-nobody/.profile"


STDLIB_OS = os.path.realpath(os.__file__)
SITE_PACKAGES = os.path.realpath(sysconfig.get_paths()["purelib"])
PYTHON_BINARY = os.path.realpath(sys.executable)
SANDBOX_USERS = "ok ['root', 'sandbox', 'nobody']"  # the sandbox's own /etc/passwd
