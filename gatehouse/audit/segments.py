"""Append-only segment files per node: a record is durable once its batch is fsynced here.

Layout: `<data-dir>/audit/<node>/<first seq, 12 digits>.jsonl`, one JSON record a line. A line cut short by a
crash was never acknowledged (its fsync had not returned), so recovery drops it, and says so: in the log, and in
the chain itself with a record of what was cut (`audit verify` shows it as a repair, apart from tampering).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gatehouse.audit.chain import GENESIS, Linked, link
from gatehouse.audit.records import AuditEvent, Tag, body_of

log = logging.getLogger(__name__)

SEGMENT_BYTES = 64 * 1024 * 1024
TAIL_CHUNK = 64 * 1024


def segment_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.jsonl") if p.stem.isdigit() and len(p.stem) == 12)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:012d}.jsonl"


def read_segment(path: Path, offset: int = 0) -> Iterator[tuple[Linked, int]]:
    """Complete records from `offset`, each with the offset just after it; stops at a torn last line."""
    with path.open("rb") as f:
        f.seek(offset)
        position = offset
        for line in f:
            if not line.endswith(b"\n"):
                return
            position += len(line)
            yield Linked.from_line(line), position


def _line_start(f: BinaryIO, end: int) -> int:
    """Offset where the line that ends at `end` starts: just after the newline before it, or 0."""
    position = end
    while position > 0:
        step = min(TAIL_CHUNK, position)
        f.seek(position - step)
        found = f.read(step).rfind(b"\n")
        if found >= 0:
            return position - step + found + 1
        position -= step
    return 0


@dataclass(frozen=True, slots=True)
class Cut:
    """What `cut_torn_tail` took off a file: `length` bytes from `offset` on."""

    file: str
    offset: int
    length: int
    sha256: str

    def describe(self) -> str:
        return (f"a torn last line was cut when the node started: {self.length} bytes at offset {self.offset} of "
                f"{self.file}, a write a crash interrupted (never acknowledged)")


def cut_torn_tail(path: Path) -> Cut | None:
    """Drop an unfinished last line (never acknowledged) so that the next record starts on a line of its own;
    returns what was cut, which is logged (the caller records it where it belongs)."""
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - 1, 0))
        if size == 0 or f.read(1) == b"\n":
            return None
        start = _line_start(f, size)
        f.seek(start)
        cut = Cut(path.name, start, size - start, hashlib.sha256(f.read()).hexdigest())
        f.truncate(start)
        os.fsync(f.fileno())
    log.warning("audit: cut a torn last line off %s: %d bytes at offset %d (sha256 %s), a write that never "
                "finished, so never acknowledged", path, cut.length, cut.offset, cut.sha256)
    return cut


def last_line(path: Path) -> bytes | None:
    """The last complete line of a file, read from the end (segments and checkpoint files grow large)."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - 1, 0))
        if size == 0 or f.read(1) != b"\n":
            end = _line_start(f, size)  # a torn tail: the complete line is the one before it
        else:
            end = size
        if end == 0:
            return None
        start = _line_start(f, end - 1)
        f.seek(start)
        return f.read(end - start)


def recover(folder: Path, node: str = "") -> tuple[int, str]:
    """The last durable sequence number and hash of a node (0 and the genesis hash when it has none).

    A torn tail is cut off the last segment so that new records follow the last complete one, and the cut is
    recorded in the chain (its own record, fsynced, tagged `audit:segment:repaired`), so whoever cuts also
    records: the writer at start and the CLI alike. An empty last segment is removed. `node` defaults to the
    folder's name, as the layout has it.
    """
    node = node or folder.name
    files = segment_files(folder)
    cuts: list[Cut] = []
    seq, digest = 0, GENESIS
    while files:
        cut = cut_torn_tail(files[-1])
        if cut is not None:
            cuts.append(cut)
        line = last_line(files[-1])
        if line is not None:
            record = Linked.from_line(line)
            seq, digest = record.seq, record.hash
            break
        files.pop().unlink()
    if cuts:
        records = []
        for cut in cuts:
            event = AuditEvent(Tag.AUDIT_REPAIRED, "audit", actor="recovery", path=cut.file, reason=cut.describe())
            records.append(link(node, seq + 1, digest, body_of(event)))
            seq, digest = records[-1].seq, records[-1].hash
        appender = SegmentAppender(folder)
        try:
            appender.append(records)
        finally:
            appender.close()
        log.warning("audit: node %s recorded the cut as #%d", node, seq)
    return seq, digest


class SegmentAppender:
    """Appends batches of linked records and fsyncs them; rotates to a new file past SEGMENT_BYTES."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._file: Path | None = None
        self._fd: int | None = None
        self._size = 0

    def append(self, records: list[Linked]) -> None:
        if not records:
            return
        if self._fd is None or self._size >= SEGMENT_BYTES:
            self._open(records[0].seq)
        assert self._fd is not None
        data = b"".join(r.line() for r in records)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Disk full or the like: take back a partly written batch so that the next one starts on a line of
            # its own (its records were refused, not acknowledged).
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self.close()  # reopened (and the torn tail cut by the next recovery) on the next append
            raise
        self._size += len(data)

    def _open(self, first_seq: int) -> None:
        self.close()
        files = segment_files(self.folder)
        if files and files[-1].stat().st_size < SEGMENT_BYTES:
            path = files[-1]
        else:
            path = self.folder / segment_name(first_seq)
        if path.exists():
            cut_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file, self._size = path, os.fstat(self._fd).st_size
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def node_lock(folder: Path) -> Iterator[None]:
    """One writer per node folder at a time (the CLI shares a node between its processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
