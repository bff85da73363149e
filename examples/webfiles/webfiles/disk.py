"""The disk driver: serves ``Blocks`` from an image it reaches only through a capability.

The driver opens no file itself: the manifest grants it ``disk-image``, a
read-only broker capability on one file, which works the same in a sandbox
with no host files at all. Every request is checked before any I/O, and a
request out of range is answered with ``BlockError``, never an exception.
"""

from __future__ import annotations

import sipkernel as sk
from sipkernel import app
from sipkernel.broker import File

from .protocol import BLOCK_SIZE, MAX_BLOCKS, BlockData, BlockError, ReadBlocks


class BlockDevice:
    """An image file seen as an array of ``BLOCK_SIZE``-byte blocks."""

    def __init__(self, image: File) -> None:
        self.image = image
        self.block_count = image.size() // BLOCK_SIZE

    def refusal(self, request: ReadBlocks) -> str | None:
        """Why ``request`` cannot be served, or None if it can."""
        if request.count < 1 or request.count > MAX_BLOCKS:
            return f"count must be 1..{MAX_BLOCKS}, not {request.count}"
        if request.first < 0 or request.first + request.count > self.block_count:
            last = request.first + request.count - 1
            return f"blocks {request.first}..{last} are outside 0..{self.block_count - 1}"
        return None

    def answer(self, request: ReadBlocks) -> BlockData | BlockError:
        """The blocks asked for, or why not."""
        refusal = self.refusal(request)
        if refusal is not None:
            return BlockError(refusal)
        want = request.count * BLOCK_SIZE
        try:
            data = self.image.read(request.first * BLOCK_SIZE, want)
        except OSError as exc:
            return BlockError(f"reading the image failed: {exc}")
        if len(data) != want:
            return BlockError(f"short read: {len(data)} of {want} bytes")
        return BlockData(request.first, data)


def serve(connection: sk.Endpoint, device: BlockDevice) -> None:
    """Answer one client's requests until it goes away."""
    with connection:
        while True:
            try:
                request = connection.recv()
            except sk.BrokenChannelError:
                return  # the file system went away (or restarted): wait for its next call
            reply = device.answer(request)
            try:
                connection.send(reply)
            except sk.BrokenChannelError:
                return


def disk(clients: sk.Endpoint, image: sk.Endpoint) -> None:
    """The process: serve each connection on ``clients`` in turn, from the ``image`` grant.

    The manifest gives this service one caller (the file system), so one
    connection at a time is enough; a caller's next connection is accepted
    when its previous one breaks.
    """
    device = BlockDevice(File(image))
    while True:
        try:
            connection = app.accept(clients)
        except sk.BrokenChannelError:
            return  # the application is shutting down
        serve(connection, device)
