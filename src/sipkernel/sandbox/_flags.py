"""Command-line flags for the sandbox policy: the common knobs, over a policy file.

Flags apply on top of ``--policy FILE`` (or the default policy), so a file
can hold the site's rules and a flag can tighten or widen one knob for one
run.

Adding the flags imports nothing but ``argparse``: the policy schema (and
msgspec under it) is imported when a policy is made, so ``--help`` and usage
errors stay fast.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import msgspec

    from ._policy import Policy

_S = TypeVar("_S", bound="msgspec.Struct")

_SIZE = r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$"  # compiled on first use, by re's cache
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``"256M"``, ``"1g"``, ``"512MiB"``, ``"4096"`` (bytes) -> bytes."""
    match = re.match(_SIZE, text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 256M or 1G, got {text!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """The policy knobs shared by every command that builds a sandbox."""
    group = parser.add_argument_group("policy")
    group.add_argument("--policy", metavar="FILE", help="a TOML policy file (default: strict)")
    group.add_argument("--mem", metavar="SIZE", type=parse_size, help="memory limit, e.g. 256M")
    group.add_argument("--time", metavar="SECONDS", type=parse_seconds, help="wall-clock limit")
    group.add_argument("--cpu", metavar="SECONDS", type=parse_seconds, help="CPU time limit")
    group.add_argument("--cpu-cores", metavar="N", type=float, help="CPU bandwidth in cores")
    group.add_argument("--pids", metavar="N", type=int, help="most tasks (processes+threads)")
    group.add_argument("--files", metavar="N", type=int, help="most open files")
    group.add_argument("--fsize", metavar="SIZE", type=parse_size, help="largest written file")
    group.add_argument("--tmp-size", metavar="SIZE", type=parse_size, help="size of /tmp")
    group.add_argument("--ro", metavar="PATH", action="append", default=[], help="show read-only")
    group.add_argument("--rw", metavar="PATH", action="append", default=[], help="show writable")
    group.add_argument("--net", choices=("none", "loopback"), help="network (default: none)")
    group.add_argument(
        "--allow-exec", action="store_true", help="let the command start other programs"
    )
    group.add_argument(
        "--env", metavar="NAME", action="append", default=[], help="pass this variable in"
    )
    group.add_argument("--workdir", metavar="PATH", help="working directory inside")


def policy_from_flags(args: argparse.Namespace) -> Policy:
    """The policy file (or the default) with the flags applied."""
    import msgspec

    from ._policy import Policy

    policy = Policy.from_toml(args.policy) if args.policy else Policy()
    changes = _changes(policy, args)
    if not changes:
        return policy  # the file's or the default, each validated when made
    combined = msgspec.structs.replace(policy, **changes)
    return Policy.from_dict(combined.to_dict(), origin="flags")  # validates every field


def _changes(policy: Policy, args: argparse.Namespace) -> dict[str, object]:
    """The top-level fields of ``policy`` that the flags change, with their new values."""
    limits = _replace(
        policy.limits,
        memory=args.mem,
        wall_seconds=args.time,
        cpu_seconds=None if args.cpu is None else max(1, round(args.cpu)),
        cpu_cores=args.cpu_cores,
        pids=args.pids,
        open_files=args.files,
        file_size=args.fsize,
    )
    fs = policy.filesystem
    fs = _replace(
        fs,
        tmp_size=args.tmp_size,
        workdir=args.workdir,
        ro=(*fs.ro, *map(_absolute, args.ro)) if args.ro else None,
        rw=(*fs.rw, *map(_absolute, args.rw)) if args.rw else None,
    )
    changes: dict[str, object] = {}
    if limits is not policy.limits:
        changes["limits"] = limits
    if fs is not policy.filesystem:
        changes["filesystem"] = fs
    if args.net:
        changes["network"] = args.net
    if args.allow_exec:
        changes["allow_exec"] = True
    if args.env:
        changes["env"] = (*policy.env, *args.env)
    return changes


def _replace(struct: _S, **changes: object) -> _S:
    import msgspec

    given = {name: value for name, value in changes.items() if value is not None}
    return msgspec.structs.replace(struct, **given) if given else struct


def _absolute(path: str) -> str:
    return os.path.abspath(path)
