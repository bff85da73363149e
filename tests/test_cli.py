"""The ``sipkernel`` command line: help, usage errors, and ``bench`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

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
    assert script.value == "sipkernel._cli:main"


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
