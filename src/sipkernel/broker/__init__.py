"""Capabilities for code with no ambient authority: files, directories, TCP, services.

Code in a ``sandbox`` domain has no files of the host, no network and no
services: it gets each only as a capability handed to it, in its spawn
arguments or in a message. Here a capability *is* an endpoint: the importer
end of a channel whose contract says what may be asked. The :class:`Broker`
runs in the kernel's domain; each grant is one ``local`` process holding the
exporter end and serving that one capability:

* ``grant_directory(path)``: list, stat and read beneath one directory, read-only;
* ``grant_file(path)``: exactly one file: read, write, truncate, size;
* ``grant_tcp(host, port)``: connections to that address only, relayed;
* ``grant_service(handler, contract, *args, name=...)``: the application's own
  service (one table of a database, one route of an HTTP API), answered by a
  module-level handler that may raise ``CapabilityRefused``.

The holder wraps the endpoint in :class:`Directory`, :class:`File`,
:class:`TcpConnection` or :class:`Service`. A refused request raises
:class:`CapabilityRefused` (a ``PermissionError``) in the holder, whatever
its domain, and the kernel publishes an ``ACCESS_REFUSED`` event (logged at
WARNING) naming the grant, what was asked and why it was refused. An I/O
error raises its ``OSError`` subclass (``FileNotFoundError``, ...).
``broker.revoke(endpoint)`` kills the serving process: the holder's next call
raises ``BrokenChannelError``.

Bytes, not descriptors: a grant's data crosses the channel as bytes, in
messages of at most ``CHUNK`` bytes, rather than as a file descriptor passed
with ``SCM_RIGHTS``. Channels carry endpoints, not raw descriptors, and a
descriptor is more authority than the grant: a read-only descriptor of a
file still lets its holder ``fstat`` it, map it, keep reading it after the
grant is revoked, and pass it on out of the broker's sight; a directory
descriptor opens everything beneath it with no audit line. Through the
channel every request is checked, refusable, audited and revocable. The
cost is a copy and a round trip per chunk (see the README for figures).

Paths are resolved strictly beneath the granted directory by a walk of
``openat(O_NOFOLLOW)`` calls from the held directory descriptor (see
``_beneath``): absolute paths, ``..`` above the grant and symbolic links that
lead out are refused.
"""

from ._broker import REVOKED, Broker, Grant
from ._client import Capability, Directory, File, Service, TcpConnection
from ._contracts import DIRECTORY, FILE, TCP, service_contract
from ._errors import CapabilityRefused, ServiceFailed
from ._messages import (
    CHUNK,
    Connect,
    Connected,
    Data,
    DirEntry,
    Disconnect,
    Disconnected,
    Failed,
    GetSize,
    IOFailed,
    ListDir,
    Listing,
    ReadAt,
    ReadFile,
    Recv,
    Refused,
    Send,
    Size,
    StatPath,
    Status,
    Truncate,
    WriteAt,
    WriteFile,
    Written,
)

__all__ = [
    "CHUNK",
    "DIRECTORY",
    "FILE",
    "REVOKED",
    "TCP",
    "Broker",
    "Capability",
    "CapabilityRefused",
    "Connect",
    "Connected",
    "Data",
    "DirEntry",
    "Directory",
    "Disconnect",
    "Disconnected",
    "Failed",
    "File",
    "GetSize",
    "Grant",
    "IOFailed",
    "ListDir",
    "Listing",
    "ReadAt",
    "ReadFile",
    "Recv",
    "Refused",
    "Send",
    "Service",
    "ServiceFailed",
    "Size",
    "StatPath",
    "Status",
    "TcpConnection",
    "Truncate",
    "WriteAt",
    "WriteFile",
    "Written",
    "service_contract",
]
