"""Copies records from segment files into the database: idempotent, resumable, in order per node.

Where it resumes is asked of the database (the highest sequence number it has for the node), so a crash or
an outage between writing a segment and shipping it loses nothing and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit.chain import Linked
from gatehouse.audit.segments import read_segment, segment_files
from gatehouse.audit.signing import ANCHOR, Checkpoint, checkpoint_file
from gatehouse.db.models import AuditCheckpoint, AuditRecord

log = logging.getLogger(__name__)
BATCH = 1_000


def row_of(record: Linked) -> dict[str, object]:
    row = dict(record.body)
    row["at"] = datetime.fromisoformat(str(row["at"]))
    row.update(node=record.node, seq=record.seq, prev_hash=record.prev_hash, hash=record.hash)
    return row


def shipped_up_to(factory: sessionmaker[Session], node: str) -> int:
    """The highest sequence number the database has for a node, counting records pruned under an anchor."""
    with factory() as session:
        record = session.scalar(select(func.max(AuditRecord.seq)).where(AuditRecord.node == node))
        anchor = session.scalar(select(func.max(AuditCheckpoint.seq))
                                .where(AuditCheckpoint.node == node, AuditCheckpoint.kind == ANCHOR))
        return max(int(record or 0), int(anchor or 0))


@dataclass
class _Cursor:
    seq: int = 0
    file: Path | None = None
    offset: int = 0
    checkpoint_offset: int = 0


def checkpoint_row(point: Checkpoint) -> dict[str, object]:
    return {"node": point.node, "kind": point.kind, "seq": point.seq, "hash": point.hash, "at": point.at,
            "key_id": point.key_id, "signature": point.signature}


def insert_ignoring_duplicates(session: Session, model: type[AuditRecord] | type[AuditCheckpoint],
                               keys: list[str], rows: list[dict[str, object]]) -> None:
    """Insert rows, skipping those whose `keys` are already there: shipping twice is harmless."""
    maker = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # The table, not the mapped class: a Core executemany, without the ORM's bulk path (several times its cost).
    table = cast(Table, model.__table__)
    session.execute(maker(table).on_conflict_do_nothing(index_elements=keys), rows)


@dataclass
class Shipper:
    factory: sessionmaker[Session]
    root: Path
    cursors: dict[str, _Cursor] = field(default_factory=dict)

    def ship_node(self, node: str) -> int:
        """Ship what the database lacks for one node; returns the number of records sent."""
        folder = self.root / node
        cursor = self.cursors.get(node)
        if cursor is None:
            cursor = self.cursors[node] = _Cursor(shipped_up_to(self.factory, node))
        sent = 0
        pending: list[dict[str, object]] = []
        position: tuple[Path | None, int] = (cursor.file, cursor.offset)
        for path in segment_files(folder):
            if cursor.file is not None and path < cursor.file:
                continue
            start = cursor.offset if path == cursor.file else 0
            for record, end in read_segment(path, start):
                position = (path, end)
                if record.seq <= cursor.seq:
                    continue
                pending.append(row_of(record))
                if len(pending) >= BATCH:
                    sent += self._flush(node, cursor, pending, position)
                    pending = []
        sent += self._flush(node, cursor, pending, position)
        self._ship_checkpoints(folder, cursor)
        return sent

    def _ship_checkpoints(self, folder: Path, cursor: _Cursor) -> None:
        """Checkpoints follow the records they sign: one is shipped once its records are in the database."""
        path = checkpoint_file(folder)
        if not path.exists() or path.stat().st_size <= cursor.checkpoint_offset:
            return
        rows, offset = [], cursor.checkpoint_offset
        with path.open("rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break
                point = Checkpoint.from_json(line)
                if point.seq > cursor.seq:
                    break
                rows.append(checkpoint_row(point))
                offset += len(line)
        if rows:
            with self.factory.begin() as session:
                insert_ignoring_duplicates(session, AuditCheckpoint, ["node", "kind", "seq"], rows)
        cursor.checkpoint_offset = offset

    def _flush(self, node: str, cursor: _Cursor, rows: list[dict[str, object]],
               position: tuple[Path | None, int]) -> int:
        if rows:
            with self.factory.begin() as session:
                insert_ignoring_duplicates(session, AuditRecord, ["node", "seq"], rows)
            cursor.seq = int(str(rows[-1]["seq"]))
        cursor.file, cursor.offset = position
        return len(rows)

    def ship_all(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(self.ship_node(p.name) for p in sorted(self.root.iterdir()) if p.is_dir())

    def shipped(self, node: str) -> int:
        cursor = self.cursors.get(node)
        return cursor.seq if cursor else 0

    def forget(self) -> None:
        """After a database error: ask the database again where each node stands."""
        self.cursors.clear()


GATHER_S = 0.05
"""After a commit, how long shipping waits for more: one transaction for a burst instead of one per commit
(each also lists and stats the segment files), at a cost of 50 ms more before records reach the database."""


async def ship_forever(shipper: Shipper, nudge: asyncio.Event, stop: asyncio.Event,
                       on_progress: Callable[[], None] | None = None, interval: float = 1.0) -> None:
    """Ship after every commit (or each `interval`) until `stop` is set; on a database error keep the records
    and retry. Never cancelled mid-shipment: a shipment runs in a thread that holds a database connection."""
    failing = False
    while not stop.is_set():
        try:
            await asyncio.wait_for(nudge.wait(), interval)
        except TimeoutError:
            pass
        if not stop.is_set():
            await asyncio.sleep(GATHER_S)
        nudge.clear()
        try:
            await asyncio.to_thread(shipper.ship_all)
        except (SQLAlchemyError, OSError) as exc:
            shipper.forget()
            if not failing:
                log.error("audit: cannot ship records to the database (will retry): %s", exc)
            failing = True
            continue
        if failing:
            log.warning("audit: shipping to the database works again")
        failing = False
        if on_progress is not None:
            on_progress()
