"""Reading manifests: TOML syntax and type errors, each located at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_fixtures import ECHO_APP, edited, line_of, write_app
from sipkernel.app import ManifestError
from sipkernel.app._load import read_manifest
from sipkernel.app._locate import Lines


def problems_of(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ManifestError) as caught:
        read_manifest(write_app(tmp_path, text))
    return [(p.line, p.where, p.message) for p in caught.value.problems]


def hint_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        read_manifest(write_app(tmp_path, text))
    return caught.value.problems[0].hint


def test_a_valid_manifest_reads_into_typed_sections(tmp_path: Path) -> None:
    manifest, source = read_manifest(write_app(tmp_path))
    assert manifest.app.name == "echo"
    assert manifest.processes["client"].args == {"count": 30}
    assert manifest.processes["client"].endpoints["server"].use == "Echo"
    assert manifest.channels[0].source == "client.server"
    assert manifest.isolation["mixed"].place == {"client": "jail"}
    assert source.directory == tmp_path


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = edited('main = "client"', "main = client-without-quotes")
    [(line, _, message)] = problems_of(tmp_path, text)
    assert line == line_of(text, "main = client")
    assert message.startswith("TOML syntax error")


def test_a_wrong_type_names_the_field_and_its_line(tmp_path: Path) -> None:
    text = edited("args = { count = 30 }", 'args = "thirty"')
    [(line, where, message)] = problems_of(tmp_path, text)
    assert (line, where) == (line_of(text, 'args = "thirty"'), "processes.client.args")
    assert "Expected 'object', got 'str'" in message


def test_an_unknown_field_is_refused_not_ignored(tmp_path: Path) -> None:
    text = edited('restart = "temporary"', 'restart = "temporary"\nrestrat = "permanent"')
    [(line, where, message)] = problems_of(tmp_path, text)
    assert (line, where, message) == (
        line_of(text, "restrat"),
        "processes.client.restrat",
        "unknown field 'restrat'",
    )


def test_a_bad_enum_value_is_located(tmp_path: Path) -> None:
    text = edited('strategy = "one_for_one"', 'strategy = "one_for_some"')
    [(line, where, message)] = problems_of(tmp_path, text)
    assert line == line_of(text, "one_for_some")
    assert where == "supervisors.root.strategy"
    assert message == "Invalid enum value 'one_for_some'"
    assert hint_of(tmp_path, text) == 'write one of: "one_for_one", "one_for_all", "rest_for_one"'


def test_an_error_inside_an_inline_table_names_the_inner_key(tmp_path: Path) -> None:
    text = edited('{ clients = { serve = "Echo" } }', '{ clients = { serve = "Echo", bad = 1 } }')
    [(line, where, message)] = problems_of(tmp_path, text)
    assert (line, where) == (line_of(text, "bad = 1"), "processes.server.endpoints.clients.bad")
    assert message == "unknown field 'bad'"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = edited('entry = "app_procs:server"', "entry = 7")
    text = edited('kind = "process"', "kind = 8", text)
    found = problems_of(tmp_path, text)
    assert {where for _, where, _ in found} == {
        "processes.server.entry",
        "domains.own-process.kind",
    }


def test_a_manifest_without_processes_says_what_to_add(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no processes\n    add at least one"):
        read_manifest(write_app(tmp_path, '[app]\nname = "x"\n'))


def test_an_unreadable_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "missing.toml")


def test_the_error_text_is_file_line_place_message_and_hint(tmp_path: Path) -> None:
    text = edited('restart = "temporary"', 'restart = "temporary"\nrestrat = 1')
    with pytest.raises(ManifestError) as caught:
        read_manifest(write_app(tmp_path, text))
    first = str(caught.value).splitlines()
    assert first[0] == (
        f"{tmp_path / 'app.toml'}:{line_of(text, 'restrat')}: "
        "processes.client.restrat: unknown field 'restrat'"
    )
    assert first[1].startswith("    remove it")


# -- the line locator ------------------------------------------------------------------------


def test_lines_of_tables_keys_dotted_keys_and_arrays_of_tables() -> None:
    lines = Lines(ECHO_APP)
    assert lines.line_of(("app", "name")) == line_of(ECHO_APP, 'name = "echo"')
    assert lines.line_of(("processes", "client", "endpoints", "server")) == line_of(
        ECHO_APP, "endpoints.server"
    )
    assert lines.line_of(("channels", 0, "from")) == line_of(ECHO_APP, 'from = "client.server"')
    assert lines.line_of(("isolation", "mixed", "place", "client")) == line_of(
        ECHO_APP, 'place = { client = "jail" }'
    )


def test_lines_fall_back_to_the_nearest_written_parent() -> None:
    lines = Lines(ECHO_APP)
    assert lines.line_of(("processes", "server", "args")) == line_of(ECHO_APP, "[processes.server]")
    assert lines.line_of(("nowhere",)) is None


def test_lines_skip_multiline_strings_and_arrays() -> None:
    text = (
        'a = """\n[not.a.table]\n"""\n'
        "b = [\n  1,\n  2,\n]\nc = 3\n"
        "[t]\nd = { e = [1, { f = 2 }] }\n"
    )
    lines = Lines(text)
    assert lines.line_of(("not",)) is None
    assert lines.line_of(("c",)) == 8
    assert lines.line_of(("t", "d", "e", 1, "f")) == 10


def test_quoted_keys_are_located() -> None:
    lines = Lines('[domains."odd name"]\nkind = "local"\n')
    assert lines.line_of(("domains", "odd name", "kind")) == 2
