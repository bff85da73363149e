"""The Singularity micro-benchmark table, measured in every domain kind side by side.

Hunt & Larus ("Singularity: Rethinking the Software Stack", OSR 41(2), 2007,
Table 1) give four costs in CPU cycles on an AMD Athlon 64 3000+ at 1.8 GHz:
a minimal kernel API call, a thread yield, a message ping-pong and a process
create. :func:`measure_kinds` measures sipkernel's nearest analogue of each,
for each domain kind, as code running *inside* a domain of that kind sees it:

* **kernel API call**: ``sk.current().pid``, timed in a loop by a process in
  the domain. A process has no kernel object; ``sk.current()`` (its own
  context: pid, name, isolation) is the whole of what it may ask the runtime
  without a channel, and every channel operation makes the same lookup first.
  It never leaves the domain's OS process, in any kind (the figure includes
  the loop's own few tens of nanoseconds).
* **yield / switch**: two ``async def`` processes of one domain take turns
  with ``await asyncio.sleep(0)``; the figure is one turn of the timing one,
  i.e. handing the domain's event loop to the other process *and back* (two
  hand-offs; the paper's figure is one yield). ``async def`` processes are
  tasks on their domain's loop, sipkernel's cheapest schedulable unit; a
  ``def`` process is a thread, whose yield is decided by the GIL's switch
  interval (5 ms), not by the yield.
* **message ping-pong**: ``Ping``/``Pong`` round trips over a contract-checked
  channel between two ``async def`` processes of the same domain, timed by
  the client. Both ends were moved into the domain separately at spawn, so in
  a ``process`` or ``sandbox`` domain the channel is a socket pair inside that
  one OS process; in ``local`` it is the in-memory transport.
* **process create**: a process cannot create processes in sipkernel (it has
  no kernel handle), so this one is timed from the kernel's thread:
  ``kernel.domain(kind)`` (not for ``local``: a new process in the shared
  local domain) + ``channel()`` + ``spawn(async def)`` + its first reply.
  Joining and closing the domain afterwards are not timed. For ``local`` the
  figure includes the hop from the kernel's thread to the domain's loop
  thread and back (the suite's ``spawn_local_first_reply`` times the same
  from a task on the kernel's own loop).

The first three are timed inside the domain by an agent process (see
``_kinds_procs``), which sends each round's nanoseconds back over a channel.
Every (operation, kind) pair is one contender of the harness's interleaved
rounds; a row's figure is the median over rounds of each round's mean.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import sipkernel as sk

from ._harness import Progress, interleave, median, quiet
from ._kinds_procs import (
    AGENT,
    API_CALL,
    PING_PONG,
    TURNS,
    YIELD,
    Measure,
    Measured,
    agent,
    yield_partner,
)
from ._procs import ECHO, READY, echo_server_async, replier

KINDS: tuple[str, ...] = ("local", "process", "sandbox")
OPERATIONS: tuple[str, ...] = (
    "kernel API call",
    "yield / switch",
    "message ping-pong",
    "process create",
)
PAPER = "Hunt & Larus, OSR 41(2) 2007, Table 1 (AMD Athlon 64 3000+)"
PAPER_CLOCK_HZ = 1.8e9
"""The clock of the paper's machine, to turn its cycles into microseconds."""
PAPER_CYCLES: dict[str, tuple[int, int]] = {
    "kernel API call": (80, 437),
    "yield / switch": (365, 906),
    "message ping-pong": (1_040, 5_800),
    "process create": (388_000, 719_000),
}
"""Cycles per operation: (Singularity, Linux), from the paper's Table 1."""
PAPER_SYSTEMS = ("Singularity", "Linux")
QUICK_ROUNDS = 3
DEFAULT_ROUNDS = 7
_IN_DOMAIN = {"kernel API call": API_CALL, "yield / switch": YIELD, "message ping-pong": PING_PONG}


@dataclasses.dataclass(frozen=True)
class KindRow:
    """One operation measured in one domain kind (microseconds over rounds)."""

    operation: str
    kind: str
    micros: float
    """The median over rounds of each round's mean."""
    low: float
    """The fastest round's mean."""
    high: float
    """The slowest round's mean."""


@dataclasses.dataclass(frozen=True)
class _Counts:
    """Repetitions per round of each operation (creates per kind)."""

    api_calls: int
    yields: int
    round_trips: int
    creates: dict[str, int]

    @classmethod
    def for_run(cls, quick: bool) -> _Counts:
        if quick:
            return cls(2_000, 300, 200, {"local": 5, "process": 2, "sandbox": 1})
        return cls(200_000, 20_000, 5_000, {"local": 200, "process": 20, "sandbox": 10})

    def of(self, operation: str, kind: str) -> int:
        if operation == "process create":
            return self.creates[kind]
        by_operation = {
            "kernel API call": self.api_calls,
            "yield / switch": self.yields,
            "message ping-pong": self.round_trips,
        }
        return by_operation[operation]


def paper_micros(operation: str) -> tuple[float, float]:
    """The paper's (Singularity, Linux) cost of ``operation`` in µs at its 1.8 GHz clock."""
    singularity, linux = PAPER_CYCLES[operation]
    return singularity / PAPER_CLOCK_HZ * 1e6, linux / PAPER_CLOCK_HZ * 1e6


# -- measuring ----------------------------------------------------------------------------


def measure_kinds(
    kinds: Sequence[str] = KINDS,
    *,
    quick: bool = False,
    rounds: int | None = None,
    progress: Progress = quiet,
) -> list[KindRow]:
    """Measure the four operations in each of ``kinds``; rows in operation, then kind, order.

    ``quick`` runs few repetitions (a few seconds in all, for tests);
    ``rounds`` is the number of timed rounds (default 7, or 3 with ``quick``),
    after one untimed warm-up round. Raises ``sipkernel.UsageError`` (a
    ``ValueError``) for an unknown kind or fewer than one round.
    """
    chosen = _checked_kinds(kinds)
    rounds = _checked_rounds(quick, rounds)
    counts = _Counts.for_run(quick)
    with sk.Kernel(preload=[agent.__module__]) as kernel:
        drives = {kind: _start_agent(kernel, kind, progress) for kind in chosen}
        contenders = [
            (_label(operation, kind), _contender(kernel, drives[kind], operation, kind, counts))
            for operation in OPERATIONS
            for kind in chosen
        ]
        progress(f"kinds: {rounds} rounds of {len(contenders)} measurements")
        samples = interleave(contenders, rounds)
        for drive in drives.values():
            drive.close()
    return [_row(operation, kind, samples) for operation in OPERATIONS for kind in chosen]


def _checked_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kinds, str):
        raise sk.UsageError(f"kinds must be a sequence of kind names, not the string {kinds!r}")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise sk.UsageError(
            f"unknown domain kind(s): {', '.join(map(repr, unknown))} (known: {', '.join(KINDS)})"
        )
    if not kinds:
        raise sk.UsageError(f"no domain kind to measure (known: {', '.join(KINDS)})")
    return tuple(dict.fromkeys(kinds))


def _checked_rounds(quick: bool, rounds: int | None) -> int:
    if rounds is None:
        return QUICK_ROUNDS if quick else DEFAULT_ROUNDS
    if rounds < 1:
        raise sk.UsageError(f"rounds must be at least 1, not {rounds}")
    return rounds


def _label(operation: str, kind: str) -> str:
    return f"{operation} | {kind}"


def _start_agent(kernel: sk.Kernel, kind: str, progress: Progress) -> sk.Endpoint:
    """A new domain of ``kind`` with the agent, its yield partner and an echo server."""
    progress(f"kinds: starting a {kind} domain with the timing agent")
    domain = kernel.domain(kind, name=f"bench-kinds-{kind}")
    agent_end, drive = sk.channel(AGENT)
    partner_end, turns = sk.channel(TURNS)
    echo_end, client_end = sk.channel(ECHO)
    kernel.spawn(yield_partner, partner_end, domain=domain, name="bench-yield-partner")
    kernel.spawn(echo_server_async, echo_end, domain=domain, name="bench-echo")
    kernel.spawn(agent, agent_end, turns, client_end, domain=domain, name="bench-agent")
    _ask(drive, API_CALL, 1)  # the first answer proves all three are up
    return drive


def _contender(
    kernel: sk.Kernel, drive: sk.Endpoint, operation: str, kind: str, counts: _Counts
) -> Callable[[], float]:
    """One round of ``operation`` in ``kind``: the mean µs per operation."""
    n = counts.of(operation, kind)
    if operation in _IN_DOMAIN:
        code = _IN_DOMAIN[operation]
        return lambda: _ask(drive, code, n) / n / 1000.0
    return lambda: _create_round(kernel, kind, n)


def _ask(drive: sk.Endpoint, code: str, n: int) -> int:
    """Have the agent time ``n`` repetitions of ``code``; its nanoseconds."""
    drive.send(Measure(code, n))
    measured: Measured = drive.recv(timeout=120)
    return measured.ns


def _create_round(kernel: sk.Kernel, kind: str, n: int) -> float:
    """Mean µs over ``n`` creates of a process (and domain) of ``kind`` to its first reply."""
    return sum(_create_once(kernel, kind) for _ in range(n)) / n / 1000.0


def _create_once(kernel: sk.Kernel, kind: str) -> int:
    start = time.perf_counter_ns()
    domain = None if kind == "local" else kernel.domain(kind)
    mine, theirs = sk.channel(READY)
    handle = kernel.spawn(replier, mine, domain=domain, name="bench-kinds-created")
    theirs.recv(timeout=30)
    elapsed = time.perf_counter_ns() - start
    handle.join(30)
    theirs.close()
    if domain is not None:
        domain.close(5.0)
    return elapsed


def _row(operation: str, kind: str, samples: dict[str, list[float]]) -> KindRow:
    mine = samples[_label(operation, kind)]
    return KindRow(operation, kind, median(mine), min(mine), max(mine))


# -- reporting ----------------------------------------------------------------------------


def _grid(rows: Sequence[KindRow]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells: one line per operation, one column per kind, then the paper."""
    kinds = list(dict.fromkeys(row.kind for row in rows))
    by_pair = {(row.operation, row.kind): row for row in rows}
    operations = [op for op in OPERATIONS if any((op, kind) in by_pair for kind in kinds)]
    header = ["operation (µs)", *kinds, *(f"{name} (paper)" for name in PAPER_SYSTEMS)]
    body = []
    for operation in operations:
        cells = [_cell(by_pair.get((operation, kind))) for kind in kinds]
        body.append([operation, *cells, *(_num(us) for us in paper_micros(operation))])
    return header, body


def _cell(row: KindRow | None) -> str:
    if row is None:
        return "-"
    return f"{_num(row.micros)} ({_num(row.low)}-{_num(row.high)})"


def _num(value: float) -> str:
    """Three significant digits, thousands separated: 0.0444, 12.3, 1,234."""
    if not math.isfinite(value):
        return str(value)
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:#.3g}".rstrip(".")


def _footnote() -> str:
    return (
        f"Cells: median (fastest-slowest round) in µs. Paper: {PAPER}, "
        f"cycles at {PAPER_CLOCK_HZ / 1e9:g} GHz."
    )


def format_kind_table(rows: Sequence[KindRow]) -> str:
    """A plain-text table: one line per operation, one column per kind, the paper's two."""
    header, body = _grid(rows)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in [*lines, _footnote()]) + "\n"


def kind_table_markdown(rows: Sequence[KindRow]) -> str:
    """The same table in Markdown (numbers right-aligned), with its footnote."""
    header, body = _grid(rows)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join([*lines, "", _footnote()]) + "\n"


def kind_records(rows: Sequence[KindRow]) -> list[dict[str, Any]]:
    """JSON-ready records: each row's fields, its unit and the paper's figures."""
    records = []
    for row in rows:
        cycles = PAPER_CYCLES[row.operation]
        micros = paper_micros(row.operation)
        record: dict[str, Any] = dataclasses.asdict(row)
        record["unit"] = "us"
        for system, count, us in zip(PAPER_SYSTEMS, cycles, micros, strict=True):
            record[f"paper_{system.lower()}_cycles"] = count
            record[f"paper_{system.lower()}_us"] = us
        record["paper_clock_hz"] = PAPER_CLOCK_HZ
        records.append(record)
    return records
