"""Running an application: supervisors, wiring, grants and domains from a blueprint.

An :class:`Application` turns each ``[processes.NAME]`` into a
:class:`~sipkernel.ChildSpec` whose arguments are made afresh at every start
(new listener and dialer endpoints from the switchboard, new broker grants),
whose domain comes from the configuration's :class:`Placement`, and places
them under the manifest's supervision tree. The process code is the same in
every configuration; only the placement changes.
"""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._core._endpoint import Endpoint
from .._core._errors import UsageError
from .._core._events import Event, EventKind
from .._core._exit import ExitReason
from .._core._kernel import Kernel
from .._supervisor import Supervisor
from .._supervisor_spec import ChildSpec, Restart, Strategy, SupervisorSpec
from ..broker import Broker
from ._placement import Placement
from ._resolve import Blueprint
from ._wiring import Switchboard

_instances = itertools.count(1)


class Application:
    """One application, started in ``kernel`` under one isolation configuration.

    ``overrides`` replaces process arguments for this run
    (``{"client": {"reads": 100}}``; ``sipkernel run --set client.reads=100``).
    ``start()`` runs ``[app] prepare``, then the supervision tree; ``wait()``
    blocks until ``[app] main`` has exited for good (or a root supervisor gave
    up); ``stop()`` shuts the tree down in order. ``exits`` lists the exit
    events of the application's processes, in order.
    """

    def __init__(
        self,
        blueprint: Blueprint,
        kernel: Kernel,
        *,
        configuration: str | None = None,
        data_dir: str | Path | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.overrides = _checked_overrides(blueprint, overrides or {})
        self.kernel = kernel
        self.configuration = blueprint.configuration(configuration)
        self.data_dir = blueprint.data_dir(data_dir)
        self.tag = f"{blueprint.name}{next(_instances)}"
        self.placement = Placement(kernel, blueprint, self.configuration, self.tag)
        self.exits: list[Event] = []
        self._broker = Broker(kernel)
        self._switchboard = Switchboard(f"sipkernel-{self.tag}-switchboard")
        self._roots: list[Supervisor] = []
        self._done = threading.Event()
        self._outcome: ExitReason | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def __enter__(self) -> Application:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Application:
        """Prepare the data directory, declare the services, start the supervisors.

        If any of it fails, what was started is stopped before the error goes on.
        """
        try:
            if self.blueprint.prepare is not None:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                self.blueprint.prepare(self.data_dir)
            for service, contract in self._services().items():
                self._switchboard.add_service(service, self.blueprint.contracts[contract])
            self._unsubscribe = self.kernel.events.subscribe(self._seen)
            for name in self._root_names():
                supervisor = Supervisor(
                    self.kernel, self._children(name), name=name, **self._limits(name)
                )
                self._roots.append(supervisor)
                supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    def wait(self, timeout: float | None = None) -> ExitReason | None:
        """The final exit of ``[app] main``; None on timeout (or with no main, never set)."""
        if not self._done.wait(timeout):
            return None
        return self._outcome

    def stop(self) -> None:
        """Stop the supervision tree in order, then its domains, the wiring and the broker."""
        for supervisor in reversed(self._roots):
            supervisor.stop()
        self.placement.close(self.kernel.grace)
        self._switchboard.close()
        self._broker.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- building the tree ------------------------------------------------------------

    def _services(self) -> dict[str, str]:
        """``process.endpoint`` -> contract name, for every ``serve`` endpoint."""
        return {
            f"{name}.{param}": decl.serve
            for name, process in self.blueprint.manifest.processes.items()
            for param, decl in process.endpoints.items()
            if decl.serve is not None
        }

    def _root_names(self) -> list[str]:
        supervisors = self.blueprint.manifest.supervisors
        children = {child for sup in supervisors.values() for child in sup.children}
        return [name for name in supervisors if name not in children]

    def _limits(self, name: str) -> dict[str, Any]:
        section = self.blueprint.manifest.supervisors[name]
        return {
            "strategy": Strategy(section.strategy),
            "intensity": section.intensity,
            "period": section.period,
        }

    def _children(self, supervisor: str) -> list[ChildSpec | SupervisorSpec]:
        specs: list[ChildSpec | SupervisorSpec] = []
        for child in self.blueprint.manifest.supervisors[supervisor].children:
            if child in self.blueprint.manifest.supervisors:
                specs.append(SupervisorSpec(child, self._children(child), **self._limits(child)))
            else:
                specs.append(self._child_spec(child))
        return specs

    def _child_spec(self, name: str) -> ChildSpec:
        process = self.blueprint.manifest.processes[name]
        return ChildSpec(
            name,
            self.blueprint.functions[name],
            args_factory=lambda: self._arguments(name),
            domain=self.placement.factory(name),
            restart=Restart(process.restart),
            shutdown=process.shutdown,
        )

    def _arguments(self, name: str) -> tuple[Any, ...]:
        """Fresh arguments for one start of ``name``, in its parameters' order."""
        process = self.blueprint.manifest.processes[name]
        args = {**process.args, **self.overrides.get(name, {})}
        values: list[Any] = []
        for param in self.blueprint.parameters[name]:
            if param in args:
                values.append(args[param])
            elif param in process.endpoints:
                values.append(self._endpoint(name, param))
            elif param in process.grants:
                values.append(self._grant(process.grants[param]))
            else:
                values.append(self._default(name, param))
        return tuple(values)

    def _default(self, name: str, param: str) -> Any:
        """The default of a parameter the manifest leaves alone (the rules saw it has one)."""
        signature = inspect.signature(self.blueprint.functions[name])
        return signature.parameters[param].default

    def _endpoint(self, name: str, param: str) -> Endpoint:
        decl = self.blueprint.manifest.processes[name].endpoints[param]
        if decl.serve is not None:
            return self._switchboard.listener(f"{name}.{param}")
        target = next(
            c.target for c in self.blueprint.manifest.channels if c.source == f"{name}.{param}"
        )
        return self._switchboard.dialer(target, caller=name)

    def _grant(self, capability: str) -> Endpoint:
        cap = self.blueprint.manifest.capabilities[capability]
        if cap.directory is not None:
            return self._broker.grant_directory(self.data_dir / cap.directory, name=capability)
        if cap.file is not None:
            return self._broker.grant_file(
                self.data_dir / cap.file,
                writable=cap.writable,
                max_size=cap.max_size,
                name=capability,
            )
        assert cap.tcp is not None  # the rules allow exactly one kind
        host, _, port = cap.tcp.rpartition(":")
        return self._broker.grant_tcp(host, int(port), name=capability)

    # -- watching the main process ------------------------------------------------------

    def _seen(self, event: Event) -> None:
        processes = self.blueprint.manifest.processes
        if event.kind is EventKind.EXITED and self.placement.owns(event.domain):
            self.exits.append(event)
            if event.name == self.blueprint.manifest.app.main and event.reason is not None:
                restart = Restart(processes[event.name].restart)
                if not restart.wants_restart(event.reason):
                    self._finish(event.reason)
        elif event.kind is EventKind.SUPERVISOR_GAVE_UP and event.pid in self._root_pids():
            self._finish(ExitReason.limit_exceeded("restart intensity", event.describe()))

    def _root_pids(self) -> set[int]:
        return {s.handle.pid for s in self._roots if s.handle is not None}

    def _finish(self, reason: ExitReason) -> None:
        if not self._done.is_set():
            self._outcome = reason
            self._done.set()


def _checked_overrides(
    blueprint: Blueprint, overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``overrides``, after checking each names an existing argument of a process."""
    checked: dict[str, dict[str, Any]] = {}
    for process, values in overrides.items():
        section = blueprint.manifest.processes.get(process)
        if section is None:
            raise UsageError(
                f"cannot set arguments of {process!r}: the manifest has no such process"
            )
        settable = [
            p
            for p in blueprint.parameters[process]
            if p not in section.endpoints and p not in section.grants
        ]
        for arg in values:
            if arg not in settable:
                known = ", ".join(settable) or "none"
                raise UsageError(f"{process} has no argument {arg!r} to set (settable: {known})")
        checked[process] = dict(values)
    return checked
