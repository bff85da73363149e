"""Domain kinds: each registers itself with the kernel core's table of kinds."""

from .._core._domain import register_domain_kind
from ._local import LocalDomain
from ._process import ProcessDomain

register_domain_kind(LocalDomain.kind, LocalDomain)
register_domain_kind(ProcessDomain.kind, ProcessDomain)

__all__ = ["LocalDomain", "ProcessDomain"]
