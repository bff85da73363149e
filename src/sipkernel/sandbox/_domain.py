"""The ``sandbox`` domain kind: a ``process`` domain inside a sandbox.

Domains fork from a zygote of their own, started with a clean environment
and importing sipkernel only: nothing of the application runs outside the
sandbox. A new domain enters its namespaces, has its ids mapped by the
zygote, builds its root, drops its privileges and installs its seccomp
filter; only then does it import the application's modules (the kernel's
script included) and start processes. Processes, channels and contracts
work exactly as in a ``process`` domain; what differs is what the code can
reach, and the exit reasons (a named seccomp violation, a limit).

>>> from sipkernel import Kernel
>>> from sipkernel.sandbox import Policy
>>> with Kernel() as kernel:                                   # doctest: +SKIP
...     box = kernel.domain("sandbox", policy=Policy(network="none"))
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable

import msgspec

from .._core._contract import Contract
from .._core._domain import DomainHost
from .._core._errors import DomainError, NotImportableError
from .._core._exit import ExitReason
from .._core._kernel import NESTED_ENV
from .._core._process import ProcessSpec
from ..domains._control import LoadScript
from ..domains._process import ProcessDomain
from ..domains._zygote import Forking, Zygote
from ._cgroups import CgroupHandle
from ._compose import compose, sandbox_env
from ._contain import SandboxPayload
from ._errors import SandboxUnavailable
from ._policy import Policy
from ._reach import Reader, check_module
from ._supervise import Sandbox


class SandboxDomain(ProcessDomain):
    """Processes inside a sandboxed child OS process (see :class:`Policy`).

    ``policy`` defaults to the strict ``Policy()``. ``memory_limit`` (bytes),
    if given, overrides the policy's memory limit.
    """

    kind = "sandbox"

    def __init__(
        self,
        host: DomainHost,
        name: str,
        *,
        ephemeral: bool = False,
        policy: Policy | None = None,
        memory_limit: int | None = None,
    ) -> None:
        policy = policy or Policy()
        if memory_limit is not None:
            policy = _with_memory(policy, memory_limit)
        self.policy = policy
        composed = compose(policy)
        env = dict(composed.launch.spec.env, **{NESTED_ENV: "1"})
        spec = msgspec.structs.replace(composed.launch.spec, env=env)
        composed.launch = msgspec.structs.replace(composed.launch, spec=spec)
        self.sandbox = Sandbox(policy, composed, name, make_cgroup=False)  # the zygote makes it
        self.enforcement = composed.enforcement
        """For each limit, what enforces it here (``cgroup v1``, ``RLIMIT_AS ...``)."""
        self._setup: tuple[Forking, socket.socket] | None = None
        """The fork on its way and pid 1's report socket, until the reader takes them."""
        self._script_sent = False
        self._sandbox_user = Reader(policy)
        self._shown = [b.source for b in composed.launch.spec.binds if b.inside == b.source]
        self._importable: set[str] = set()
        """Modules known to be readable inside (checked once per domain)."""
        try:
            super().__init__(host, name, ephemeral=ephemeral)
        except BaseException:
            self.sandbox.close()
            raise
        try:
            self.os_pid  # noqa: B018 - waits for the zygote: a refusal is an error here
        except DomainError as exc:
            # The control reader sees end-of-file and cleans up on its own (it cannot be
            # joined here: it reports to the kernel, whose lock our caller holds).
            raise SandboxUnavailable(str(exc).removeprefix("could not fork a domain: ")) from None

    def _get_zygote(self) -> Zygote:
        host = self.host
        env = sandbox_env(Policy())  # the allow-list only, whatever a domain's policy adds

        def start() -> Zygote:
            # It imports none of the application: its spares import the preload, contained.
            preload = json.dumps(list(host.preload))
            return Zygote((), env=env, main="sipkernel.sandbox._zygote_main", main_args=(preload,))

        zygote: Zygote = host.shared("sandbox.zygote", start)
        return zygote

    def _fork(self, ctl: socket.socket) -> Callable[[], int]:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        payload = SandboxPayload(
            launch=self.sandbox.launch, id_maps=self.sandbox.maps, cgroup=self.sandbox.limits
        )
        try:
            forked = self._zygote.fork(
                ctl, payload=msgspec.msgpack.encode(payload), extra_fds=(theirs,)
            )
        finally:
            theirs.close()
        self._setup = (forked, mine)
        return forked

    def _before_reading(self) -> None:
        """Wait for pid 1's report (its seccomp listener) in the control reader's thread
        (a thread of its own would cost its start, a millisecond or two, per domain).
        Until then the domain's control messages wait in its socket."""
        if self._setup is not None:
            forked, report = self._setup
            self._setup = None
            self._await_ready(forked, report)

    def _await_ready(self, forked: Forking, report: socket.socket) -> None:
        try:
            pid = forked()
        except Exception:
            report.close()
            return
        handle = msgspec.msgpack.decode(forked.payload or b"\xc0", type=CgroupHandle | None)
        self.sandbox.started(pid, handle)
        self.sandbox.await_ready(report)

    def start_process(self, spec: ProcessSpec) -> None:
        if not self._script_sent and _needs_script(spec):
            path = _script_path()
            if path is not None:
                self._send(LoadScript(path))
            self._script_sent = True
        super().start_process(spec)

    def _check_importable(self, module: str, what: str) -> None:
        if module != "__main__":
            if module not in self._importable:
                check_module(module, what, self._shown, self._sandbox_user)
                self._importable.add(module)
            return
        if _script_path() is None:
            raise NotImportableError(
                f"{what} lives in an interactive __main__, which a sandbox domain "
                "cannot import; move it to a module"
            )

    def _exit_reason(self, status: int | None) -> ExitReason:
        reason = self.sandbox.reason(status)
        self.sandbox.close()
        return reason


def _needs_script(spec: ProcessSpec) -> bool:
    """Does starting ``spec`` need the kernel's ``__main__`` inside the domain?

    When the function, a contract or a pickled argument's class lives there, or
    the script declared contracts (an endpoint of one may arrive later).
    """
    if spec.function.module == "__main__" or b"__main__" in spec.args:
        return True
    if any(endpoint.contract.module == "__main__" for endpoint in spec.endpoints):
        return True
    return any(contract.module == "__main__" for contract in Contract.registered())


def _script_path() -> str | None:
    path = getattr(sys.modules["__main__"], "__file__", None)
    return None if path is None else os.path.abspath(path)


def _with_memory(policy: Policy, memory: int) -> Policy:
    return policy.replace(limits=msgspec.structs.replace(policy.limits, memory=memory))
