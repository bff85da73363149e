"""``sipkernel run`` and ``sipkernel check``: what they print and the status they return."""

from __future__ import annotations

import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .._core._errors import SipkernelError, UsageError
from .._core._events import Event
from .._core._kernel import Kernel
from ._load import ManifestError
from ._resolve import Blueprint, load_blueprint
from ._runner import Application

EXIT_OK = 0
EXIT_FAILED = 1
"""The main process did not end normally (or a supervisor gave up)."""
EXIT_INVALID = 2
"""The manifest has problems (``check`` lists them)."""
EXIT_INTERRUPTED = 130


def check_app(path: str | Path, out: TextIO | None = None) -> int:
    """Validate a manifest without running it; print the problems or a summary."""
    out = out or sys.stdout
    try:
        blueprint = load_blueprint(path)
    except ManifestError as exc:
        _print_problems(exc, sys.stderr)
        return EXIT_INVALID
    manifest = blueprint.manifest
    counts = ", ".join(
        _count(len(items), noun)
        for items, noun in (
            (manifest.processes, "process"),
            (manifest.channels, "channel"),
            (manifest.capabilities, "capability"),
        )
    )
    out.write(f"{path}: ok: application {manifest.app.name!r}, {counts}\n")
    for name in manifest.isolation:
        out.write(f"  {name:14} {placement_text(blueprint, name)}\n")
    return EXIT_OK


def _count(number: int, noun: str) -> str:
    if number == 1:
        return f"1 {noun}"
    plural = {"process": "processes", "capability": "capabilities"}.get(noun, noun + "s")
    return f"{number} {plural}"


def placement_text(blueprint: Blueprint, configuration: str) -> str:
    """``disk: process, fs: local, ...``: where each process runs in ``configuration``."""
    domains = blueprint.manifest.domains
    return ", ".join(
        f"{process}: {domains[blueprint.domain_of(configuration, process)].kind}"
        for process in blueprint.manifest.processes
    )


def parse_sets(sets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["client.reads=100"]`` -> ``{"client": {"reads": 100}}`` (values are TOML values)."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in sets:
        key, equals, text = item.partition("=")
        process, dot, arg = key.strip().partition(".")
        if not equals or not dot or not process or not arg:
            raise UsageError(f"--set wants PROCESS.ARG=VALUE, not {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word is a string
        overrides.setdefault(process, {})[arg] = value
    return overrides


def run_app(
    path: str | Path,
    *,
    isolation: str | None = None,
    data_dir: str | None = None,
    sets: Sequence[str] = (),
    out: TextIO | None = None,
) -> int:
    """Run an application until its main process ends (or Ctrl-C); print every exit."""
    out = out or sys.stdout
    try:
        blueprint = load_blueprint(path)
        overrides = parse_sets(sets)
        configuration = blueprint.configuration(isolation)
    except ManifestError as exc:
        _print_problems(exc, sys.stderr)
        return EXIT_INVALID
    out.write(f"{blueprint.name}: configuration {configuration}: ")
    out.write(placement_text(blueprint, configuration) + "\n")
    out.flush()
    started = time.perf_counter()
    with Kernel() as kernel:
        application = Application(
            blueprint, kernel, configuration=configuration, data_dir=data_dir, overrides=overrides
        )
        status = _run_until_done(application, out)
    _print_exits(application.exits, out)
    out.write(f"{blueprint.name}: ran {time.perf_counter() - started:.2f} s; all stopped\n")
    return status


def _run_until_done(application: Application, out: TextIO) -> int:
    try:
        try:
            application.start()
        except Exception as exc:  # a failed prepare hook or domain: say so, no traceback
            reason = str(exc) if isinstance(exc, SipkernelError) else f"{type(exc).__name__}: {exc}"
            out.write(f"the application could not start: {reason}\n")
            application.stop()
            return EXIT_FAILED
        if application.blueprint.manifest.app.main is None:
            out.write("running until Ctrl-C\n")
            out.flush()
        outcome = application.wait()
    except KeyboardInterrupt:
        out.write("\ninterrupted: stopping in order\n")
        application.stop()
        return EXIT_INTERRUPTED
    application.stop()
    assert outcome is not None  # wait() without a timeout returns only when done
    main = application.blueprint.manifest.app.main
    out.write(f"{main} ended: {outcome.describe()}\n")
    return EXIT_OK if outcome.is_normal else EXIT_FAILED


def _print_exits(exits: list[Event], out: TextIO) -> None:
    if not exits:
        return
    out.write("exits:\n")
    for event in exits:
        reason = event.reason.describe() if event.reason is not None else "?"
        out.write(f"  {event.name}<{event.pid}> in {event.domain}: {reason}\n")


def _print_problems(error: ManifestError, err: TextIO) -> None:
    count = len(error.problems)
    for problem in error.problems:
        err.write(f"{problem}\n")
    err.write(f"{_count(count, 'problem')} found\n")
