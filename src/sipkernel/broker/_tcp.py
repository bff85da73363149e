"""The serving process of a TCP grant: a relay to one host and port.

The address is fixed when the grant is made; no request names one, so the
holder can reach that address and no other. The relay is an ``async def``
process on the local domain's event loop: revoking the grant cancels it
wherever it waits (for a request, the connection or the peer's bytes), and
its connection is closed on the way out.
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

from .._core._endpoint import Endpoint
from .._core._errors import BrokenChannelError, ProtocolViolation
from ._messages import (
    CHUNK,
    Connect,
    Connected,
    Data,
    Disconnect,
    Disconnected,
    IOFailed,
    Recv,
    Send,
    Written,
)
from ._serving import io_failed


class Relay:
    """One connection at a time to the granted address."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def answer(self, request: Any) -> Any:
        """The reply to one request; an operating-system error becomes ``IOFailed``."""
        try:
            return await self._answer(request)
        except TimeoutError:
            return IOFailed(errno.ETIMEDOUT, "timed out")
        except OSError as exc:
            return io_failed(exc)

    async def _answer(self, request: Any) -> Any:
        if isinstance(request, Connect):
            return await self.connect()
        if isinstance(request, Disconnect):
            self.close()
            return Disconnected()
        reader, writer = self.reader, self.writer
        assert reader is not None  # Send and Recv come only while Open: the contract says so
        assert writer is not None
        if isinstance(request, Send):
            writer.write(request.data)
            await writer.drain()
            return Written(len(request.data))
        assert isinstance(request, Recv)
        if request.max_bytes <= 0:
            return IOFailed(errno.EINVAL, "max_bytes must be positive")
        read = reader.read(min(request.max_bytes, CHUNK))
        data = await asyncio.wait_for(read, request.timeout)
        return Data(data, eof=not data)

    async def connect(self) -> Connected:
        """Open the connection to the granted address."""
        opening = asyncio.open_connection(self.host, self.port)
        self.reader, self.writer = await asyncio.wait_for(opening, self.connect_timeout)
        return Connected(f"{self.host}:{self.port}")

    def close(self) -> None:
        """Close the connection, if one is open."""
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()


async def serve_tcp(requests: Endpoint, host: str, port: int, connect_timeout: float) -> None:
    """Answer ``TCP`` requests by relaying to ``host:port``."""
    relay = Relay(host, port, connect_timeout)
    try:
        while True:
            try:
                request = await requests.arecv()
            except (BrokenChannelError, ProtocolViolation):
                return
            reply = await relay.answer(request)
            try:
                await requests.asend(reply)
            except BrokenChannelError:
                return
    finally:
        relay.close()
