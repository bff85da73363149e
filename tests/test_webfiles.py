"""The WebFiles example: every configuration reads right, corruption and crashes are handled.

The application (``examples/webfiles``) runs through the public API: its
manifest, ``Application`` and the kernel's events. The image is prepared
once per module in a shared data directory; a test that damages it works on
its own copy.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import sys
import tomllib
from pathlib import Path

import pytest

import sipkernel as sk
from sipkernel.app import Application, Blueprint, load_blueprint
from sipkernel.broker import Broker, File

WEBFILES = Path(__file__).resolve().parent.parent / "examples" / "webfiles"
MANIFEST = WEBFILES / "app.toml"
if str(WEBFILES) not in sys.path:  # the unit tests import the package directly
    sys.path.insert(0, str(WEBFILES))

from webfiles import image  # noqa: E402
from webfiles.catalogue import CLASS_UNITS, DIRECTORIES, FileSpec, catalogue, content  # noqa: E402
from webfiles.disk import BlockDevice  # noqa: E402
from webfiles.fs import BlockCache, FileSystem  # noqa: E402
from webfiles.protocol import (  # noqa: E402
    BLOCK_SIZE,
    MAX_BLOCKS,
    MAX_READ,
    BlockData,
    BlockError,
    FileData,
    FileError,
    Lookup,
    ReadBlocks,
    ReadRange,
)
from webfiles.workload import CLASS_WEIGHTS, FILE_WEIGHTS, FileChooser  # noqa: E402

CONFIGURATIONS = list(tomllib.loads(MANIFEST.read_text())["isolation"])
READS = 300
"""Reads in a short run: every class is read, and each configuration takes well under a second."""

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def blueprint() -> Blueprint:
    return load_blueprint(MANIFEST)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a fresh image, shared by the tests that only read it."""
    directory = tmp_path_factory.mktemp("webfiles")
    image.prepare(directory)
    return directory


def run(blueprint: Blueprint, configuration: str, data: Path, reads: int = READS) -> sk.ExitReason:
    """Run the application to the client's end; its final exit reason."""
    with (
        sk.Kernel(grace=2.0) as kernel,
        Application(
            blueprint,
            kernel,
            configuration=configuration,
            data_dir=data,
            overrides={"client": {"reads": reads}},
        ) as application,
    ):
        reason = application.wait(TIMEOUT)
    assert reason is not None, f"{configuration}: the client did not finish in {TIMEOUT} s"
    return reason


# -- the application, end to end ---------------------------------------------------------


def test_the_manifest_declares_the_four_configurations(blueprint: Blueprint) -> None:
    assert CONFIGURATIONS == ["monolithic", "microkernel", "sandboxed", "mixed"]
    assert blueprint.configuration(None) == "microkernel"


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_every_configuration_reads_and_verifies_every_byte(
    blueprint: Blueprint, data_dir: Path, configuration: str, capfd: pytest.CaptureFixture[str]
) -> None:
    reason = run(blueprint, configuration, data_dir)
    assert reason.is_normal, reason.describe()
    out = capfd.readouterr().out
    summary = [line for line in out.splitlines() if line.startswith("webfiles:")]
    assert len(summary) == 1, out
    assert f"webfiles: {READS} reads, " in summary[0]
    assert "all verified" in summary[0]
    client_kind = {"monolithic": "local", "microkernel": "process"}.get(configuration, "sandbox")
    assert summary[0].endswith(f"isolation {client_kind}")


def first_read(seed: int = 1) -> FileSpec:
    """The file the client reads first (with the manifest's seed)."""
    return FileChooser(catalogue(), seed).choose()


@pytest.fixture
def corrupted(data_dir: Path, tmp_path: Path) -> tuple[Path, FileSpec, int]:
    """A copy of the image with one byte of the client's first file flipped."""
    shutil.copy(data_dir / image.IMAGE_NAME, tmp_path / image.IMAGE_NAME)
    spec = first_read()
    offset = spec.size // 2
    entry = next(e for e in image.plan(catalogue()).entries if e.name == spec.name)
    with (tmp_path / image.IMAGE_NAME).open("r+b") as disk:
        disk.seek(entry.first * BLOCK_SIZE + offset)
        byte = disk.read(1)[0]
        disk.seek(-1, os.SEEK_CUR)
        disk.write(bytes([byte ^ 0xFF]))
    return tmp_path, spec, offset


@pytest.mark.parametrize("configuration", ["monolithic", "microkernel", "sandboxed"])
def test_corruption_ends_the_run_with_an_exception_naming_file_and_offset(
    blueprint: Blueprint, corrupted: tuple[Path, FileSpec, int], configuration: str
) -> None:
    data, spec, offset = corrupted
    reason = run(blueprint, configuration, data)
    assert reason.kind is sk.ExitKind.EXCEPTION, reason.describe()
    assert reason.exc_type == "webfiles.client.CorruptData"
    assert f"{spec.name}: byte {offset} of {spec.size} is " in reason.message
    assert image.is_current(data / image.IMAGE_NAME, image.plan(catalogue()))  # not rewritten


def test_a_killed_disk_driver_is_restarted_and_no_read_is_lost(
    blueprint: Blueprint, data_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    reads = 3000  # half a second or more, so the kill lands mid-run (the checks hold anyway)
    with sk.Kernel(grace=2.0) as kernel, kernel.events.stream() as events:
        application = Application(
            blueprint,
            kernel,
            configuration="microkernel",
            data_dir=data_dir,
            overrides={"client": {"reads": reads}},
        )
        with application:
            events.wait_for(lambda e: e.kind is sk.EventKind.SPAWNED and e.name == "client", 30)
            (disk,) = [p for p in kernel.processes() if p.name == "disk"]
            os.kill(disk.domain.os_pid, signal.SIGKILL)
            events.wait_for(lambda e: e.kind is sk.EventKind.RESTARTED and e.name == "disk", 30)
            reason = application.wait(TIMEOUT)
            exits = list(application.exits)
    assert reason is not None
    assert reason.is_normal, reason.describe()
    (killed,) = [e for e in exits if e.name == "disk"]
    assert killed.reason is not None
    assert killed.reason.describe() == "signal: SIGKILL"
    assert [e.name for e in exits if e.name == "fs"] == []  # it re-dialled; it never failed
    out = capfd.readouterr().out
    assert f"webfiles: {reads} reads, " in out
    assert "all verified" in out


# -- the disk image ------------------------------------------------------------------


def test_the_layout_packs_every_file_on_block_boundaries() -> None:
    files = catalogue()
    layout = image.plan(files)
    superblock = layout.superblock
    assert len(files) == superblock.file_count == DIRECTORIES * 36
    assert superblock.dir_first == 1
    assert superblock.dir_blocks == -(-len(files) * image.ENTRY.size // BLOCK_SIZE)
    next_block = 1 + superblock.dir_blocks
    for spec, entry in zip(files, layout.entries, strict=True):
        assert (entry.name, entry.size, entry.first) == (spec.name, spec.size, next_block)
        next_block += entry.blocks
    assert superblock.block_count == next_block
    assert 4 << 20 < superblock.block_count * BLOCK_SIZE < 24 << 20
    assert [spec.size for spec in files[:9]] == [102 * i for i in range(1, 10)]
    assert max(spec.size for spec in files) == 9 * CLASS_UNITS[3] == 921_600
    assert files[35].name == "dir00000/class3_8"


def test_the_image_holds_the_superblock_directory_and_contents(data_dir: Path) -> None:
    raw = (data_dir / image.IMAGE_NAME).read_bytes()
    superblock = image.Superblock.decode(raw[:BLOCK_SIZE])
    assert superblock == image.plan(catalogue()).superblock
    assert len(raw) == superblock.block_count * BLOCK_SIZE
    start = superblock.dir_first * BLOCK_SIZE
    table = raw[start : start + superblock.dir_blocks * BLOCK_SIZE]
    directory = image.decode_directory(table, superblock.file_count)
    for spec in catalogue():
        entry = directory[spec.name]
        at = entry.first * BLOCK_SIZE
        assert raw[at : at + spec.size] == content(spec.name, spec.size)
        assert raw[at + spec.size : (entry.first + entry.blocks) * BLOCK_SIZE].count(0) == (
            entry.blocks * BLOCK_SIZE - spec.size
        )


def test_contents_depend_on_the_name_alone() -> None:
    assert content("dir00000/class0_0", 102) == content("dir00000/class0_0", 200)[:102]
    assert content("dir00000/class0_0", 102) != content("dir00001/class0_0", 102)


def test_prepare_rewrites_a_stale_image_but_never_checks_contents(tmp_path: Path) -> None:
    path = image.prepare(tmp_path)
    layout = image.plan(catalogue())
    with path.open("r+b") as disk:  # damage a file's data: still current
        disk.seek(layout.entries[0].first * BLOCK_SIZE)
        disk.write(b"\xff\xff")
    assert image.prepare(tmp_path) == path
    assert path.read_bytes()[layout.entries[0].first * BLOCK_SIZE :][:2] == b"\xff\xff"
    with path.open("r+b") as disk:  # another version in the superblock: stale
        disk.seek(8)
        disk.write((image.VERSION + 1).to_bytes(4, "little"))
    assert not image.is_current(path, layout)
    image.prepare(tmp_path)
    assert image.is_current(path, layout)
    assert path.read_bytes()[layout.entries[0].first * BLOCK_SIZE :][:2] != b"\xff\xff"
    with path.open("r+b") as disk:  # cut short: stale
        disk.truncate(BLOCK_SIZE * 10)
    assert not image.is_current(path, layout)


def test_a_superblock_of_another_kind_is_refused() -> None:
    with pytest.raises(image.ImageError, match="bad magic"):
        image.Superblock.decode(bytes(BLOCK_SIZE))


# -- the disk driver over a real capability ------------------------------------------------


def test_the_disk_driver_reads_through_its_capability_and_refuses_bad_requests(
    data_dir: Path,
) -> None:
    path = data_dir / image.IMAGE_NAME
    raw = path.read_bytes()
    blocks = len(raw) // BLOCK_SIZE
    with sk.Kernel(grace=2.0) as kernel, Broker(kernel) as broker:
        grant = File(broker.grant_file(path))
        try:
            device = BlockDevice(grant)
            good = device.answer(ReadBlocks(blocks - MAX_BLOCKS, MAX_BLOCKS))
            refused = [
                device.answer(ReadBlocks(first, count))
                for first, count in [(blocks - 1, 2), (-1, 1), (0, 0), (0, MAX_BLOCKS + 1)]
            ]
        finally:
            grant.release()
    assert device.block_count == blocks
    assert isinstance(good, BlockData)
    assert good.data == raw[(blocks - MAX_BLOCKS) * BLOCK_SIZE :]
    assert all(isinstance(reply, BlockError) for reply in refused), refused
    assert isinstance(refused[0], BlockError)
    assert refused[0].reason == f"blocks {blocks - 1}..{blocks} are outside 0..{blocks - 1}"


# -- the file system over an in-memory disk ----------------------------------------------


class MemoryDisk:
    """A block source over the image's bytes, counting the requests it gets."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.requests: list[tuple[int, int]] = []

    def read(self, first: int, count: int) -> bytes:
        self.requests.append((first, count))
        return self.raw[first * BLOCK_SIZE : (first + count) * BLOCK_SIZE]


@pytest.fixture
def memory_fs(data_dir: Path) -> tuple[FileSystem, MemoryDisk]:
    disk = MemoryDisk((data_dir / image.IMAGE_NAME).read_bytes())
    return FileSystem(BlockCache(disk)), disk


def test_a_large_read_is_one_disk_request_and_one_reply(
    memory_fs: tuple[FileSystem, MemoryDisk],
) -> None:
    filesystem, disk = memory_fs
    name = "dir00002/class3_8"
    disk.requests.clear()
    reply = filesystem.read(ReadRange(name, 1000, 10 * MAX_READ))
    assert isinstance(reply, FileData)
    assert len(disk.requests) == 1
    assert reply.data == content(name, 921_600)[1000 : 1000 + MAX_READ]
    assert reply.file_size == 921_600
    rest = filesystem.read(ReadRange(name, 1000 + MAX_READ, MAX_READ))
    assert isinstance(rest, FileData)
    assert rest.data == content(name, 921_600)[1000 + MAX_READ :]


def test_small_reads_are_cached(memory_fs: tuple[FileSystem, MemoryDisk]) -> None:
    filesystem, disk = memory_fs
    disk.requests.clear()
    for _ in range(3):
        reply = filesystem.read(ReadRange("dir00001/class1_2", 5, 3000))
        assert isinstance(reply, FileData)
        assert reply.data == content("dir00001/class1_2", 3072)[5:3005]
    assert len(disk.requests) == 1


def test_unknown_files_and_bad_ranges_are_errors_of_the_contract(
    memory_fs: tuple[FileSystem, MemoryDisk],
) -> None:
    filesystem, _ = memory_fs
    assert isinstance(filesystem.lookup(Lookup("nope")), FileError)
    assert isinstance(filesystem.read(ReadRange("nope", 0, 1)), FileError)
    assert isinstance(filesystem.read(ReadRange("dir00000/class0_0", 103, 1)), FileError)
    end = filesystem.read(ReadRange("dir00000/class0_0", 102, 1))
    assert isinstance(end, FileData)
    assert end.data == b""


# -- the workload --------------------------------------------------------------------------


def test_the_chooser_is_deterministic_per_seed() -> None:
    files = catalogue()
    one, same, other = FileChooser(files, 7), FileChooser(files, 7), FileChooser(files, 8)
    sequence = [one.choose() for _ in range(200)]
    assert sequence == [same.choose() for _ in range(200)]
    assert sequence != [other.choose() for _ in range(200)]


def test_the_chooser_follows_specweb99s_mix() -> None:
    draws = 40_000
    chooser = FileChooser(catalogue(), 1)
    picks = [chooser.choose() for _ in range(draws)]
    classes = collections.Counter(spec.size_class for spec in picks)
    for size_class, weight in enumerate(CLASS_WEIGHTS):
        assert classes[size_class] / draws == pytest.approx(weight, abs=0.01)
    class1 = [spec.index for spec in picks if spec.size_class == 1]
    files = collections.Counter(class1)
    for index, weight in enumerate(FILE_WEIGHTS):
        assert files[index] / len(class1) == pytest.approx(weight, abs=0.015)
    assert files.most_common(1)[0][0] == 4  # the middle file is the most popular
    directories = collections.Counter(spec.directory for spec in picks)
    assert all(n / draws == pytest.approx(1 / DIRECTORIES, abs=0.015) for n in directories.values())
