"""The sandbox domain kind: namespaces, seccomp, Landlock, limits.

``kernel.domain("sandbox", policy=Policy(...))`` makes a domain whose OS
process is contained before any of the application's code runs in it;
``sipkernel sandbox -- CMD`` runs any command in the same sandbox. The policy
schema is :class:`Policy`; ``Policy()`` is the strict default.

Names are imported on first use, so the command line starts without the
kernel; the ``sandbox`` kind is registered with the public API
(``import sipkernel``'s first use).
"""

import typing as _typing

from .._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from ._domain import SandboxDomain
    from ._errors import SandboxError, SandboxSetupError, SandboxUnavailable
    from ._policy import Bind, Filesystem, Identity, Limits, Namespaces, Policy
    from ._seccomp import SyscallPolicy

_HOMES = {
    "Bind": "._policy",
    "Filesystem": "._policy",
    "Identity": "._policy",
    "Limits": "._policy",
    "Namespaces": "._policy",
    "Policy": "._policy",
    "SandboxDomain": "._domain",
    "SandboxError": "._errors",
    "SandboxSetupError": "._errors",
    "SandboxUnavailable": "._errors",
    "SyscallPolicy": "._seccomp",
}

__all__ = [
    "Bind",
    "Filesystem",
    "Identity",
    "Limits",
    "Namespaces",
    "Policy",
    "SandboxDomain",
    "SandboxError",
    "SandboxSetupError",
    "SandboxUnavailable",
    "SyscallPolicy",
]


__getattr__ = _lazy_names(__name__, _HOMES)
