"""The serving process of an application's own capability service.

The application writes a handler: a module-level function that takes one
request (and the arguments given at grant time) and returns one reply, or
raises ``CapabilityRefused("why")`` to refuse. The handler runs here, in the
kernel's interpreter, with the kernel's authority: it is the application's
trusted code, and it decides what the holder may see. What it raises is
turned into a reply, so a handler's bug never ends the capability and never
shows the holder a traceback of the kernel's code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._core._endpoint import Endpoint
from ._audit import printable, refuse
from ._contracts import reply_types
from ._errors import CapabilityRefused
from ._messages import Failed, Refused
from ._serving import io_failed, serve_forever

logger = logging.getLogger("sipkernel")

Handler = Callable[..., Any]


def serve_service(requests: Endpoint, handler: Handler, args: tuple[Any, ...], sink: str) -> None:
    """Answer each request with ``handler(request, *args)``."""
    replies = reply_types(requests.contract)
    serve_forever(requests, lambda request: _answer(handler, request, args, replies, sink))


def _answer(
    handler: Handler, request: Any, args: tuple[Any, ...], replies: tuple[type, ...], sink: str
) -> Any:
    what = printable(repr(request))
    try:
        reply = handler(request, *args)
    except CapabilityRefused as refused:
        return refuse(sink, "", what, refused.reason)
    except OSError as exc:
        return io_failed(exc)
    except Exception as exc:
        logger.exception("capability service handler %s failed on %s", _name(handler), what)
        return Failed(f"the service failed ({type(exc).__name__})")
    if isinstance(reply, Refused):
        return refuse(sink, "", what, reply.reason)
    if not isinstance(reply, replies):
        logger.error("capability service handler %s returned %r", _name(handler), reply)
        return Failed("the service returned a reply its contract does not allow")
    return reply


def _name(handler: Handler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', '?')}"
