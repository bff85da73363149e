"""A small valid manifest that each test edits to break in one way (or to run)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent

ECHO_APP = f"""\
[app]
name = "echo"
path = ["{TESTS}"]
main = "client"
isolation = "monolithic"

[contracts]
Echo = "app_procs:ECHO"

[processes.server]
entry = "app_procs:server"
endpoints = {{ clients = {{ serve = "Echo" }} }}

[processes.client]
entry = "app_procs:client"
args = {{ count = 30 }}
endpoints.server = {{ use = "Echo" }}
restart = "temporary"

[[channels]]
from = "client.server"
to = "server.clients"

[supervisors.root]
strategy = "one_for_one"
intensity = 5
period = 10
children = ["server", "client"]

[domains.kernel]
kind = "local"
per = "app"

[domains.own-process]
kind = "process"

[domains.jail]
kind = "sandbox"

[isolation.monolithic]
default = "kernel"

[isolation.microkernel]
default = "own-process"

[isolation.sandboxed]
default = "jail"

[isolation.mixed]
default = "kernel"
place = {{ client = "jail" }}

[bench]
operations = "client.count"
unit = "pings"
rounds = 1
"""

CONFIGURATION_OF_KIND = {"local": "monolithic", "process": "microkernel", "sandbox": "sandboxed"}


def write_app(folder: Path, text: str = ECHO_APP, name: str = "app.toml") -> Path:
    """Write a manifest into ``folder``; its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, text: str = ECHO_APP) -> str:
    """``text`` with ``old`` replaced by ``new`` (which must occur exactly once)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in the manifest")


def service_app() -> str:
    """The echo manifest cut down to one service that idles until stopped (no main)."""
    text = edited('main = "client"\n', "")
    text = edited('"app_procs:server"', '"app_procs:idler"', text)
    text = edited('children = ["server", "client"]', 'children = ["server"]', text)
    text = text[: text.index("[processes.client]")] + text[text.index("[supervisors.root]") :]
    return text[: text.index("[bench]")].replace('place = { client = "jail" }', "")
