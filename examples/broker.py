"""Capabilities: a sandboxed report generator that sees only what it is handed.

Run it with ``python examples/broker.py``. The generator runs in a sandbox
domain, which has no files of the host and no network. The kernel's broker
hands it two capabilities: the sales data directory (read-only) and the one
file it may write its report to. It reads the data, writes the report, and
then tries to read ``/etc/passwd`` through its directory capability (as an
absolute path, then by climbing out with ``..``): the broker refuses, the
generator gets a typed ``CapabilityRefused``, and the kernel gets an audit
line saying who asked for what.
"""

import tempfile
from pathlib import Path

import msgspec

import sipkernel as sk
from sipkernel.broker import Broker, CapabilityRefused, Directory, File


class Line(msgspec.Struct, frozen=True, tag=True):
    text: str


LOG = sk.Contract("Log", "state Open: Line? -> Open;", [Line])
"""One-way: the generator (importer) tells the kernel (exporter) what it did."""

SALES = {
    "north.csv": "day,amount\nmon,400\ntue,350\nwed,450\n",
    "south.csv": "day,amount\nmon,210\ntue,190\n",
}


def generate_report(
    data: sk.Endpoint, output: sk.Endpoint, host_path: str, log: sk.Endpoint
) -> None:
    """Sum the sales files it is handed, write the report, then try to wander off."""
    files, report = Directory(data), File(output)
    lines, total = ["Sales report"], 0
    for entry in files.list():
        rows = files.read(entry.name).decode().splitlines()[1:]
        amount = sum(int(row.split(",")[1]) for row in rows)
        log.send(Line(f"read {entry.name}: {len(rows)} days, {amount} sold"))
        lines.append(f"  {entry.name:10} {amount:5}")
        total += amount
    lines.append(f"  {'total':10} {total:5}")
    report.truncate(0)
    written = report.write(("\n".join(lines) + "\n").encode())
    log.send(Line(f"wrote the report: {written} bytes"))
    try:
        open(host_path).close()
    except OSError as exc:
        log.send(Line(f"open a data file directly: {type(exc).__name__} (not in the sandbox)"))
    for path in ("/etc/passwd", "../../etc/passwd"):
        try:
            files.read(path)
        except CapabilityRefused as refused:
            log.send(Line(f"read {path} through the capability: refused: {refused}"))


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, sk.Kernel() as kernel:
        data = Path(scratch, "sales")
        data.mkdir()
        for name, text in SALES.items():
            (data / name).write_text(text)
        audit = kernel.events.stream()
        broker = Broker(kernel)
        inbox, log = sk.channel(LOG)
        generator = kernel.spawn(
            generate_report,
            broker.grant_directory(data, name="sales data"),
            broker.grant_file(Path(scratch, "report.txt"), name="report file"),
            str(data / "north.csv"),
            log,
            domain="sandbox",
        )
        while True:
            try:
                print(f"generator: {inbox.recv(timeout=60).text}")
            except sk.BrokenChannelError:
                break
        print(f"generator exit: {generator.join(60).describe()}")
        for event in audit.drain():
            if event.kind is sk.EventKind.ACCESS_REFUSED:
                print(f"kernel audit: {event.describe()}")
        audit.close()
        print("the report, as the host sees it:")
        print(Path(scratch, "report.txt").read_text(), end="")


if __name__ == "__main__":
    main()
