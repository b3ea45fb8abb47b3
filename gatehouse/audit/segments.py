"""Append-only segment files per node: a record is durable once its batch is fsynced here.

Layout: `<data-dir>/audit/<node>/<first seq, 12 digits>.jsonl`, one JSON record a line. A line cut short by a
crash was never acknowledged (its fsync had not returned), so recovery drops it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gatehouse.audit.chain import GENESIS, Linked

SEGMENT_BYTES = 64 * 1024 * 1024


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


def recover(folder: Path) -> tuple[int, str]:
    """The last durable sequence number and hash of a node (0 and the genesis hash when it has none).

    A torn tail is cut off the last segment so that new records follow the last complete one.
    """
    files = segment_files(folder)
    while files:
        last = files[-1]
        seq, digest, end = 0, GENESIS, 0
        for record, position in read_segment(last):
            seq, digest, end = record.seq, record.hash, position
        if end < last.stat().st_size:
            with last.open("r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        if seq:
            return seq, digest
        if end == 0:
            last.unlink()
            files.pop()
            continue
        return seq, digest
    return 0, GENESIS


def cut_torn_tail(path: Path) -> None:
    """Drop an unfinished last line (never acknowledged) so that the next record starts on a line of its own."""
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = max(0, size - 1024 * 1024)
        f.seek(start)
        tail = f.read()
        newline = tail.rfind(b"\n")
        f.truncate(start + newline + 1 if newline >= 0 else 0)
        os.fsync(f.fileno())


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
