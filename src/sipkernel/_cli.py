"""The ``sipkernel`` command line: one argparse subcommand per tool.

Each subcommand is a function that adds its parser and sets ``handler``; a new
one (``sandbox``, ``run``, ``check``, ...) is added to ``COMMANDS``. Usage
errors exit with status 2 and a message naming the problem (argparse's
convention); a handler returns the process exit status.

A subcommand imports what it needs when it runs: ``sipkernel sandbox`` starts
without the kernel, asyncio, the application or benchmark packages.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import __version__

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]
"""Runs a subcommand: the parsed arguments, and its parser (for ``parser.error``)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _name_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more benchmark names")
    return names


def _add_set_flag(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(
        "--set",
        metavar="PROCESS.ARG=VALUE",
        action="append",
        default=[],
        help=f"{prefix}replace a process argument for this run (a TOML value; repeatable)",
    )


# -- sipkernel bench ---------------------------------------------------------------------


def _add_bench(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .bench import BENCHMARK_NAMES  # deferred to parser construction, not module import

    parser = subparsers.add_parser(
        "bench",
        help="run the micro-benchmarks side by side with their baselines",
        description=(
            "Run sipkernel's micro-benchmarks, each in interleaved rounds with its "
            "baseline in the same run, and print a table of values, baselines and "
            "ratios against the targets. Progress goes to stderr, the table to stdout."
        ),
        epilog="benchmarks: " + ", ".join(BENCHMARK_NAMES),
    )
    parser.add_argument(
        "--quick", action="store_true", help="few iterations and rounds (seconds, for tests)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        type=_name_list,
        action="extend",
        help="run only these benchmarks (repeatable; see the list below)",
    )
    parser.add_argument(
        "--rounds",
        metavar="N",
        type=_positive_int,
        help="timed rounds per benchmark; the median is reported (default 7, --quick 3)",
    )
    parser.add_argument("--json", metavar="FILE", help="write one JSON record per benchmark")
    parser.add_argument(
        "--markdown",
        metavar="FILE",
        help="write or update the results table in FILE (BENCHMARKS.md form)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "suite",
        nargs="?",
        choices=["isolation"],
        help="isolation: run an application (default WebFiles) under every configuration",
    )
    parser.add_argument("manifest", nargs="?", metavar="APP.toml", help="for isolation")
    parser.add_argument("--plot", metavar="STEM", help="isolation: write STEM.png and STEM.svg")
    parser.add_argument("--data", metavar="DIR", help="isolation: the data directory")
    _add_set_flag(parser, "isolation: ")
    parser.set_defaults(handler=_bench, command_parser=parser)


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import shlex

    from . import bench

    if args.list:
        print("\n".join(bench.BENCHMARK_NAMES))
        return 0
    if args.suite == "isolation":
        return _bench_isolation(args, parser)
    if args.manifest is not None or args.plot or args.data or args.set:
        parser.error("APP.toml, --plot, --data and --set are for `sipkernel bench isolation`")
    names: list[str] | None = args.only
    if names is not None:
        unknown = [name for name in names if name not in bench.BENCHMARK_NAMES]
        if unknown:
            parser.error(
                f"unknown benchmark {', '.join(unknown)}; "
                f"choose from {', '.join(bench.BENCHMARK_NAMES)}"
            )
    results = bench.run_benchmarks(
        names, quick=args.quick, rounds=args.rounds, progress=bench.stderr_progress()
    )
    print(bench.format_table(results))
    if args.json:
        bench.write_json(args.json, results)
    if args.markdown:
        bench.update_markdown(args.markdown, results, shlex.join(["sipkernel", *args.argv]))
    return 0


def _bench_isolation(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import shlex

    from ._core._errors import UsageError
    from .app import ManifestError
    from .bench._isolation_command import bench_isolation

    if args.only:
        parser.error("--only is for the micro-benchmarks, not `bench isolation`")
    try:
        return bench_isolation(
            args.manifest,
            rounds=args.rounds,
            quick=args.quick,
            sets=args.set,
            data_dir=args.data,
            json_path=args.json,
            plot_stem=args.plot,
            markdown=args.markdown,
            command=shlex.join(["sipkernel", *args.argv]),
        )
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return 2
    except UsageError as exc:
        parser.error(str(exc))


# -- sipkernel sandbox ---------------------------------------------------------------------


def _add_sandbox(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .sandbox._flags import add_policy_flags

    parser = subparsers.add_parser(
        "sandbox",
        help="run any command in a sandbox",
        description=(
            "Run CMD in a sandbox: new namespaces, a read-only view of the system, "
            "no network, a seccomp filter, Landlock, limits. Its stdin, stdout and "
            "stderr pass through and its exit status is returned; when the sandbox "
            "ends the command, one line on stderr says why."
        ),
        epilog=(
            "exit status: the command's own; 124 time limit; 125 sandbox set-up failed; "
            "126 cannot execute; 127 not found; 128+N killed by signal N (137 also for "
            "the memory limit, 152 CPU time limit, 159 seccomp violation); 130 interrupted."
        ),
    )
    add_policy_flags(parser)
    parser.add_argument(
        "--json-status", metavar="FILE", help="write the exit reason, times and peak memory"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    parser.set_defaults(handler=_sandbox, command_parser=parser)


def _sandbox(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._core._errors import UsageError
    from .sandbox._command import run_command
    from .sandbox._errors import SandboxError
    from .sandbox._flags import policy_from_flags

    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not argv:
        parser.error("give the command to run after --")
    try:
        policy = policy_from_flags(args)
        return run_command(policy, argv, json_status=args.json_status)
    except UsageError as exc:
        parser.error(str(exc))
    except SandboxError as exc:
        print(f"sipkernel: {exc}", file=sys.stderr)
        return 125


# -- sipkernel run / check -------------------------------------------------------------------


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run an application from its manifest",
        description=(
            "Start the application APP.toml declares, under one of its isolation "
            "configurations; stream its output; stop in order when its main process "
            "ends or on Ctrl-C, and print every process's exit reason."
        ),
        epilog="exit status: 0 main ended normally; 1 it did not; 2 bad manifest; 130 Ctrl-C.",
    )
    parser.add_argument("manifest", metavar="APP.toml")
    parser.add_argument("--isolation", metavar="NAME", help="the configuration to run")
    parser.add_argument("--data", metavar="DIR", help="the data directory (default: [app] data)")
    _add_set_flag(parser)
    parser.set_defaults(handler=_run, command_parser=parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._core._errors import UsageError
    from .app._commands import run_app

    try:
        return run_app(args.manifest, isolation=args.isolation, data_dir=args.data, sets=args.set)
    except UsageError as exc:
        parser.error(str(exc))


def _add_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate an application manifest without running it",
        description=(
            "Check APP.toml: syntax, types, unknown names, endpoints whose contracts "
            "do not match, parameters nothing gives (capabilities not granted), "
            "processes no supervisor reaches, supervision cycles, domain kinds this "
            "machine cannot provide. Each problem names its line and what to write."
        ),
        epilog="exit status: 0 valid; 2 problems found.",
    )
    parser.add_argument("manifest", metavar="APP.toml")
    parser.set_defaults(handler=_check, command_parser=parser)


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .app._commands import check_app

    return check_app(args.manifest)


# -- the entry point ----------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = {
    "bench": _add_bench,
    "check": _add_check,
    "run": _add_run,
    "sandbox": _add_sandbox,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that subcommand's (each imports what it
    needs, and ``sipkernel sandbox`` must start fast)."""
    parser = argparse.ArgumentParser(
        prog="sipkernel",
        description="sipkernel: software-isolated processes for Python.",
    )
    parser.add_argument("--version", action="version", version=f"sipkernel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add in COMMANDS.items():
        if command in (None, name):
            add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (usage errors exit 2 via argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    args.argv = argv
    handler: Handler = args.handler
    return handler(args, args.command_parser)


def run() -> NoReturn:
    """``sipkernel`` as a program: :func:`main` on ``sys.argv``, then exit with its status.

    ``sipkernel sandbox`` spends nothing on garbage collection: its start-up
    makes only objects that live as long as the process (modules, classes,
    functions), which a collection walks to find nothing, and its supervisor
    allocates next to nothing while the command runs. It ends with
    :func:`exit_now`, leaving the freeing of those objects to the OS.
    """
    argv = sys.argv[1:]
    if argv[:1] != ["sandbox"]:
        sys.exit(main(argv))
    gc.disable()
    exit_now(main(argv))


def exit_now(status: int) -> NoReturn:
    """End the process as the interpreter would, without its teardown: the exit hooks
    run and the standard streams are flushed, but every module and object is not
    freed one by one first (tens of milliseconds, for memory the OS reclaims at once).
    Only for a program that leaves no thread of its own running and no file unclosed."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
