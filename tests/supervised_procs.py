"""Processes and helpers for the supervisor tests (``test_supervisor.py``).

The process functions are module-level so that a ``process`` domain can
import them by name (``conftest.py`` puts this directory on ``sys.path``).

A test decides exactly when a child dies: ``worker`` blocks on a control
endpoint until the test sends ``Crash`` (it raises) or ``Finish`` (it
returns). ``Controls`` builds a fresh control channel at every start of a
child (use its factories as ``ChildSpec.args_factory``) and keeps the test's
end of each, so a test can reach the current incarnation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import msgspec

import sipkernel as sk

# -- the control contract ------------------------------------------------------------


class Crash(msgspec.Struct, tag=True):
    """Worker: raise ``RuntimeError(message)`` (an abnormal exit)."""

    message: str = "told to crash"


class Finish(msgspec.Struct, tag=True):
    """Worker: return (a normal exit)."""


class Probe(msgspec.Struct, tag=True):
    """Worker: answer with ``Alive``."""


class Alive(msgspec.Struct, tag=True):
    """The worker's answer to a ``Probe``: who answered."""

    pid: int
    isolation: str


CONTROL = sk.Contract(
    "SupervisedControl",
    "state Run: Probe? -> Alive! -> Run | Crash? -> Done | Finish? -> Done; state Done;",
    [Crash, Finish, Probe, Alive],
)
"""Exporter: the worker. Importer: the test."""


# -- process functions ------------------------------------------------------------------


def worker(control: sk.Endpoint) -> None:
    """Serve ``control`` until told to crash or finish."""
    while True:
        message = control.recv()
        if isinstance(message, Probe):
            me = sk.current()
            control.send(Alive(me.pid, me.isolation()))
        elif isinstance(message, Crash):
            raise RuntimeError(message.message)
        else:
            return


async def idle() -> None:
    """Wait forever (until stopped); an ``async def`` so a kill cancels it at once."""
    await asyncio.get_running_loop().create_future()


def deaf() -> None:
    """Sleep in C code for a minute: a stop request reaches it only when it returns."""
    time.sleep(60)


def crash_at_once() -> None:
    """Fail as soon as started."""
    raise RuntimeError("crashed at start")


def finish_at_once() -> None:
    """Return as soon as started (a normal exit)."""


# -- the test's side --------------------------------------------------------------------


class Controls:
    """Fresh control channels for every start of every child; keeps the test's ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: dict[str, list[sk.Endpoint]] = {}

    def factory(self, child_id: str) -> Callable[[], tuple[sk.Endpoint]]:
        """An ``args_factory`` for child ``child_id``: a new channel per start."""

        def make() -> tuple[sk.Endpoint]:
            exporter, importer = sk.channel(CONTROL)
            with self._lock:
                self._ends.setdefault(child_id, []).append(importer)
            return (exporter,)

        return make

    def starts(self, child_id: str) -> int:
        """How many times the factory of ``child_id`` was called."""
        with self._lock:
            return len(self._ends.get(child_id, []))

    def latest(self, child_id: str) -> sk.Endpoint:
        """The test's end of the newest incarnation's control channel."""
        with self._lock:
            return self._ends[child_id][-1]

    def crash(self, child_id: str, message: str = "told to crash") -> None:
        self.latest(child_id).send(Crash(message))

    def finish(self, child_id: str) -> None:
        self.latest(child_id).send(Finish())

    def probe(self, child_id: str, timeout: float = 10.0) -> Alive:
        """Ask the newest incarnation who it is (proves its channel works)."""
        end = self.latest(child_id)
        end.send(Probe())
        answer = end.recv(timeout=timeout)
        assert isinstance(answer, Alive)
        return answer

    def close(self) -> None:
        with self._lock:
            ends = [end for group in self._ends.values() for end in group]
        for end in ends:
            end.close()


class ManualClock:
    """A clock the test moves by hand (for ``Supervisor(clock=...)``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
