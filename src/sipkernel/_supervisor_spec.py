"""What a supervisor is told to run: strategies, restart types, child specifications.

These are plain, immutable descriptions (Erlang/OTP's child specs); the
:class:`~sipkernel.Supervisor` in ``_supervisor.py`` brings them to life.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core._domain import Domain
from ._core._endpoint import Endpoint
from ._core._errors import UsageError
from ._core._exit import ExitReason


class Strategy(enum.Enum):
    """What a supervisor restarts when one of its children exits (OTP's strategies)."""

    ONE_FOR_ONE = "one_for_one"
    """Restart only the child that exited."""
    ONE_FOR_ALL = "one_for_all"
    """Stop every other child (in reverse start order), then restart all in order."""
    REST_FOR_ONE = "rest_for_one"
    """Stop the children started after the one that exited (in reverse order), then
    restart it and them in order."""


class Restart(enum.Enum):
    """When a child is restarted after it exits (OTP's restart types)."""

    PERMANENT = "permanent"
    """Always, whatever the exit reason."""
    TRANSIENT = "transient"
    """Only after an abnormal exit (``not reason.is_normal``)."""
    TEMPORARY = "temporary"
    """Never: its exit is recorded and it stays down."""

    def wants_restart(self, reason: ExitReason) -> bool:
        """Whether a child of this type is restarted after exiting with ``reason``."""
        if self is Restart.PERMANENT:
            return True
        if self is Restart.TRANSIENT:
            return not reason.is_normal
        return False


def _check_id(kind: str, child_id: str) -> None:
    if not isinstance(child_id, str) or not child_id:
        raise UsageError(f"a {kind} needs a non-empty string id, not {child_id!r}")


@dataclass(frozen=True)
class ChildSpec:
    """How to start (and restart, and stop) one supervised process.

    ``fn`` and ``args`` are what ``Kernel.spawn`` gets. Endpoints passed as
    arguments are *moved* into the process and cannot be reused by a restart:
    give ``args_factory`` instead, a callable (any callable: it runs in the
    kernel, not in the process) that builds fresh arguments at every start.
    ``domain`` is a domain kind name: each start gets a fresh domain of that
    kind (``None``: the shared local domain); or a callable returning the
    domain for each start (a policy-bearing sandbox, a domain shared by a
    group of processes). ``shutdown`` is the grace, in
    seconds, of an ordered stop before the process is killed. ``register_as``
    registers every incarnation under that name, so peers can find the current
    one with ``Kernel.whereis``.
    """

    id: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    args_factory: Callable[[], tuple[Any, ...]] | None = None
    domain: str | Callable[[], Domain] | None = None
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    register_as: str | None = None

    def __post_init__(self) -> None:
        _check_id("child", self.id)
        if not isinstance(self.args, tuple):
            raise UsageError(f"child {self.id!r}: args must be a tuple")
        if self.args and self.args_factory is not None:
            raise UsageError(f"child {self.id!r}: give args or args_factory, not both")
        if not isinstance(self.restart, Restart):
            raise UsageError(f"child {self.id!r}: restart must be a Restart")
        if self.restart is not Restart.TEMPORARY and any(
            isinstance(arg, Endpoint) for arg in self.args
        ):
            raise UsageError(
                f"child {self.id!r}: an endpoint in args is moved into the first "
                "incarnation and cannot be given to a restart; use args_factory"
            )
        if not self.shutdown >= 0:  # also refuses NaN
            raise UsageError(f"child {self.id!r}: shutdown must be >= 0 seconds")

    def start_args(self) -> tuple[Any, ...]:
        """The arguments of the next start (fresh ones when there is a factory)."""
        if self.args_factory is None:
            return self.args
        args = self.args_factory()
        if not isinstance(args, tuple):
            raise UsageError(f"child {self.id!r}: args_factory must return a tuple")
        return args


@dataclass(frozen=True)
class SupervisorSpec:
    """A nested supervisor, usable wherever a :class:`ChildSpec` is.

    Its exit (after giving up) is seen by the parent as the exit of a child;
    restarting it starts its own children afresh.
    """

    id: str
    children: Sequence[ChildSpec | SupervisorSpec]
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    restart: Restart = Restart.PERMANENT

    def __post_init__(self) -> None:
        _check_id("supervisor", self.id)
        object.__setattr__(self, "children", tuple(self.children))
        check_limits(self.strategy, self.intensity, self.period)
        check_children(self.children)
        if not isinstance(self.restart, Restart):
            raise UsageError(f"supervisor {self.id!r}: restart must be a Restart")


def check_limits(strategy: Strategy, intensity: int, period: float) -> None:
    """Raise ``UsageError`` unless these are a valid strategy and restart limit."""
    if not isinstance(strategy, Strategy):
        raise UsageError(f"strategy must be a Strategy, not {strategy!r}")
    if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 0:
        raise UsageError(f"intensity must be an int >= 0, not {intensity!r}")
    if not (period > 0 and math.isfinite(period)):
        raise UsageError(f"period must be a finite number of seconds > 0, not {period!r}")


def check_children(children: Sequence[ChildSpec | SupervisorSpec]) -> None:
    """Raise ``UsageError`` for a non-spec child or a duplicate id."""
    seen: set[str] = set()
    for spec in children:
        if not isinstance(spec, ChildSpec | SupervisorSpec):
            raise UsageError(f"a child must be a ChildSpec or SupervisorSpec, not {spec!r}")
        if spec.id in seen:
            raise UsageError(f"two children have the id {spec.id!r}")
        seen.add(spec.id)


@dataclass(frozen=True)
class ChildRestart:
    """One restart of one child, as kept in ``Supervisor.restarts``.

    ``cause`` is the id of the child whose exit (``reason``) led to it: the
    child itself, or a sibling under ``ONE_FOR_ALL`` / ``REST_FOR_ONE``.
    ``old_pid`` is None when the previous incarnation had already gone
    (for example a start that failed and is being retried).
    """

    id: str
    old_pid: int | None
    new_pid: int
    cause: str
    reason: ExitReason
    time: float = field(compare=False)
