"""The policy schema: defaults, TOML, flags, and clear errors for bad input."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sipkernel import UsageError
from sipkernel.sandbox import Policy
from sipkernel.sandbox._flags import add_policy_flags, parse_size, policy_from_flags
from sipkernel.sandbox._policy import MiB


def flags(*argv: str) -> Policy:
    parser = argparse.ArgumentParser()
    add_policy_flags(parser)
    return policy_from_flags(parser.parse_args(list(argv)))


def test_default_policy_is_strict() -> None:
    policy = Policy()
    assert all(getattr(policy.namespaces, name) for name in policy.namespaces.__struct_fields__)
    assert policy.network == "none"
    assert policy.allow_exec is False
    assert policy.identity.uid != 0
    assert policy.limits.memory == 512 * MiB
    assert policy.syscalls.socket_families == ("unix",)


def test_policy_round_trips_through_plain_data() -> None:
    policy = Policy(network="loopback", env=("HOME",))
    assert Policy.from_dict(policy.to_dict()) == policy


def test_policy_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'network = "loopback"\n'
        "[limits]\nmemory = 268435456\nwall_seconds = 5\n"
        '[filesystem]\nro = ["/srv/data"]\n'
    )
    policy = Policy.from_toml(str(path))
    assert policy.network == "loopback"
    assert policy.limits.memory == 256 * MiB
    assert policy.limits.wall_seconds == 5
    assert policy.filesystem.ro == ("/srv/data",)


def test_unknown_field_in_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[limits]\nmemroy = 1\n")
    with pytest.raises(UsageError, match=r"policy.toml.*memroy"):
        Policy.from_toml(str(path))


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("network = \n")
    with pytest.raises(UsageError, match=r"broken\.toml"):
        Policy.from_toml(str(path))


def test_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read policy"):
        Policy.from_toml(str(tmp_path / "absent.toml"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"identity": {"uid": 0}}, "never runs as uid or gid 0"),
        ({"limits": {"memory": -1}}, "limits.memory must be positive"),
        ({"filesystem": {"ro": ["relative/path"]}}, "must be absolute"),
        ({"network": "host"}, "network"),
        ({"namespaces": {"mount": False}}, "needs a mount namespace"),
        ({"syscalls": {"allow": ["no_such_call"]}}, "no_such_call"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Policy.from_dict(data)


def test_flags_override_the_defaults() -> None:
    policy = flags(
        "--mem", "256M", "--time", "5", "--pids", "16", "--net", "loopback",
        "--ro", "/srv", "--rw", "/var/tmp", "--allow-exec", "--env", "HOME",
    )  # fmt: skip
    assert policy.limits.memory == 256 * MiB
    assert policy.limits.wall_seconds == 5
    assert policy.limits.pids == 16
    assert policy.network == "loopback"
    assert policy.filesystem.ro == ("/srv",)
    assert policy.filesystem.rw == ("/var/tmp",)
    assert policy.allow_exec
    assert policy.env == ("HOME",)


def test_without_flags_the_policy_is_the_one_made(tmp_path: Path) -> None:
    assert flags() == Policy()
    path = tmp_path / "p.toml"
    path.write_text('network = "loopback"\n[limits]\npids = 8\n')
    assert flags("--policy", str(path)) == Policy.from_toml(str(path))


def test_flags_apply_over_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[limits]\npids = 8\nopen_files = 32\n")
    policy = flags("--policy", str(path), "--pids", "4")
    assert policy.limits.pids == 4
    assert policy.limits.open_files == 32


def test_bad_flag_values_are_refused() -> None:
    with pytest.raises(UsageError, match=r"limits\.pids must be positive"):
        flags("--pids", "0")


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("256M", 256 * MiB), ("1g", 1024 * MiB), ("2MiB", 2 * MiB)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="256M"):
        parse_size("lots")


def test_a_bind_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    from sipkernel.sandbox._compose import compose

    with pytest.raises(UsageError, match="does not exist"):
        compose(Policy.from_dict({"filesystem": {"ro": [str(tmp_path / "absent")]}}))
