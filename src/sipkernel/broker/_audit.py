"""Audit lines: every refused request becomes an ``ACCESS_REFUSED`` event in the kernel.

A serving process is a ``local`` process: it runs in the kernel's interpreter
but, like every process, sees only its arguments. Its broker therefore
registers the kernel's ``emit`` here under a random key and passes the key;
the serving process emits through it. (The kernel itself learns of contract
violations the same way, through a listener list in the core.)
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from .._core._events import Event, EventKind
from .._core._process import current_process
from ._messages import Refused

logger = logging.getLogger("sipkernel")

_sinks: dict[str, Callable[[Event], None]] = {}
_lock = threading.Lock()
_CLIP = 200


def open_sink(emit: Callable[[Event], None]) -> str:
    """Register ``emit``; returns the key serving processes pass to :func:`refuse`."""
    key = secrets.token_hex(8)
    with _lock:
        _sinks[key] = emit
    return key


def close_sink(key: str) -> None:
    """Forget a sink (idempotent)."""
    with _lock:
        _sinks.pop(key, None)


def refuse(sink: str, by: str, what: str, why: str) -> Refused:
    """Emit the audit line for a refused request and return the reply to send."""
    ctx = current_process()
    asker = printable(by) or "its holder"
    event = Event(
        EventKind.ACCESS_REFUSED,
        pid=None if ctx is None else ctx.pid,
        name="" if ctx is None else ctx.name,
        domain="local",
        detail=f"{asker} asked {what}: {why}",
    )
    with _lock:
        emit = _sinks.get(sink)
    if emit is None:  # the broker is closing: the log still gets the line
        logger.warning("%s", event.describe())
    else:
        emit(event)
    return Refused(why)


def printable(text: str, limit: int = _CLIP) -> str:
    """``text`` safe for one log line: no control characters, at most ``limit`` characters."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def quoted(path: str) -> str:
    """A path from a request, quoted for a log line."""
    return printable(repr(path))
