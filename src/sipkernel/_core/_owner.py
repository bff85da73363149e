"""Who holds an endpoint: a process, a kernel, or nobody in particular.

A process's exit closes every endpoint it still owns. Inside ``with Kernel():``
endpoints made outside any process belong to that kernel and are closed at its
shutdown. Anywhere else they belong to the code holding them: dropping the last
reference closes them.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._endpoint import EndpointCore
    from ._exit import ExitReason


class EndpointOwner:
    """A set of endpoint cores that end together."""

    __slots__ = ("_cores", "_lock", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self._cores: set[EndpointCore] = set()
        self._lock = threading.Lock()

    def adopt(self, core: EndpointCore) -> None:
        with self._lock:
            self._cores.add(core)

    def release(self, core: EndpointCore) -> None:
        with self._lock:
            self._cores.discard(core)

    def close_all(self, reason: ExitReason) -> None:
        """Close every endpoint still held, telling peers ``reason``."""
        with self._lock:
            cores = list(self._cores)
            self._cores.clear()
        for core in cores:
            core.close(reason)

    def __len__(self) -> int:
        return len(self._cores)


current_owner: contextvars.ContextVar[EndpointOwner | None] = contextvars.ContextVar(
    "sipkernel_current_owner", default=None
)
