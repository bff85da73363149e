"""The broker: grants capabilities, each served by one local process, and revokes them."""

from __future__ import annotations

import inspect
import os
import stat
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._core._channel import channel
from .._core._contract import Contract
from .._core._endpoint import Endpoint
from .._core._errors import UsageError
from .._core._exit import ExitReason
from .._core._process import FunctionRef, ProcessHandle
from ._audit import close_sink, open_sink
from ._contracts import DIRECTORY, FILE, TCP, check_service_contract
from ._directory import serve_directory
from ._file import serve_file
from ._service import serve_service
from ._tcp import serve_tcp

if TYPE_CHECKING:
    from .._core._kernel import Kernel

REVOKED = "revoked by the broker"
"""The kill reason a revoked capability's holder sees (``killed: revoked by the broker``)."""


@dataclass(eq=False)
class Grant:
    """One capability the broker serves: a ``local`` process holding the exporter end."""

    broker: Broker = field(repr=False)
    name: str
    kind: str
    """``directory``, ``file``, ``tcp`` or ``service``."""
    handle: ProcessHandle

    @property
    def pid(self) -> int:
        """The serving process's pid (the ``pid`` of its audit events)."""
        return self.handle.pid

    @property
    def is_alive(self) -> bool:
        """False once revoked, or once its holder let it go."""
        return self.handle.is_alive

    def revoke(self, timeout: float | None = None) -> ExitReason:
        """End the capability (see :meth:`Broker.revoke`)."""
        return self.broker.revoke(self, timeout)

    close = revoke


class Broker:
    """Serves capabilities from the kernel's domain to processes in any domain.

    Each ``grant_*`` method starts one ``local`` process that serves one
    capability and returns the importer end of its channel: pass it to a
    process as a spawn argument or inside a message (it moves). The holder
    wraps it (``Directory``, ``File``, ``TcpConnection``, ``Service``).
    Every refused request is a ``CapabilityRefused`` in the holder and an
    ``ACCESS_REFUSED`` event in the kernel. The broker closes with the kernel;
    ``close()`` (or leaving ``with Broker(kernel)``) revokes everything sooner.
    """

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._lock = threading.Lock()
        self._grants: dict[int, Grant] = {}
        self._by_endpoint: weakref.WeakKeyDictionary[Endpoint, Grant] = weakref.WeakKeyDictionary()
        self._closed = False
        self._sink = open_sink(kernel.emit)
        kernel.shared(f"sipkernel.broker.{self._sink}", lambda: self)  # closed at shutdown

    # -- granting ------------------------------------------------------------------------

    def grant_directory(self, path: str | os.PathLike[str], *, name: str | None = None) -> Endpoint:
        """A read-only view of the directory ``path``: list, stat and read beneath it."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        label = name or f"directory {os.fspath(path)}"
        return self._grant("directory", label, DIRECTORY, serve_directory, fd, self._sink, fd=fd)

    def grant_file(
        self,
        path: str | os.PathLike[str],
        *,
        writable: bool = True,
        max_size: int | None = None,
        name: str | None = None,
    ) -> Endpoint:
        """Exactly the file ``path`` (created if ``writable`` and missing).

        ``max_size`` refuses any write or truncation past that many bytes.
        """
        fd = _open_regular(path, (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY)
        label = name or f"file {os.fspath(path)}"
        args = (fd, writable, max_size, self._sink)
        return self._grant("file", label, FILE, serve_file, *args, fd=fd)

    def grant_tcp(
        self, host: str, port: int, *, connect_timeout: float = 10.0, name: str | None = None
    ) -> Endpoint:
        """TCP connections to ``host:port`` and nowhere else, relayed by the broker."""
        if not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"port must be an integer from 1 to 65535, not {port!r}")
        label = name or f"tcp {host}:{port}"
        return self._grant("tcp", label, TCP, serve_tcp, host, port, connect_timeout)

    def grant_service(
        self, handler: Callable[..., Any], contract: Contract, *args: Any, name: str
    ) -> Endpoint:
        """The application's own capability: ``handler(request, *args)`` answers each request.

        ``contract`` comes from :func:`service_contract` (at module level).
        ``handler`` is a module-level ``def``; it returns a reply of the
        contract or raises ``CapabilityRefused("why")``. ``args`` are copied
        into the serving process (a user name, a table name: what narrows it).
        """
        check_service_contract(contract)
        FunctionRef.of(handler)  # a lambda or a closure fails here, at the call site
        if inspect.iscoroutinefunction(handler):
            raise UsageError("a service handler is a plain def, not an async def")
        return self._grant("service", name, contract, serve_service, handler, args, self._sink)

    def _grant(
        self,
        kind: str,
        name: str,
        contract: Contract,
        serve: Callable[..., Any],
        *args: Any,
        fd: int | None = None,
    ) -> Endpoint:
        """Spawn ``serve(exporter, *args)`` as a local process; ``fd`` closes when it ends."""
        exporter, importer = channel(contract)
        try:
            self._check_open()
            handle = self._kernel.spawn(serve, exporter, *args, domain="local", name=name)
        except BaseException:
            exporter.close()
            importer.close()
            if fd is not None:
                os.close(fd)
            raise
        grant = Grant(self, name, kind, handle)
        with self._lock:
            self._grants[handle.pid] = grant
            self._by_endpoint[importer] = grant
        handle.on_exit(lambda _reason: self._forget(grant, fd))
        return importer

    def _forget(self, grant: Grant, fd: int | None) -> None:
        with self._lock:
            self._grants.pop(grant.pid, None)
        if fd is not None:
            os.close(fd)

    # -- looking up and revoking -----------------------------------------------------------

    def grants(self) -> tuple[Grant, ...]:
        """The capabilities being served now."""
        with self._lock:
            return tuple(self._grants.values())

    def grant_of(self, endpoint: Endpoint) -> Grant:
        """The grant behind an endpoint a ``grant_*`` method returned (even once sent away)."""
        with self._lock:
            grant = self._by_endpoint.get(endpoint)
        if grant is None:
            raise UsageError(f"{endpoint!r} is not an endpoint this broker granted")
        return grant

    def revoke(self, target: Endpoint | Grant, timeout: float | None = None) -> ExitReason:
        """End a capability: its serving process is killed, and its holder's next
        call raises ``BrokenChannelError`` (``killed: revoked by the broker``).

        Waits up to ``timeout`` seconds (default: the kernel's grace) for the
        process to end and returns its exit reason.
        """
        grant = target if isinstance(target, Grant) else self.grant_of(target)
        grant.handle.kill(REVOKED)
        return grant.handle.join(self._kernel.grace if timeout is None else timeout)

    # -- lifetime ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this broker is closed")

    def close(self) -> None:
        """Revoke every capability still served (idempotent)."""
        with self._lock:
            self._closed = True
        for grant in self.grants():
            self.revoke(grant)
        close_sink(self._sink)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_regular(path: str | os.PathLike[str], flags: int) -> int:
    """Open a regular file (a FIFO or a device would block or reach hardware)."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    raise UsageError(f"{os.fspath(path)!r} is not a regular file; only files can be granted")
