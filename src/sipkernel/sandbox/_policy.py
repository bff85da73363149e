"""One policy schema for every sandbox: from Python, from a TOML file, from flags.

A :class:`Policy` says what a sandboxed OS process may see and do. Every
field has a strict default, so ``Policy()`` is the documented default policy:

* every namespace new (user, pid, net, mount, ipc, uts, cgroup); the code
  runs as uid/gid 1000 inside, mapped to the caller's own ids outside (or to
  ``nobody`` when the caller is root, so no file of root's is ever the
  sandbox's own);
* a new root of read-only binds of what the code needs: the interpreter's
  prefix, the virtual environment and the directories Python imports from;
  a private, size-capped ``/tmp``; a fresh ``/proc``; a minimal ``/dev``;
  Landlock rules repeating the same view as a second layer;
* no network: a new network namespace whose loopback is down, and only UNIX
  sockets; ``loopback`` brings ``lo`` up and allows IP sockets on it;
* a seccomp filter against the dangerous system calls (see ``_seccomp``);
* no new privileges, no capabilities, a new session, an empty environment
  but for a short allow-list;
* limits: 512 MiB of memory, 256 tasks, 256 open files, 64 MiB per written
  file, no core dumps; CPU and wall time unlimited unless asked.

Limits that have a cgroup (memory, tasks, CPU share) use one when this
machine offers it (cgroup v2 where delegated or as root, else v1); memory
and tasks fall back to rlimits (``RLIMIT_AS``, ``RLIMIT_NPROC``) otherwise,
and a sandbox domain's ``enforcement`` says which enforced each.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .._core._errors import UsageError
from ._seccomp import SyscallPolicy

MiB = 1024 * 1024

DEFAULT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
"""Environment variables a sandbox keeps (when set outside); ``env`` adds more."""

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class Namespaces(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which Linux namespaces the sandbox gets new; all by default.

    ``user`` is what lets an unprivileged caller create the others; turning
    it off requires root. ``mount`` is required by the filesystem view.
    """

    user: bool = True
    pid: bool = True
    net: bool = True
    mount: bool = True
    ipc: bool = True
    uts: bool = True
    cgroup: bool = True


class Identity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who the code runs as, inside the user namespace and outside it."""

    uid: int = 1000
    """The uid inside the sandbox (never 0: the code has no root to lose)."""
    gid: int = 1000
    outside_uid: int | None = None
    """The host uid the inside uid maps to; default: the caller's, or 65534 for root."""
    outside_gid: int | None = None

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise UsageError("a sandbox never runs as uid or gid 0 inside; pick another id")
        for name in ("uid", "gid", "outside_uid", "outside_gid"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**32 - 1:
                raise UsageError(f"identity.{name} must be a valid id, not {value}")


class Bind(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One host path shown inside the sandbox."""

    source: str
    """The host path (absolute)."""
    target: str | None = None
    """Where it appears inside; default: the same path."""
    writable: bool = False

    @property
    def inside(self) -> str:
        return self.target or self.source


class Filesystem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The sandbox's view of files: nothing but what is listed here."""

    python: bool = True
    """Show the interpreter's prefix, the virtual environment and Python's import path."""
    ro: tuple[str, ...] = ()
    """More host paths to show read-only, at the same path."""
    rw: tuple[str, ...] = ()
    """Host paths to show writable, at the same path."""
    binds: tuple[Bind, ...] = ()
    """Binds with a different path inside."""
    tmp_size: int = 64 * MiB
    """Size of the private tmpfs mounted on ``/tmp`` (bytes)."""
    workdir: str = "/tmp"
    """The working directory inside."""
    landlock: bool = True
    """Repeat the view as Landlock rules (a second layer) where the kernel has Landlock."""

    def __post_init__(self) -> None:
        for path in (*self.ro, *self.rw, *(b.source for b in self.binds), self.workdir):
            if not path.startswith("/"):
                raise UsageError(f"sandbox paths must be absolute, not {path!r}")
        if self.tmp_size <= 0:
            raise UsageError("filesystem.tmp_size must be positive")

    def all_binds(self) -> tuple[Bind, ...]:
        """Every explicit bind, ``ro`` and ``rw`` lists included."""
        listed = [Bind(source=p) for p in self.ro] + [
            Bind(source=p, writable=True) for p in self.rw
        ]
        return (*listed, *self.binds)


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Resource limits; ``None`` means unlimited (or inherited)."""

    memory: int | None = 512 * MiB
    """Bytes of memory (cgroup, else ``RLIMIT_AS``)."""
    pids: int | None = 256
    """Tasks: processes and threads (cgroup, else ``RLIMIT_NPROC``, which counts
    every process of the outside uid)."""
    cpu_cores: float | None = None
    """CPU bandwidth in cores (cgroup ``cpu`` only)."""
    cpu_seconds: int | None = None
    """CPU time (``RLIMIT_CPU``: SIGXCPU, then SIGKILL)."""
    wall_seconds: float | None = None
    """Wall-clock time, enforced by the supervisor outside."""
    open_files: int | None = 256
    file_size: int | None = 64 * MiB
    """Largest file the code may write (``RLIMIT_FSIZE``)."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"limits.{name} must be positive, not {value}")


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a sandbox enforces; ``Policy()`` is the strict default."""

    namespaces: Namespaces = Namespaces()
    identity: Identity = Identity()
    filesystem: Filesystem = Filesystem()
    network: Literal["none", "loopback"] = "none"
    """``none``: a new network namespace with no usable interface;
    ``loopback``: the same with ``lo`` up and IP sockets allowed on it."""
    syscalls: SyscallPolicy = SyscallPolicy()
    limits: Limits = Limits()
    env: tuple[str, ...] = ()
    """Names of more environment variables to pass in (``DEFAULT_ENV`` always are)."""
    allow_exec: bool = False
    """May the sandboxed code start other programs (``execve``)?"""
    hostname: str = "sipkernel"

    def __post_init__(self) -> None:
        if not self.namespaces.mount:
            raise UsageError("a sandbox needs a mount namespace for its filesystem view")
        if not self.namespaces.net and self.network == "none":
            raise UsageError('network = "none" needs a network namespace')

    # -- loading ------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str) -> Policy:
        """Read a policy from a TOML file; errors name the file and the field."""
        import tomllib  # only a policy file needs it: not on a default sandbox's start

        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise UsageError(f"cannot read policy {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
        return cls.from_dict(data, origin=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "policy") -> Policy:
        """Build a policy from plain data (as TOML or JSON gives it)."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise UsageError(f"{origin}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (round-trips through ``from_dict``)."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def replace(self, **changes: Any) -> Policy:
        """A copy with some top-level fields changed."""
        return msgspec.structs.replace(self, **changes)
