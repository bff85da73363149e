"""``sipkernel check`` and ``sipkernel run``: output and exit statuses, Ctrl-C included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app_fixtures import edited, service_app, write_app
from sipkernel._cli import main
from sipkernel.app._commands import parse_sets

SIPKERNEL = [sys.executable, "-m", "sipkernel._cli"]


def test_check_summarises_a_valid_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(write_app(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "ok: application 'echo', 2 processes, 1 channel, 0 capabilities" in out
    assert "mixed          server: local, client: sandbox" in out


def test_check_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edited('serve = "Echo"', 'serve = "Ecko"')
    text = edited('children = ["server", "client"]', 'children = ["server"]', text)
    assert main(["check", str(write_app(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert "processes.server.endpoints.clients: unknown contract 'Ecko'" in err
    assert "processes.client: not reachable from any supervisor" in err
    assert err.endswith("2 problems found\n")


def test_run_prints_placement_output_and_exits(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = str(write_app(tmp_path))
    status = main(["run", path, "--isolation", "microkernel", "--set", "client.count=5"])
    assert status == 0
    out = capfd.readouterr().out
    assert "echo: configuration microkernel: server: process, client: process" in out
    assert "client: 5 pings answered, 0 reconnects, in process" in out
    assert "client ended: normal" in out
    assert re.search(r"server<\d+> in echo[0-9]+/own-process:server:1: shutdown", out)


def test_run_exits_1_when_main_fails(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status = main(["run", str(write_app(tmp_path)), "--set", "client.count=-1"])
    out = capfd.readouterr().out
    assert status == 0, out  # a negative count sends nothing: still normal
    status = main(["run", str(write_app(tmp_path)), "--set", 'client.count="many"'])
    out = capfd.readouterr().out
    assert status == 1
    assert "client ended: exception: builtins.TypeError" in out


def test_run_refuses_an_unknown_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(write_app(tmp_path)), "--isolation", "nowhere"]) == 2
    assert "no configuration 'nowhere' (known: monolithic, microkernel" in capsys.readouterr().err


def test_set_values_are_toml_values_or_bare_words() -> None:
    assert parse_sets(["a.n=3", "a.f=0.5", 'a.s="x y"', "a.w=word", "b.l=[1, 2]"]) == {
        "a": {"n": 3, "f": 0.5, "s": "x y", "w": "word"},
        "b": {"l": [1, 2]},
    }
    with pytest.raises(ValueError, match=r"PROCESS\.ARG=VALUE"):
        parse_sets(["count=3"])


def test_ctrl_c_stops_a_running_application_in_order(tmp_path: Path) -> None:
    text = service_app()
    path = write_app(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [*SIPKERNEL, "run", str(path), "--isolation", "microkernel"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # the test's own process group gets no SIGINT
    ) as run:
        assert run.stdout is not None
        lines = [run.stdout.readline(), run.stdout.readline()]
        assert lines[1] == "running until Ctrl-C\n", lines
        os.killpg(run.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        rest, _ = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "interrupted: stopping in order" in rest
    assert re.search(r"server<\d+> in echo[0-9]+/own-process:server:1: shutdown", rest), rest


def test_run_reports_a_failing_prepare_hook_without_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text = edited('main = "client"', 'main = "client"\nprepare = "app_procs:broken_prepare"')
    status = main(["run", str(write_app(tmp_path, text))])
    out, err = capfd.readouterr()
    assert status == 1
    assert "the application could not start: OSError: [Errno 28] No space left" in out
    assert "Traceback" not in out + err
