"""The examples a newcomer runs first must run, and say what they claim."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(script: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.timeout(150)
def test_quickstart_adds_in_both_domains() -> None:
    out = _run("quickstart.py")
    assert "local    2 + 3 = 5" in out
    assert "process  2 + 3 = 5" in out
    assert out.count("refused: contract Adder") == 2
    assert out.count("adder exited: normal") == 2


@pytest.mark.timeout(300)
def test_the_main_job_measures_every_configuration_then_survives_a_sigkill() -> None:
    out = _run("demo.py")
    for configuration in ("monolithic", "microkernel", "sandboxed", "mixed"):
        assert re.search(rf"^{configuration} +\d+\.\d+ \(", out, re.MULTILINE), out
    assert re.search(r"^monolithic .* baseline ", out, re.MULTILINE)
    assert out.count("all verified") == 4 * 4 + 1  # warm-up and three rounds each, the fault run
    fault = out.split("3. A disk driver killed mid-run")[1]
    assert "sending it SIGKILL now" in fault
    assert "supervisor: restarted disk<" in fault
    assert "(signal: SIGKILL)" in fault
    assert "webfiles: 6000 reads" in fault
    assert "the client ended: normal" in fault
    assert re.search(r"disk<\d+> +signal: SIGKILL", fault)


@pytest.mark.timeout(150)
def test_tour_shows_violation_crash_restart_and_reasons() -> None:
    out = _run("tour.py")
    assert "isolation='local'  ran in the kernel's own process" in out
    assert "isolation='process'  ran in a child process" in out
    assert "isolation='sandbox'  ran in a child process in its own namespaces" in out
    assert "(pid 1)" in out  # the sandbox's own pid namespace
    assert "ProtocolViolation: contract Tally, state Adding" in out
    assert "BrokenChannelError (peer_gone: the peer's OS process is gone)" in out
    assert "supervisor: restarted tally" in out
    assert "(signal: SIGKILL)" in out
    assert "the new incarnation answers: total=8" in out
    assert "signal: SIGKILL" in out.split("5. Every exit has a typed reason")[1]


@pytest.mark.timeout(150)
def test_sandbox_example_shows_refusals_and_the_named_kill() -> None:
    out = _run("sandbox.py")
    assert "compute 6 * 7            -> ok: 42" in out
    assert "who am I                 -> ok: uid 1000, pid 1" in out
    assert "read /etc/shadow         -> refused: FileNotFoundError" in out
    assert "write /usr/evil          -> refused: OSError: Read-only file system" in out
    assert "connect to 1.1.1.1:53    -> refused: OSError: Address family not supported" in out
    assert "call ptrace              -> the plugin is gone" in out
    assert "plugin exit reason: seccomp violation: ptrace" in out


@pytest.mark.timeout(150)
def test_broker_example_reads_writes_and_is_refused_with_an_audit_line() -> None:
    out = _run("broker.py")
    assert "generator: read north.csv: 3 days, 1200 sold" in out
    assert "generator: wrote the report: 70 bytes" in out
    assert "generator: open a data file directly: FileNotFoundError" in out
    assert "generator: read /etc/passwd through the capability: refused: absolute paths" in out
    assert "generator: read ../../etc/passwd through the capability: refused: '..'" in out
    assert "generator exit: normal" in out
    assert out.count("kernel audit: access_refused sales data<") == 2
    assert "in sandbox asked to read '/etc/passwd'" in out
    assert "  total       1600" in out
