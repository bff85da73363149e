"""The ``sipkernel`` command line: help, usage errors, and ``bench`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import python_c
from sipkernel import bench
from sipkernel._cli import main


def sipkernel(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in a fresh interpreter, as the console script does."""
    return subprocess.run(
        [sys.executable, "-m", "sipkernel._cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_console_script_is_declared() -> None:
    (script,) = metadata.entry_points(group="console_scripts", name="sipkernel")
    assert script.value == "sipkernel._cli:run"


def test_help_lists_the_subcommands() -> None:
    done = sipkernel("--help")
    assert done.returncode == 0, done.stderr
    assert "usage: sipkernel" in done.stdout
    assert "bench" in done.stdout


def test_bench_help_lists_options_and_benchmarks() -> None:
    done = sipkernel("bench", "--help")
    assert done.returncode == 0, done.stderr
    for option in ("--quick", "--only", "--rounds", "--json", "--markdown"):
        assert option in done.stdout
    text = " ".join(done.stdout.split())  # argparse wraps the epilog
    for name in bench.BENCHMARK_NAMES:
        assert name in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["bench", "--only", "no_such_bench"], "unknown benchmark no_such_bench"),
        (["bench", "--rounds", "0"], "argument --rounds: must be at least 1"),
        (["bench", "--rounds", "many"], "argument --rounds: expected a whole number"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = sipkernel(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "usage: sipkernel" in done.stderr
    assert done.stdout == ""


def test_usage_error_in_process_raises_system_exit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--only", "rtt_local,nope"])
    assert exited.value.code == 2
    assert "unknown benchmark nope" in capsys.readouterr().err


def test_bench_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    assert capsys.readouterr().out.split() == list(bench.BENCHMARK_NAMES)


def test_bench_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, doc = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    args = ["bench", "--quick", "--rounds", "1", "--only", "rtt_local"]
    assert main([*args, "--json", str(results), "--markdown", str(doc)]) == 0
    out, err = capsys.readouterr()
    assert "rtt_local" in out  # the table goes to stdout
    assert "rtt_local:" in err  # progress to stderr
    (record,) = json.loads(results.read_text("utf-8"))
    assert record["name"] == "rtt_local"
    text = doc.read_text("utf-8")
    assert "`sipkernel bench --quick --rounds 1 --only rtt_local --json" in text
    assert "| `rtt_local` |" in text


def test_parsing_the_sandbox_command_imports_no_sandbox_machinery() -> None:
    """``--help`` and usage errors of ``sipkernel sandbox`` stay fast: its flags are
    added and parsed without the policy schema, msgspec or the kernel."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from sipkernel._cli import build_parser\n"
        "build_parser('sandbox').parse_args(['sandbox', '--mem', '1G', '--', 'true'])\n"
        "print(*sorted(set(sys.modules) - before))\n"
    )
    done = python_c(code)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert "sipkernel.sandbox._flags" in imported
    heavy = {"asyncio", "msgspec", "sipkernel._core._kernel", "sipkernel.bench", "sipkernel.app"}
    heavy |= {f"sipkernel.sandbox.{name}" for name in ("_policy", "_seccomp", "_command")}
    assert not imported & heavy


def test_exit_now_runs_the_exit_hooks_and_flushes_the_streams() -> None:
    code = (
        "import atexit, sys\n"
        "from sipkernel._cli import exit_now\n"
        "atexit.register(print, 'hook ran')\n"
        "sys.stdout.write('written, ')\n"
        "sys.stderr.write('on stderr')\n"
        "exit_now(7)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    done = python_c(code, env)
    assert (done.returncode, done.stdout, done.stderr) == (7, "written, hook ran\n", "on stderr")


def test_python_m_sipkernel_exits_with_the_sandboxed_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sipkernel", "sandbox", "--", "sh", "-c", "exit 42"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (42, "")


def test_building_the_whole_parser_imports_no_kernel() -> None:
    """``sipkernel --help``, ``--version``, ``check`` and ``run`` parse before any import
    of what they run; listing the benchmarks' names must not start the suite."""
    code = (
        "import sys\n"
        "from sipkernel._cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('asyncio', 'sipkernel._core._kernel', 'sipkernel.domains', 'sipkernel.app')\n"
        "print(*[name for name in heavy if name in sys.modules])\n"
    )
    done = python_c(code)
    assert (done.stdout.strip(), done.returncode) == ("", 0), done.stderr
