"""A first sipkernel program: one contract, two processes, two isolation levels.

Run it with ``python examples/quickstart.py``. The same ``adder`` code runs in
the kernel's interpreter (``local``) and in a child OS process (``process``);
only the ``domain=`` argument changes.
"""

import msgspec

import sipkernel as sk


class Add(msgspec.Struct, frozen=True, tag=True):
    a: int
    b: int


class Sum(msgspec.Struct, frozen=True, tag=True):
    total: int


# Written from the server's side: it receives Add (?) and answers Sum (!).
ADDER = sk.Contract("Adder", "state Ready: Add? -> Busy; state Busy: Sum! -> Ready;", [Add, Sum])


def adder(requests: sk.Endpoint) -> None:
    """Serve additions until the client closes its end."""
    while True:
        try:
            request = requests.recv()
        except sk.BrokenChannelError:
            return  # the client is gone: a normal exit
        requests.send(Sum(request.a + request.b))


def main() -> None:
    with sk.Kernel() as kernel:
        for domain in ("local", "process"):
            server_end, client_end = sk.channel(ADDER)
            process = kernel.spawn(adder, server_end, domain=domain)
            client_end.send(Add(2, 3))
            print(f"{domain:8} 2 + 3 = {client_end.recv().total}")
            try:
                client_end.send(Sum(5))  # the client may not send Sum: the contract says so
            except sk.ProtocolViolation as violation:
                print(f"{domain:8} refused: {violation}")
            print(f"{domain:8} adder exited: {process.join(5).describe()}")


if __name__ == "__main__":
    main()
