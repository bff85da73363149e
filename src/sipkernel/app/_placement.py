"""Where each process of a configuration runs: domains made, shared and replaced.

A configuration maps each process to a declared domain; the domain's ``per``
says how many instances exist: one per process (``"process"``), one per
isolation key (``"key"``: Chrome's site-per-process, for example a domain per
tenant) or one for every process placed there (``"app"``). A shared domain
that died (its OS process was killed) is replaced by the next start that
needs it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from typing import Any

from .._core._domain import Domain
from .._core._errors import DomainError
from .._core._kernel import Kernel
from ._resolve import Blueprint


class Placement:
    """The domains of one configuration of one application, made on demand.

    Every domain's name starts with ``tag`` (unique to the application
    instance), so two applications can share a kernel.
    """

    def __init__(self, kernel: Kernel, blueprint: Blueprint, configuration: str, tag: str) -> None:
        self._kernel = kernel
        self._tag = tag
        self._blueprint = blueprint
        self._configuration = configuration
        self._shared: dict[tuple[str, str], Domain] = {}
        self._made: list[Domain] = []
        self._lock = threading.RLock()  # _make runs under it for shared domains
        self._serial = itertools.count(1)

    def domain_name(self, process: str) -> str:
        """The declared domain ``process`` is placed in by this configuration."""
        return self._blueprint.domain_of(self._configuration, process)

    def kind_of(self, process: str) -> str:
        """The domain kind ``process`` runs in."""
        return self._blueprint.manifest.domains[self.domain_name(process)].kind

    def factory(self, process: str) -> Callable[[], Domain]:
        """What a supervisor calls at each start of ``process`` to get its domain."""
        return lambda: self._domain_for(process)

    def _domain_for(self, process: str) -> Domain:
        name = self.domain_name(process)
        section = self._blueprint.manifest.domains[name]
        if section.per == "process":
            return self._make(name, process, ephemeral=True)
        group = name if section.per == "app" else self._key(process)
        with self._lock:
            existing = self._shared.get((name, group))
            if existing is not None and existing.is_alive:
                return existing
            domain = self._make(name, group, ephemeral=False)
            self._shared[(name, group)] = domain
            return domain

    def _key(self, process: str) -> str:
        return self._blueprint.manifest.processes[process].key or process

    def _make(self, name: str, label: str, *, ephemeral: bool) -> Domain:
        section = self._blueprint.manifest.domains[name]
        options: dict[str, Any] = {"ephemeral": ephemeral}
        if name in self._blueprint.policies:
            options["policy"] = self._blueprint.policies[name]
        if section.memory_limit is not None:
            options["memory_limit"] = section.memory_limit
        if section.fresh_exec:
            options["fresh_exec"] = True
        domain = self._kernel.domain(
            section.kind, name=f"{self._tag}/{name}:{label}:{next(self._serial)}", **options
        )
        with self._lock:
            self._made.append(domain)
        return domain

    def owns(self, domain_name: str) -> bool:
        """Whether this placement made the domain named ``domain_name``."""
        with self._lock:
            return any(domain.name == domain_name for domain in self._made)

    def close(self, grace: float) -> None:
        """Close every domain this placement made that is still open.

        A domain may die or finish closing while we look (a per-process domain
        closes itself after its process's exit): that is the outcome we want,
        not an error.
        """
        with self._lock:
            made, self._made = self._made, []
            self._shared.clear()
        for domain in made:
            if domain.is_alive:
                with contextlib.suppress(DomainError):
                    domain.close(grace)
