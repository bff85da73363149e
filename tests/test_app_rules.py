"""``sipkernel check``'s rules: one test per kind of error, each with its line and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_fixtures import ECHO_APP, edited, line_of, write_app
from sipkernel.app import ManifestError, Problem, _rules_deploy, load_blueprint

SUPERVISORS = """[supervisors.root]
strategy = "one_for_one"
intensity = 5
period = 10
children = ["server", "client"]"""


def only_problem(tmp_path: Path, text: str) -> Problem:
    with pytest.raises(ManifestError) as caught:
        load_blueprint(write_app(tmp_path, text))
    assert len(caught.value.problems) == 1, caught.value
    return caught.value.problems[0]


def assert_problem(problem: Problem, line: int, where: str, message: str, hint: str = "") -> None:
    assert (problem.line, problem.where) == (line, where), problem
    assert message in problem.message, problem
    assert hint in problem.hint, problem


def test_the_valid_manifest_resolves_code_and_contracts(tmp_path: Path) -> None:
    blueprint = load_blueprint(write_app(tmp_path))
    assert blueprint.parameters["client"] == ("server", "count", "label")
    assert blueprint.contracts["Echo"].name == "AppEcho"
    assert blueprint.configuration(None) == "monolithic"


def test_an_unimportable_entry_point(tmp_path: Path) -> None:
    text = edited('"app_procs:server"', '"app_procs:no_such_server"')
    problem = only_problem(tmp_path, text)
    assert_problem(
        problem,
        line_of(text, "no_such_server"),
        "processes.server.entry",
        "module app_procs has no 'no_such_server'",
        "module:attribute",
    )


def test_a_contract_that_is_not_a_contract(tmp_path: Path) -> None:
    text = edited('"app_procs:ECHO"', '"app_procs:NOT_A_CONTRACT"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "NOT_A_CONTRACT"),
        "contracts.Echo",
        "is a int, not a sipkernel.Contract",
    )


def test_an_unknown_contract_name_suggests_the_close_one(tmp_path: Path) -> None:
    text = edited('serve = "Echo"', 'serve = "Ecko"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "Ecko"),
        "processes.server.endpoints.clients",
        "unknown contract 'Ecko'",
        "did you mean 'Echo'?",
    )


def test_an_unknown_process_in_a_channel(tmp_path: Path) -> None:
    text = edited('to = "server.clients"', 'to = "sever.clients"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "sever.clients"),
        "channels[0].to",
        "'sever.clients' names no process.endpoint",
        "did you mean 'server'?",
    )


def test_endpoints_whose_contracts_do_not_match(tmp_path: Path) -> None:
    text = edited('Echo = "app_procs:ECHO"', 'Echo = "app_procs:ECHO"\nOther = "app_procs:OTHER"')
    text = edited(
        'endpoints.server = { use = "Echo" }', 'endpoints.server = { use = "Other" }', text
    )
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "[[channels]]"),
        "channels[0]",
        "the contracts do not match: client.server uses Other, server.clients serves Echo",
        "connect endpoints of one contract",
    )


def test_a_channel_from_a_serving_endpoint(tmp_path: Path) -> None:
    text = edited('from = "client.server"', 'from = "server.clients"')
    with pytest.raises(ManifestError) as caught:
        load_blueprint(write_app(tmp_path, text))
    messages = [p.message for p in caught.value.problems]
    assert "server has no use endpoint 'clients'" in messages
    assert "this endpoint is not connected" in messages  # client.server lost its channel


def test_a_use_endpoint_left_unconnected(tmp_path: Path) -> None:
    text = edited('[[channels]]\nfrom = "client.server"\nto = "server.clients"\n', "")
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "endpoints.server"),
        "processes.client.endpoints.server",
        "this endpoint is not connected",
        'add [[channels]] from = "client.server"',
    )


def test_a_capability_used_but_not_granted(tmp_path: Path) -> None:
    text = edited('"app_procs:client"', '"app_procs:reader"')
    text = edited(
        'args = { count = 30 }\nendpoints.server = { use = "Echo" }',
        'args = { count = 30, name = "hello.txt" }',
        text,
    )
    text = edited('[[channels]]\nfrom = "client.server"\nto = "server.clients"\n', "", text)
    text = edited('operations = "client.count"', 'operations = "client.count"\n', text)
    with pytest.raises(ManifestError) as caught:
        load_blueprint(write_app(tmp_path, text))
    [problem, extra] = caught.value.problems  # in reading order
    assert extra.message == "app_procs:reader has no parameter 'count'"
    assert_problem(
        problem,
        line_of(text, "[processes.client]"),
        "processes.client",
        "app_procs:reader uses 'files', but nothing gives it",
        'grant it: grants = { files = "CAPABILITY" }',
    )


def test_an_unknown_capability_in_grants(tmp_path: Path) -> None:
    text = edited("args = { count = 30 }", 'args = { count = 30 }\ngrants = { label = "docs" }')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "grants = {"),
        "processes.client.grants.label",
        "unknown capability 'docs'",
        "declare the capabilities in [capabilities] first",
    )


def test_an_argument_the_function_does_not_take(tmp_path: Path) -> None:
    text = edited("args = { count = 30 }", "args = { count = 30, cuont = 1 }")
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "cuont"),
        "processes.client.args.cuont",
        "app_procs:client has no parameter 'cuont'",
        "did you mean 'count'?",
    )


def test_a_process_no_supervisor_reaches(tmp_path: Path) -> None:
    text = edited('children = ["server", "client"]', 'children = ["server"]')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "[processes.client]"),
        "processes.client",
        "not reachable from any supervisor",
        'children = [..., "client"]',
    )


def test_a_cycle_in_supervision(tmp_path: Path) -> None:
    loop = '\n[supervisors.a]\nchildren = ["b"]\n\n[supervisors.b]\nchildren = ["a"]\n'
    problem = only_problem(tmp_path, edited(SUPERVISORS, SUPERVISORS + loop))
    assert problem.message in ("supervision cycle: a -> b -> a", "supervision cycle: b -> a -> b")
    assert problem.hint == "a supervision tree has one root and no loops"
    assert problem.line is not None


def test_a_child_under_two_supervisors(tmp_path: Path) -> None:
    text = edited(SUPERVISORS, SUPERVISORS + '\n\n[supervisors.other]\nchildren = ["client"]')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, 'children = ["client"]'),
        "supervisors.other.children[0]",
        "'client' is already supervised by 'root'",
    )


def test_a_domain_kind_sipkernel_does_not_provide(tmp_path: Path) -> None:
    text = edited('kind = "sandbox"', 'kind = "wasm"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, 'kind = "wasm"'),
        "domains.jail.kind",
        "no domain kind 'wasm' here",
        "local, process, sandbox",
    )


def test_a_machine_that_refuses_user_namespaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_rules_deploy, "user_namespaces_refused", lambda: "refused by AppArmor")
    assert_problem(
        only_problem(tmp_path, ECHO_APP),
        line_of(ECHO_APP, 'kind = "sandbox"'),
        "domains.jail.kind",
        "this machine cannot run sandbox domains: refused by AppArmor",
        'use kind = "process" here',
    )


def test_this_machine_allows_the_sandbox_namespaces() -> None:
    assert _rules_deploy.user_namespaces_refused() is None  # CI runs where sandboxes work


def test_a_policy_on_a_domain_that_is_no_sandbox(tmp_path: Path) -> None:
    text = edited('kind = "process"', 'kind = "process"\npolicy = "strict.toml"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "strict.toml"),
        "domains.own-process.policy",
        "a policy is for sandbox domains, not process",
    )


def test_an_inline_sandbox_policy_with_a_bad_field(tmp_path: Path) -> None:
    text = edited('kind = "sandbox"', 'kind = "sandbox"\npolicy = { limits = { memroy = 1 } }')
    problem = only_problem(tmp_path, text)
    assert (problem.line, problem.where) == (line_of(text, "memroy"), "domains.jail.policy")
    assert "memroy" in problem.message


def test_a_configuration_placing_an_unknown_process(tmp_path: Path) -> None:
    text = edited('place = { client = "jail" }', 'place = { clinet = "jail" }')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "clinet"),
        "isolation.mixed.place.clinet",
        "unknown process 'clinet'",
        "did you mean 'client'?",
    )


def test_a_configuration_naming_an_unknown_domain(tmp_path: Path) -> None:
    text = edited('default = "own-process"', 'default = "own-proces"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, 'own-proces"'),
        "isolation.microkernel.default",
        "unknown domain 'own-proces'",
        "did you mean 'own-process'?",
    )


def test_an_unknown_default_configuration(tmp_path: Path) -> None:
    text = edited('isolation = "monolithic"', 'isolation = "monolitic"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "monolitic"),
        "app.isolation",
        "unknown configuration 'monolitic'",
        "did you mean 'monolithic'?",
    )


def test_bench_operations_must_name_an_integer_argument(tmp_path: Path) -> None:
    text = edited('operations = "client.count"', 'operations = "client.label"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "client.label"),
        "bench.operations",
        "'client.label' is no integer process argument",
    )


def test_a_bad_tcp_address(tmp_path: Path) -> None:
    text = edited("[bench]", '[capabilities.web]\ntcp = "localhost"\n\n[bench]')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, 'tcp = "localhost"'),
        "capabilities.web.tcp",
        "'localhost' is not host:port",
    )


def test_a_permanent_main_process_would_never_end_the_run(tmp_path: Path) -> None:
    text = edited('restart = "temporary"', 'restart = "permanent"')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, 'restart = "permanent"'),
        "processes.client.restart",
        "the main process 'client' is permanent",
        'give [processes.client] restart = "temporary"',
    )


def test_a_memory_limit_on_a_local_domain(tmp_path: Path) -> None:
    text = edited('per = "app"', 'per = "app"\nmemory_limit = 268_435_456')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "memory_limit"),
        "domains.kernel.memory_limit",
        "a local domain has no memory limit of its own",
        'use kind = "process" or "sandbox"',
    )


def test_a_memory_limit_in_the_wrong_unit(tmp_path: Path) -> None:
    text = edited('kind = "sandbox"', 'kind = "sandbox"\nmemory_limit = 256')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "memory_limit = 256"),
        "domains.jail.memory_limit",
        "memory_limit is in bytes: 256 is under 1 MiB",
    )


def test_fresh_exec_only_for_process_domains(tmp_path: Path) -> None:
    text = edited('kind = "sandbox"', 'kind = "sandbox"\nfresh_exec = true')
    assert_problem(
        only_problem(tmp_path, text),
        line_of(text, "fresh_exec"),
        "domains.jail.fresh_exec",
        "fresh_exec is for process domains, not sandbox",
    )
