"""Running applications from manifests: every configuration, restarts, grants, stopping."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

import sipkernel as sk
from app_fixtures import CONFIGURATION_OF_KIND, ECHO_APP, edited, service_app, write_app
from conftest import DOMAIN_KINDS
from sipkernel.app import Application, load_blueprint

RUN = 60.0
"""Seconds a small application may take before a test calls it hung."""


def run_app(
    folder: Path, text: str = ECHO_APP, configuration: str | None = None, **options: object
) -> tuple[sk.ExitReason | None, Application]:
    blueprint = load_blueprint(write_app(folder, text))
    with sk.Kernel() as kernel:
        application = Application(blueprint, kernel, configuration=configuration, **options)  # type: ignore[arg-type]
        with application:
            outcome = application.wait(RUN)
    return outcome, application


def assert_normal(outcome: sk.ExitReason | None) -> None:
    assert outcome is not None, "the main process did not end in time"
    assert outcome.is_normal, outcome.describe()


@pytest.mark.parametrize("kind", DOMAIN_KINDS)
def test_the_same_code_runs_in_every_domain_kind(
    tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    outcome, application = run_app(tmp_path, configuration=CONFIGURATION_OF_KIND[kind])
    assert_normal(outcome)
    assert f"client: 30 pings answered, 0 reconnects, in {kind}" in capfd.readouterr().out
    assert [e.name for e in application.exits] == ["client", "server"]  # main first, then stop


def test_a_mixed_configuration_moves_only_the_placed_process(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    outcome, application = run_app(tmp_path, configuration="mixed")
    assert outcome is not None
    assert outcome.is_normal
    assert "in sandbox" in capfd.readouterr().out
    assert application.placement.kind_of("server") == "local"
    assert application.placement.kind_of("client") == "sandbox"


@pytest.mark.parametrize(
    ("configuration", "crash"), [("monolithic", "raise"), ("microkernel", "kill")]
)
def test_a_restarted_service_is_reconnected_through_the_switchboard(
    tmp_path: Path, configuration: str, crash: str, capfd: pytest.CaptureFixture[str]
) -> None:
    text = edited(
        'endpoints = { clients = { serve = "Echo" } }',
        'endpoints = { clients = { serve = "Echo" } }\n'
        f'args = {{ crash_after = 10, crash = "{crash}" }}',
    )
    outcome, application = run_app(tmp_path, text, configuration)
    assert_normal(outcome)
    printed = re.search(r"client: 30 pings answered, (\d+) reconnects", capfd.readouterr().out)
    assert printed is not None
    # At least one per crash; more when a reconnect reaches the old incarnation
    # before its death is seen, which the client survives by dialling again.
    assert int(printed.group(1)) >= 2
    server_exits = [e.reason for e in application.exits if e.name == "server"]
    assert len(server_exits) == 3  # crashes at pings 10 and 20, then the ordered stop
    for reason in server_exits[:2]:
        assert reason is not None
        if crash == "kill":
            assert (reason.kind, reason.signal) == (sk.ExitKind.SIGNAL, 9), reason
        else:
            assert reason.kind is sk.ExitKind.EXCEPTION, reason


def test_a_service_that_never_comes_up_is_unavailable(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text = edited('"app_procs:server"', '"app_procs:quitter"')
    text = edited("[processes.client]", '[processes.client]\nrestart = "temporary"', text)
    text = edited('restart = "temporary"\n\n[[channels]]', "\n[[channels]]", text)
    text = edited('"app_procs:client"', '"app_procs:lonely_client"', text)
    text = edited("args = { count = 30 }", "args = { wait = 0.2 }", text)
    text = edited('operations = "client.count"', 'operations = "client.wait"', text)
    text = text.replace("[processes.server]\n", '[processes.server]\nrestart = "temporary"\n')
    text = text[: text.index("[bench]")]
    outcome, _ = run_app(tmp_path, text)
    assert_normal(outcome)
    assert "unavailable: service server.clients is not running" in capfd.readouterr().out


def test_a_granted_directory_is_read_from_a_sandbox(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text = edited(
        'main = "client"', 'main = "client"\nprepare = "app_procs:prepare"\ndata = "data"'
    )
    text = edited('"app_procs:client"', '"app_procs:reader"', text)
    text = edited(
        'args = { count = 30 }\nendpoints.server = { use = "Echo" }',
        'args = { name = "hello.txt" }\ngrants = { files = "data-dir" }',
        text,
    )
    text = edited('[[channels]]\nfrom = "client.server"\nto = "server.clients"\n', "", text)
    text = edited("[bench]", '[capabilities.data-dir]\ndirectory = "."\n\n[ignored]', text)
    text = text[: text.index("[ignored]")]
    outcome, application = run_app(tmp_path, text, "sandboxed")
    assert_normal(outcome)
    assert "read: hello from the data directory" in capfd.readouterr().out
    assert application.data_dir == tmp_path / "data"


def test_overrides_replace_arguments_for_one_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    outcome, _ = run_app(tmp_path, overrides={"client": {"count": 3, "label": "tiny"}})
    assert outcome is not None
    assert outcome.is_normal
    assert "tiny: 3 pings answered" in capfd.readouterr().out


def test_an_override_of_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    blueprint = load_blueprint(write_app(tmp_path))
    with sk.Kernel() as kernel, pytest.raises(sk.UsageError, match="client has no argument"):
        Application(blueprint, kernel, overrides={"client": {"nope": 1}})


def test_stop_ends_a_service_application_in_order(tmp_path: Path) -> None:
    text = service_app()
    blueprint = load_blueprint(write_app(tmp_path, text))
    with sk.Kernel() as kernel:
        application = Application(blueprint, kernel, configuration="microkernel").start()
        assert application.wait(0.05) is None  # no main: it runs until stopped
        application.stop()
        [server] = application.exits
        assert server.reason is not None
        assert server.reason.kind is sk.ExitKind.SHUTDOWN
        assert not [d for d in kernel.domains if d.kind == "process" and d.is_alive]


def test_two_applications_share_a_kernel_without_mixing_their_exits(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blueprint = load_blueprint(write_app(tmp_path))
    with sk.Kernel() as kernel:
        first = Application(blueprint, kernel, overrides={"client": {"label": "first"}})
        second = Application(
            blueprint, kernel, configuration="microkernel", overrides={"client": {"count": 3}}
        )
        with first, second:
            assert_normal(second.wait(RUN))
            assert_normal(first.wait(RUN))
    assert first.tag != second.tag
    for application in (first, second):
        assert {e.domain.split("/")[0] for e in application.exits} == {application.tag}
    out = capfd.readouterr().out
    assert "first: 30 pings answered" in out
    assert "client: 3 pings answered" in out


def test_processes_with_one_isolation_key_share_a_domain(tmp_path: Path) -> None:
    text = edited("[processes.client]", '[processes.client]\nkey = "tenant-a"')
    text = edited('"app_procs:server"\n', '"app_procs:server"\nkey = "tenant-a"\n', text)
    text = edited('kind = "process"', 'kind = "process"\nper = "key"', text)
    outcome, application = run_app(tmp_path, text, "microkernel")
    assert_normal(outcome)
    domains = {e.name: e.domain for e in application.exits}
    assert domains["client"] == domains["server"]
    assert domains["client"].endswith("own-process:tenant-a:1")


def test_processes_with_different_keys_get_a_domain_each(tmp_path: Path) -> None:
    text = edited("[processes.client]", '[processes.client]\nkey = "tenant-b"')
    text = edited('kind = "process"', 'kind = "process"\nper = "key"', text)
    outcome, application = run_app(tmp_path, text, "microkernel")
    assert_normal(outcome)
    domains = {e.name: e.domain for e in application.exits}
    assert domains["client"] != domains["server"]
    assert domains["server"].endswith("own-process:server:1")  # no key: its own name


def test_a_nested_supervision_tree_from_the_manifest(tmp_path: Path) -> None:
    text = edited(
        'children = ["server", "client"]',
        'children = ["services", "client"]\n\n[supervisors.services]\n'
        'strategy = "rest_for_one"\nchildren = ["server"]',
    )
    outcome, application = run_app(tmp_path, text)
    assert_normal(outcome)
    assert [e.name for e in application.exits] == ["client", "server"]


def test_domain_options_reach_the_domains(tmp_path: Path) -> None:
    text = edited(
        'kind = "process"',
        'kind = "process"\nmemory_limit = 268_435_456\nfresh_exec = true',
        service_app(),
    )
    blueprint = load_blueprint(write_app(tmp_path, text))
    with sk.Kernel() as kernel:
        application = Application(blueprint, kernel, configuration="microkernel").start()
        try:
            [domain] = [d for d in kernel.domains if d.name.startswith(application.tag)]
            assert domain.kind == "process"
            assert domain.memory_limit == 268_435_456  # type: ignore[attr-defined]
            assert domain.fresh_exec is True  # type: ignore[attr-defined]
        finally:
            application.stop()


def test_stop_after_a_shared_domain_died(tmp_path: Path) -> None:
    text = edited('kind = "process"', 'kind = "process"\nper = "app"', service_app())
    text = edited("intensity = 5", "intensity = 0", text)  # the supervisor gives up at once
    blueprint = load_blueprint(write_app(tmp_path, text))
    with sk.Kernel() as kernel, kernel.events.stream() as events:
        application = Application(blueprint, kernel, configuration="microkernel").start()
        [domain] = [d for d in kernel.domains if d.name.startswith(application.tag)]
        os.kill(domain.os_pid, signal.SIGKILL)  # type: ignore[attr-defined]
        events.wait_for(lambda e: e.kind is sk.EventKind.SUPERVISOR_GAVE_UP, 30)
        application.stop()  # the domain is gone already: nothing to close, no error
        [server] = application.exits
        assert server.reason is not None
        assert server.reason.describe() == "signal: SIGKILL"


def test_a_failing_start_leaves_nothing_running(tmp_path: Path) -> None:
    text = edited('main = "client"', 'main = "client"\nprepare = "app_procs:broken_prepare"')
    blueprint = load_blueprint(write_app(tmp_path, text))
    before = {t.name for t in threading.enumerate()}
    with sk.Kernel() as kernel:
        with pytest.raises(OSError, match="No space left"), Application(blueprint, kernel):
            pass
        started = {t.name for t in threading.enumerate()} - before
        assert not [name for name in started if "switchboard" in name]
