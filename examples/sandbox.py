"""Untrusted code in a sandbox domain: what it may do, what it may not, and why it ended.

Run it with ``python examples/sandbox.py`` (as root or as any user: user
namespaces do the work). A "plugin" evaluates expressions sent to it over a
contract. Each request is something plugin code might try; the reply says what
happened inside the sandbox. The last request makes a forbidden system call:
the sandbox is killed and its exit reason names the call.
"""

import ctypes
import os
import socket

import msgspec

import sipkernel as sk
from sipkernel.sandbox import Policy


class Attempt(msgspec.Struct, frozen=True, tag=True):
    what: str


class Outcome(msgspec.Struct, frozen=True, tag=True):
    text: str


PLUGIN = sk.Contract(
    "Plugin", "state Ready: Attempt? -> Busy; state Busy: Outcome! -> Ready;", [Attempt, Outcome]
)


def _read_shadow() -> str:
    with open("/etc/shadow") as f:
        return f.readline()


def _connect_out() -> str:
    with socket.create_connection(("1.1.1.1", 53), timeout=2):
        return "connected"


def _ptrace() -> str:
    ctypes.CDLL(None).ptrace(0, 0, 0, 0)  # PTRACE_TRACEME: the filter stops this
    return "traced"


ATTEMPTS = {
    "compute 6 * 7": lambda: str(6 * 7),
    "who am I": lambda: f"uid {os.getuid()}, pid {os.getpid()}",
    "read /etc/shadow": _read_shadow,
    "write /usr/evil": lambda: str(open("/usr/evil", "w")),  # noqa: SIM115
    "connect to 1.1.1.1:53": _connect_out,
    "call ptrace": _ptrace,
}


def plugin(requests: sk.Endpoint) -> None:
    """Try each requested action; answer with its result or the error it met."""
    while True:
        try:
            attempt = requests.recv()
        except sk.BrokenChannelError:
            return
        try:
            text = f"ok: {ATTEMPTS[attempt.what]()}"
        except OSError as exc:
            text = f"refused: {type(exc).__name__}: {exc.strerror}"
        requests.send(Outcome(text))


def main() -> None:
    policy = Policy.from_dict({"limits": {"memory": 256 << 20, "wall_seconds": 60}})
    with sk.Kernel() as kernel:
        box = kernel.domain("sandbox", policy=policy)
        server_end, client_end = sk.channel(PLUGIN)
        handle = kernel.spawn(plugin, server_end, domain=box)
        for what in ATTEMPTS:
            client_end.send(Attempt(what))
            try:
                print(f"{what:24} -> {client_end.recv(timeout=30).text}")
            except sk.BrokenChannelError as broken:
                print(f"{what:24} -> the plugin is gone: {broken.reason.describe()}")
        print(f"plugin exit reason: {handle.join(30).describe()}")


if __name__ == "__main__":
    main()
