"""Writing audit records: a caller waits until its record is committed; one commit covers a batch."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit.records import AuditEvent
from gatehouse.db.models import AuditRecord

log = logging.getLogger(__name__)


class AuditUnavailable(Exception):
    """The log cannot take the record; whoever asked must refuse the action it was for."""


class AuditSink(Protocol):
    async def write(self, event: AuditEvent) -> None:
        """Return once the record is durable; raise AuditUnavailable otherwise."""


class DatabaseAuditWriter:
    """Group commit into the database: records queued while a commit runs go in the next one."""

    def __init__(self, factory: sessionmaker[Session], *, max_queue: int = 10_000, max_batch: int = 500) -> None:
        self._factory = factory
        self._queue: asyncio.Queue[tuple[AuditEvent, asyncio.Future[None]]] = asyncio.Queue(max_queue)
        self._max_batch = max_batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def write(self, event: AuditEvent) -> None:
        if self._task is None or self._task.done():
            raise AuditUnavailable("audit writer is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((event, done))
        except asyncio.QueueFull:
            raise AuditUnavailable("audit queue is full") from None
        await done

    def _commit(self, events: list[AuditEvent]) -> None:
        with self._factory.begin() as session:
            session.execute(insert(AuditRecord), [e.as_row() for e in events])

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._commit, [event for event, _ in batch])
            except (SQLAlchemyError, OSError) as exc:
                log.error("audit: could not commit %d records: %s", len(batch), exc)
                error = AuditUnavailable(f"audit database refused the records: {exc.__class__.__name__}")
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
            finally:
                for _ in batch:
                    self._queue.task_done()
