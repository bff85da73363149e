"""The per-kind micro-benchmark table: complete rows and well-formed tables (no timing claims).

The table is measured once, with ``quick=True``, for the whole module; the
autouse leak check of conftest.py then verifies after each test that the
measurement's kernel left no thread, descriptor, OS process or cgroup behind.
"""

from __future__ import annotations

import json
import math

import pytest

import sipkernel as sk
from sipkernel.bench._kinds import (
    KINDS,
    OPERATIONS,
    PAPER_CLOCK_HZ,
    PAPER_CYCLES,
    KindRow,
    format_kind_table,
    kind_records,
    kind_table_markdown,
    measure_kinds,
    paper_micros,
)


@pytest.fixture(scope="module")
def rows() -> list[KindRow]:
    return measure_kinds(quick=True)


def test_every_operation_is_measured_in_every_kind(rows: list[KindRow]) -> None:
    assert [(row.operation, row.kind) for row in rows] == [
        (operation, kind) for operation in OPERATIONS for kind in KINDS
    ]
    for row in rows:
        for value in (row.micros, row.low, row.high):
            assert math.isfinite(value), row
            assert value > 0, row
        assert row.low <= row.micros <= row.high, row


def test_the_text_table_names_every_kind_operation_and_paper_column(
    rows: list[KindRow],
) -> None:
    text = format_kind_table(rows)
    lines = text.splitlines()
    for name in [*KINDS, "Singularity", "Linux"]:
        assert name in lines[0]
    for operation in OPERATIONS:
        assert sum(line.startswith(operation) for line in lines) == 1
    assert "1.8 GHz" in text


def test_the_markdown_table_has_a_column_per_kind_and_two_for_the_paper(
    rows: list[KindRow],
) -> None:
    table = [line for line in kind_table_markdown(rows).splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(OPERATIONS)  # header, alignment, one line per operation
    for line in table:
        assert line.count("|") == 1 + 1 + len(KINDS) + 2
    assert [line.split("|")[1].strip() for line in table[2:]] == list(OPERATIONS)


def test_records_are_json_ready_and_carry_the_paper(rows: list[KindRow]) -> None:
    records = json.loads(json.dumps(kind_records(rows)))
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        assert record["operation"] == row.operation
        assert record["kind"] == row.kind
        assert record["micros"] == row.micros
        assert record["unit"] == "us"
        singularity, linux = PAPER_CYCLES[row.operation]
        assert record["paper_singularity_cycles"] == singularity
        assert record["paper_linux_cycles"] == linux
        assert math.isclose(record["paper_linux_us"], linux / PAPER_CLOCK_HZ * 1e6)


def test_paper_figures_are_converted_at_the_papers_clock() -> None:
    singularity, linux = paper_micros("message ping-pong")
    assert math.isclose(singularity, 1_040 / 1.8e3)
    assert math.isclose(linux, 5_800 / 1.8e3)


def test_a_subset_of_kinds_makes_a_narrower_table() -> None:
    rows = [KindRow(operation, "process", 2.0, 1.0, 3.0) for operation in OPERATIONS]
    markdown = kind_table_markdown(rows)
    header = markdown.splitlines()[0]
    assert header.count("|") == 1 + 1 + 1 + 2
    assert "local" not in header
    assert "sandbox" not in header


@pytest.mark.parametrize("kinds", [("local", "wasm"), ("nowhere",), ()])
def test_an_unknown_or_missing_kind_is_refused_before_anything_starts(
    kinds: tuple[str, ...],
) -> None:
    with pytest.raises(sk.UsageError, match="kind"):
        measure_kinds(kinds, quick=True)


def test_a_bare_string_is_not_taken_for_a_list_of_kinds() -> None:
    with pytest.raises(ValueError, match="sequence of kind names"):
        measure_kinds("local", quick=True)


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        measure_kinds(["local"], rounds=0)
