"""The main job: what isolation costs, measured; then a crash that costs nothing.

Run with ``make demo`` (or ``python examples/demo.py``). WebFiles
(``examples/webfiles``, after the Singularity paper's experiment) is a client
reading files through a file system, which reads blocks from a disk driver.
The same three processes run under each isolation configuration of their
manifest; only the domains they run in change. Then the disk driver is killed
with a real SIGKILL in the middle of a run, its supervisor restarts it, and
the client still gets every byte right.
"""

import os
import signal
import sys
import time
from pathlib import Path

import sipkernel as sk
from sipkernel.app import Application, load_blueprint
from sipkernel.app._commands import placement_text
from sipkernel.bench._isolation import format_isolation_table, run_isolation

APP = Path(__file__).resolve().parent / "webfiles" / "app.toml"
READS = 1500
"""Reads per timed run: about a second in the slowest configuration here."""
FAULT_READS = 6000
"""Reads in the fault run: long enough for the kill to land in the middle."""


def say(text: str = "") -> None:
    print(text, flush=True)


def section(number: int, title: str) -> None:
    say()
    say(f"{number}. {title}")
    say("-" * (len(title) + 3))


def introduce() -> None:
    say("sipkernel: isolation is chosen at deployment, and its cost can be measured")
    section(1, "One application, four configurations")
    say("WebFiles: client --Files--> file system --Blocks--> disk driver --> disk image")
    say("The client reads files chosen like SPECweb99's mix and checks every byte.")
    blueprint = load_blueprint(APP)
    say("Its manifest places the same three processes differently in each configuration:")
    for name in blueprint.manifest.isolation:
        say(f"  {name:12} {placement_text(blueprint, name)}")
    say("(local: in the kernel's interpreter; process: a child OS process of its own;")
    say(" sandbox: a child OS process in namespaces, seccomp and Landlock, no host files)")


def cost_of_isolation() -> None:
    section(2, "The cost of isolation")
    say(f"Each configuration runs {READS} reads, three rounds, interleaved; times are")
    say("from start to the client's last verified read, domain start-up included.")
    say("(the client prints one line per run; they follow as they happen)")
    results = run_isolation(APP, rounds=3, overrides={"client": {"reads": READS}})
    say()
    say(format_isolation_table(results))
    say()
    say("overhead: how much longer than 'monolithic' (everything in one interpreter).")
    say("Singularity measured +6.3% to +37.7% for hardware isolation on its WebFiles;")
    say("BENCHMARKS.md puts our numbers next to theirs and explains the difference.")


def crash_and_restart() -> None:
    section(3, "A disk driver killed mid-run; nothing is lost")
    blueprint = load_blueprint(APP)
    with sk.Kernel(grace=2.0) as kernel, kernel.events.stream() as events:
        overrides = {"client": {"reads": FAULT_READS}}
        app = Application(blueprint, kernel, configuration="microkernel", overrides=overrides)
        with app:
            events.wait_for(lambda e: e.kind is sk.EventKind.SPAWNED and e.name == "client", 30)
            time.sleep(0.3)  # a demo, not a test: let the client get going first
            [disk] = [p for p in kernel.processes() if p.name == "disk"]
            os_pid = disk.domain.os_pid  # type: ignore[attr-defined]
            say(f"  the disk driver runs in OS process {os_pid}; sending it SIGKILL now")
            os.kill(os_pid, signal.SIGKILL)
            restarted = events.wait_for(
                lambda e: e.kind is sk.EventKind.RESTARTED and e.name == "disk", 30
            )
            say(f"  supervisor: {restarted.describe()}")
            outcome = app.wait(300)
        say(f"  the client ended: {outcome.describe() if outcome else 'still running?'}")
        say("  every exit, with its typed reason:")
        for event in app.exits:
            reason = event.reason.describe() if event.reason else "?"
            say(f"    {event.name + '<' + str(event.pid) + '>':10} {reason}")


def main() -> None:
    started = time.perf_counter()
    introduce()
    cost_of_isolation()
    crash_and_restart()
    say()
    say(f"Done in {time.perf_counter() - started:.1f} s. Try it yourself:")
    say("  sipkernel run examples/webfiles/app.toml --isolation sandboxed")
    say("  sipkernel check examples/webfiles/app.toml")
    say("  sipkernel bench isolation --plot overheads")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: the kernel shut down in order", file=sys.stderr)
