"""The capability broker: grants served from the kernel, used from sandboxes, refused, revoked.

Each capability's happy path runs in a ``sandbox`` domain that provably
cannot reach the resource itself; each refusal is checked twice, as the exact
exception inside the holder and as the ``ACCESS_REFUSED`` event a subscriber
in the kernel sees. Checks of plain error mapping run in the ``local``
domain, where they are quicker and mean the same.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker_procs as bp
import procs
import sipkernel as sk
from procs import CARRIER, STREAM, Item
from sipkernel.broker import (
    CHUNK,
    FILE,
    TCP,
    Broker,
    CapabilityRefused,
    Directory,
    File,
    ReadFile,
    Service,
    ServiceFailed,
    TcpConnection,
    service_contract,
)
from sipkernel.broker._beneath import open_beneath

pytestmark = pytest.mark.timeout(90)

WAIT = 60.0
REFUSED = sk.EventKind.ACCESS_REFUSED


# -- helpers and fixtures ------------------------------------------------------------------


def run(kernel: sk.Kernel, fn, *args, domain: str = "sandbox") -> list[str]:
    """Run ``fn(*args, report)`` to its normal end; return the texts it reported."""
    results, report = procs.report_channel()
    handle = kernel.spawn(fn, *args, report, domain=domain)
    texts = collect(results)
    assert handle.join(WAIT).kind is sk.ExitKind.NORMAL
    return texts


def collect(results: sk.Endpoint) -> list[str]:
    """Every report until the reporting process has gone."""
    texts = []
    with results:
        while True:
            try:
                texts.append(results.recv(timeout=WAIT).text)
            except sk.BrokenChannelError:
                return texts


def refusals(events: sk.EventStream) -> list[sk.Event]:
    """The audit events published so far (they precede the replies that report them)."""
    return [event for event in events.drain() if event.kind is REFUSED]


@pytest.fixture
def broker(kernel: sk.Kernel) -> Iterator[Broker]:
    with Broker(kernel) as b:
        yield b


@pytest.fixture
def events(kernel: sk.Kernel) -> Iterator[sk.EventStream]:
    with kernel.events.stream() as stream:
        yield stream


@pytest.fixture
def granted(tmp_path: Path) -> Path:
    """``granted/`` with a file, links inside and out, next to files it must not reach."""
    (tmp_path / "secret.txt").write_text("not for you")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("not for you either")
    root = tmp_path / "granted"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.txt").write_text("alpha beta")
    (root / "inner-link").symlink_to("notes/a.txt")
    (root / "out-link").symlink_to("../secret.txt")
    (root / "outdir").symlink_to("../outside")
    (root / "abs-link").symlink_to(root / "notes" / "a.txt")
    (root / "loop").symlink_to("loop")
    return root


def echo_server(server: socket.socket, greeting: bytes = b"") -> None:
    """Accept one connection; send ``greeting`` and close, or echo until end of stream."""
    conn, _ = server.accept()
    with conn:
        if greeting:
            conn.recv(100)
            conn.sendall(greeting)
            return
        while data := conn.recv(65536):
            conn.sendall(data)


def start_echo(server: socket.socket, greeting: bytes = b"") -> threading.Thread:
    server.settimeout(WAIT)
    thread = threading.Thread(target=echo_server, args=(server, greeting), name="test-echo")
    thread.start()
    return thread


# -- the error type ------------------------------------------------------------------------


def test_a_refusal_is_a_permission_error_and_a_sipkernel_error() -> None:
    refused = CapabilityRefused("not yours")
    assert isinstance(refused, PermissionError)
    assert isinstance(refused, sk.SipkernelError)
    assert str(refused) == refused.reason == "not yours"


# -- a read-only directory -----------------------------------------------------------------


def test_a_sandbox_reads_a_granted_directory_it_cannot_open_itself(
    kernel: sk.Kernel, broker: Broker, granted: Path
) -> None:
    texts = run(
        kernel, bp.read_granted, broker.grant_directory(granted), str(granted / "notes/a.txt")
    )
    assert texts[0] in ("FileNotFoundError ENOENT", "PermissionError EACCES")
    assert texts[1:] == [
        "ok ['abs-link', 'inner-link', 'loop', 'notes', 'out-link', 'outdir']",
        "ok 10",
        "ok b'alpha beta'",
        "ok b'pha'",
        "ok b'alpha beta'",
    ]


ESCAPES = [
    ("/etc/passwd", "absolute paths are not allowed"),
    ("../secret.txt", "'..' would leave the granted directory"),
    ("notes/../../secret.txt", "'..' would leave the granted directory"),
    ("out-link", "the symbolic link 'out-link' leads outside the granted directory"),
    ("outdir/secret.txt", "the symbolic link 'outdir' leads outside the granted directory"),
    ("abs-link", "'abs-link' is a symbolic link to an absolute path, outside the grant"),
]


def test_every_way_out_of_a_directory_is_refused_in_the_sandbox_and_audited(
    kernel: sk.Kernel, broker: Broker, granted: Path, events: sk.EventStream
) -> None:
    endpoint = broker.grant_directory(granted, name="data")
    grant = broker.grant_of(endpoint)
    texts = run(kernel, bp.read_each, endpoint, [path for path, _ in ESCAPES])
    audited = refusals(events)
    assert len(texts) == len(audited) == len(ESCAPES)
    for (path, why), text, event in zip(ESCAPES, texts, audited, strict=True):
        assert text.startswith(f"CapabilityRefused permission=True {why}"), text
        assert (event.name, event.pid, event.domain) == ("data", grant.pid, "local")
        assert event.detail.startswith("read_each<")
        assert f"in sandbox asked to read {path!r}: {why}" in event.detail


def test_writing_through_the_read_only_directory_is_refused_and_audited(
    kernel: sk.Kernel, broker: Broker, granted: Path, events: sk.EventStream
) -> None:
    texts = run(kernel, bp.write_through_directory, broker.grant_directory(granted))
    assert texts == ["CapabilityRefused permission=True the directory is granted read-only"]
    [event] = refusals(events)
    assert "asked to write 'notes/a.txt': the directory is granted read-only" in event.detail
    assert (granted / "notes" / "a.txt").read_text() == "alpha beta"


def test_the_audit_line_is_logged_at_warning(
    kernel: sk.Kernel, broker: Broker, granted: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sipkernel")
    data = Directory(broker.grant_directory(granted, name="data"), timeout=WAIT)
    with pytest.raises(PermissionError):
        data.read("../secret.txt")
    data.release()
    [record] = [r for r in caplog.records if "access_refused" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "access_refused data<" in record.getMessage()
    assert "the kernel asked to read '../secret.txt'" in record.getMessage()


def test_the_askers_claimed_name_cannot_forge_a_log_line(
    broker: Broker, granted: Path, events: sk.EventStream
) -> None:
    data = Directory(broker.grant_directory(granted), timeout=WAIT)
    with pytest.raises(CapabilityRefused):
        data.call(ReadFile("../secret.txt\nfake", by="me\naccess_granted everything"))
    data.release()
    [event] = refusals(events)
    assert "\n" not in event.detail
    assert event.detail.startswith(
        "me?access_granted everything asked to read '../secret.txt\\nfake'"
    )


@pytest.mark.parametrize(
    "case",
    [
        ("missing.txt", "FileNotFoundError ENOENT"),
        ("notes", "IsADirectoryError EISDIR"),
        ("notes/a.txt/more", "NotADirectoryError ENOTDIR"),
        ("loop", "OSError ELOOP"),
        ("secret.txt", "FileNotFoundError ENOENT"),  # next to the grant, not in it
    ],
)
def test_io_errors_are_oserror_subclasses_not_refusals(
    kernel: sk.Kernel, broker: Broker, granted: Path, events: sk.EventStream, case: tuple[str, str]
) -> None:
    path, expected = case
    endpoint = broker.grant_directory(granted)
    assert run(kernel, bp.read_each, endpoint, [path], domain="local") == [expected]
    assert refusals(events) == []


def test_listing_a_file_is_not_a_directory(
    kernel: sk.Kernel, broker: Broker, granted: Path
) -> None:
    endpoint = broker.grant_directory(granted)
    texts = run(kernel, bp.list_each, endpoint, ["notes/a.txt", "notes", "."], domain="local")
    assert texts == ["NotADirectoryError ENOTDIR", "ok 1", "ok 6"]


def test_only_regular_files_are_read(kernel: sk.Kernel, broker: Broker, granted: Path) -> None:
    os.mkfifo(granted / "pipe")
    texts = run(kernel, bp.read_each, broker.grant_directory(granted), ["pipe"], domain="local")
    assert texts == [
        "CapabilityRefused permission=True 'pipe' is not a regular file; only files are read"
    ]


def test_a_large_file_is_read_in_chunks_below_the_message_limit(
    kernel: sk.Kernel, broker: Broker, granted: Path
) -> None:
    content = os.urandom(3 * (1 << 20) + 17)
    (granted / "big.bin").write_bytes(content)
    results, report = procs.report_channel()
    handle = kernel.spawn(
        bp.read_large, broker.grant_directory(granted), "big.bin", report, domain="sandbox"
    )
    message = results.recv(timeout=WAIT)
    assert handle.join(WAIT).kind is sk.ExitKind.NORMAL
    assert (message.count, message.numbers) == (len(content), [sum(content) % 65521])
    assert CHUNK < (1 << 20)


def test_a_long_listing_comes_in_pages(broker: Broker, tmp_path: Path) -> None:
    names = sorted(f"{n:05d}-" + "x" * 200 for n in range(3000))  # about 600 KiB of names
    for name in names:
        (tmp_path / name).touch()
    data = Directory(broker.grant_directory(tmp_path), timeout=WAIT)
    entries = data.list()
    data.release()
    assert [e.name for e in entries] == names
    assert {e.kind for e in entries} == {"file"}


def test_paths_resolve_beneath_the_directory(granted: Path) -> None:
    (granted / "notes" / "deeper").mkdir()
    (granted / "notes" / "deeper" / "up").symlink_to("../a.txt")
    root = os.open(granted, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in ("notes/a.txt", "./notes//a.txt", "notes/deeper/../a.txt", "notes/deeper/up"):
            with open_beneath(root, path, os.O_RDONLY) as fd:
                assert os.read(fd, 100) == b"alpha beta", path
        with pytest.raises(CapabilityRefused), open_beneath(root, "notes/../..", os.O_RDONLY):
            pass
        with pytest.raises(OSError, match="NUL"), open_beneath(root, "a\0b", os.O_RDONLY):
            pass
    finally:
        os.close(root)


# -- one file ------------------------------------------------------------------------------


def test_a_sandbox_writes_the_one_granted_file(
    kernel: sk.Kernel, broker: Broker, tmp_path: Path
) -> None:
    target = tmp_path / "report.txt"  # does not exist yet: a writable grant creates it
    texts = run(kernel, bp.write_report, broker.grant_file(target), str(target))
    assert texts[0] in ("FileNotFoundError ENOENT", "PermissionError EACCES")
    assert texts[1:] == [
        "ok 5",
        "ok 6",
        "ok 1",
        "ok b'Jello world'",
        "ok b'wor'",
        "ok None",
        "ok 5",
    ]
    assert target.read_bytes() == b"Jello"


def test_a_read_only_file_refuses_writes_and_audits_them(
    kernel: sk.Kernel, broker: Broker, tmp_path: Path, events: sk.EventStream
) -> None:
    target = tmp_path / "data.txt"
    target.write_bytes(b"fixed")
    endpoint = broker.grant_file(target, writable=False, name="data file")
    texts = run(kernel, bp.write_denied, endpoint, 3)
    refused = "CapabilityRefused permission=True the file is granted read-only"
    assert texts == [refused, refused, "ok b'fixed'"]
    details = [event.detail for event in refusals(events)]
    assert [d.split(" asked ")[1] for d in details] == [
        "to write 3 bytes at the end: the file is granted read-only",
        f"to truncate to {1 << 30} bytes: the file is granted read-only",
    ]
    assert target.read_bytes() == b"fixed"


def test_a_file_grant_can_cap_the_size(
    kernel: sk.Kernel, broker: Broker, tmp_path: Path, events: sk.EventStream
) -> None:
    endpoint = broker.grant_file(tmp_path / "capped.txt", max_size=10)
    texts = run(kernel, bp.write_denied, endpoint, 11)
    refused = "CapabilityRefused permission=True the file may not grow beyond 10 bytes"
    assert texts == [refused, refused, "ok b''"]
    assert len(refusals(events)) == 2


def test_a_large_write_is_split_below_the_message_limit(
    kernel: sk.Kernel, broker: Broker, tmp_path: Path
) -> None:
    results, report = procs.report_channel()
    size = 2 * (1 << 20) + 256
    handle = kernel.spawn(
        bp.write_large, broker.grant_file(tmp_path / "big"), size, report, domain="sandbox"
    )
    message = results.recv(timeout=WAIT)
    assert handle.join(WAIT).kind is sk.ExitKind.NORMAL
    assert (message.ok, message.count) == (True, size)
    assert (tmp_path / "big").stat().st_size == size


def test_granting_what_does_not_exist_fails_at_the_grant(broker: Broker, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        broker.grant_file(tmp_path / "missing", writable=False)
    with pytest.raises(FileNotFoundError):
        broker.grant_directory(tmp_path / "missing")
    (tmp_path / "plain").touch()
    with pytest.raises(NotADirectoryError):
        broker.grant_directory(tmp_path / "plain")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(sk.UsageError, match="not a regular file"):
        broker.grant_file(tmp_path / "pipe", writable=False)
    with pytest.raises(IsADirectoryError):
        broker.grant_file(tmp_path)
    assert broker.grants() == ()


# -- TCP -----------------------------------------------------------------------------------


def test_a_sandbox_reaches_one_address_only_through_its_capability_until_revoked(
    kernel: sk.Kernel, broker: Broker, events: sk.EventStream
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        echo = start_echo(server)
        endpoint = broker.grant_tcp("127.0.0.1", port)
        grant = broker.grant_of(endpoint)
        results, report = procs.report_channel()
        waiting, go = sk.channel(STREAM)
        handle = kernel.spawn(
            bp.tcp_echo_twice, endpoint, "127.0.0.1", port, waiting, report, domain="sandbox"
        )
        assert results.recv(timeout=WAIT).text == "OSError EAFNOSUPPORT"  # no network of its own
        assert results.recv(timeout=WAIT).text == f"ok ('127.0.0.1:{port}', b'ping')"
        reason = broker.revoke(endpoint)
        echo.join(WAIT)  # revoking closed the relayed connection: the server saw its end
        go.send(Item(0))
        go.close()
        texts = collect(results)
    assert handle.join(WAIT).kind is sk.ExitKind.NORMAL
    assert reason.describe() == "killed: revoked by the broker"
    assert texts == ["BrokenChannelError killed: revoked by the broker"]
    exited = events.wait_for(lambda e: e.kind is sk.EventKind.EXITED and e.pid == grant.pid, 5)
    assert exited.reason == reason
    assert not echo.is_alive()


def test_a_tcp_capability_reads_to_the_end_of_the_stream(kernel: sk.Kernel, broker: Broker) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server_thread = start_echo(server, greeting=b"hello\nbye\n")
        endpoint = broker.grant_tcp("127.0.0.1", server.getsockname()[1])
        texts = run(kernel, bp.tcp_until_eof, endpoint, domain="local")
        server_thread.join(WAIT)
    assert texts == ["hello\nbye\n"]


def test_a_refused_connection_is_a_connection_refused_error(broker: Broker) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connecting is refused
        conn = TcpConnection(broker.grant_tcp("127.0.0.1", port), timeout=WAIT)
        with pytest.raises(ConnectionRefusedError):
            conn.connect()
        with pytest.raises(ConnectionRefusedError):  # the capability itself is still there
            conn.send(b"x")
        conn.release()


def test_no_file_or_tcp_request_can_name_another_target() -> None:
    fields = {name for t in FILE.message_types + TCP.message_types for name in t.__struct_fields__}
    assert fields.isdisjoint({"path", "name", "host", "port", "address"}), fields


def test_a_tcp_grant_needs_a_port(broker: Broker) -> None:
    with pytest.raises(sk.UsageError, match="port"):
        broker.grant_tcp("127.0.0.1", 0)


# -- an application's own service ----------------------------------------------------------


def test_a_service_shows_one_user_only_their_own_row(
    kernel: sk.Kernel, broker: Broker, events: sk.EventStream
) -> None:
    endpoint = broker.grant_service(bp.balance_of, bp.ACCOUNTS, "alice", name="accounts of alice")
    texts = run(kernel, bp.ask_balances, endpoint, ["alice", "bob"])
    assert texts == [
        "ok Balance(user='alice', amount=120)",
        "CapabilityRefused permission=True only alice's account is visible",
    ]
    [event] = refusals(events)
    assert event.name == "accounts of alice"
    assert (
        event.detail == "its holder asked GetBalance(user='bob'): only alice's account is visible"
    )


def test_a_service_contract_is_a_request_reply_loop() -> None:
    assert bp.ACCOUNTS.spec == (
        "state Ready: (GetBalance?) -> (Balance! or Refused! or IOFailed! or Failed!) -> Ready;"
    )
    assert bp.ACCOUNTS.module == "broker_procs"


def test_a_service_error_reaches_the_holder_typed(kernel: sk.Kernel, broker: Broker) -> None:
    endpoint = broker.grant_service(bp.balance_of, bp.ACCOUNTS, "dave", name="accounts of dave")
    assert run(kernel, bp.ask_balances, endpoint, ["dave"], domain="local") == [
        "FileNotFoundError ENOENT"
    ]


@pytest.mark.parametrize("handler", [bp.broken_handler, bp.wrong_reply_handler])
def test_a_handler_bug_is_a_service_failure_and_the_service_goes_on(
    broker: Broker, handler, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = Service(broker.grant_service(handler, bp.ACCOUNTS, name="buggy"), timeout=WAIT)
    for _ in range(2):
        with pytest.raises(ServiceFailed):
            accounts.call(bp.GetBalance("alice"))
    accounts.release()
    assert any(record.levelno >= logging.ERROR for record in caplog.records)


def test_a_service_needs_an_importable_handler_and_a_service_contract(broker: Broker) -> None:
    with pytest.raises(sk.NotImportableError):
        broker.grant_service(lambda request: request, bp.ACCOUNTS, name="lambda")
    with pytest.raises(sk.UsageError, match="service_contract"):
        broker.grant_service(bp.balance_of, procs.SERVICE, name="plain contract")
    with pytest.raises(sk.UsageError):
        service_contract("Empty", requests=[], replies=[bp.Balance])
    assert broker.grants() == ()


# -- moving and revoking -------------------------------------------------------------------


def test_a_capability_moved_in_a_message_works_for_the_receiver_only(
    kernel: sk.Kernel, broker: Broker, granted: Path
) -> None:
    inbox, outbox = sk.channel(CARRIER)
    first_results, first_report = procs.report_channel()
    second_results, second_report = procs.report_channel()
    second = kernel.spawn(bp.adopt_and_read, inbox, second_report, domain="sandbox")
    first = kernel.spawn(
        bp.read_then_pass_on,
        broker.grant_directory(granted),
        outbox,
        first_report,
        domain="sandbox",
    )
    assert collect(first_results) == ["ok b'alpha beta'", "EndpointMovedError"]
    assert collect(second_results) == ["ok b'alpha beta'"]
    assert first.join(WAIT).kind is sk.ExitKind.NORMAL
    assert second.join(WAIT).kind is sk.ExitKind.NORMAL


def test_revoking_ends_the_serving_process(broker: Broker, granted: Path) -> None:
    endpoint = broker.grant_directory(granted)
    grant = broker.grant_of(endpoint)
    data = Directory(endpoint, timeout=WAIT)
    assert data.read("notes/a.txt") == b"alpha beta"
    assert broker.grants() == (grant,)
    reason = broker.revoke(endpoint)
    assert reason.kind is sk.ExitKind.KILLED
    assert grant.handle.exit_reason == reason
    assert not grant.is_alive
    assert broker.grants() == ()
    with pytest.raises(sk.BrokenChannelError, match="revoked by the broker"):
        data.read("notes/a.txt")
    data.release()


def test_a_holder_letting_go_ends_the_serving_process(broker: Broker, granted: Path) -> None:
    endpoint = broker.grant_directory(granted)
    grant = broker.grant_of(endpoint)
    Directory(endpoint).release()
    assert grant.handle.join(WAIT).kind is sk.ExitKind.NORMAL
    assert broker.grants() == ()


def test_closing_the_broker_revokes_every_grant(kernel: sk.Kernel, tmp_path: Path) -> None:
    broker = Broker(kernel)
    endpoints = [broker.grant_directory(tmp_path), broker.grant_file(tmp_path / "f")]
    grants = broker.grants()
    broker.close()
    assert [g.handle.exit_reason.describe() for g in grants] == [
        "killed: revoked by the broker"
    ] * 2
    with pytest.raises(sk.UsageError, match="closed"):
        broker.grant_directory(tmp_path)
    with pytest.raises(sk.BrokenChannelError):
        Directory(endpoints[0]).stat(".")
    with pytest.raises(sk.BrokenChannelError):
        File(endpoints[1]).size()
    for endpoint in endpoints:
        endpoint.close()


def test_an_endpoint_the_broker_did_not_grant_cannot_be_revoked(broker: Broker) -> None:
    mine, theirs = sk.channel(procs.ECHO)
    with pytest.raises(sk.UsageError, match="not an endpoint this broker granted"):
        broker.revoke(theirs)
    mine.close()
    theirs.close()
