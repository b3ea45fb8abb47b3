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

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit.chain import Linked
from gatehouse.audit.segments import read_segment, segment_files
from gatehouse.db.models import AuditRecord

log = logging.getLogger(__name__)
BATCH = 1_000


def row_of(record: Linked) -> dict[str, object]:
    row = dict(record.body)
    row["at"] = datetime.fromisoformat(str(row["at"]))
    row.update(node=record.node, seq=record.seq, prev_hash=record.prev_hash, hash=record.hash)
    return row


def shipped_up_to(factory: sessionmaker[Session], node: str) -> int:
    with factory() as session:
        return int(session.scalar(select(func.max(AuditRecord.seq)).where(AuditRecord.node == node)) or 0)


@dataclass
class _Cursor:
    seq: int = 0
    file: Path | None = None
    offset: int = 0


@dataclass
class Shipper:
    factory: sessionmaker[Session]
    root: Path
    cursors: dict[str, _Cursor] = field(default_factory=dict)

    def _insert(self, session: Session, rows: list[dict[str, object]]) -> None:
        dialect = session.get_bind().dialect.name
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = maker(AuditRecord).on_conflict_do_nothing(index_elements=["node", "seq"])
        session.execute(statement, rows)

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
        return sent

    def _flush(self, node: str, cursor: _Cursor, rows: list[dict[str, object]],
               position: tuple[Path | None, int]) -> int:
        if rows:
            with self.factory.begin() as session:
                self._insert(session, rows)
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


async def ship_forever(shipper: Shipper, nudge: asyncio.Event, on_progress: Callable[[], None] | None = None,
                       interval: float = 1.0) -> None:
    """Ship after every commit (or each `interval`); on a database error keep the records and retry."""
    failing = False
    while True:
        try:
            await asyncio.wait_for(nudge.wait(), interval)
        except TimeoutError:
            pass
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
