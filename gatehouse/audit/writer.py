"""Writing audit records: a caller waits until its record is fsynced in the node's segment; one fsync covers
a whole batch (group commit). The shipper then copies segments into the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Protocol

from gatehouse.audit.chain import Linked, link
from gatehouse.audit.records import AuditEvent
from gatehouse.audit.records import body_of as body_of  # re-exported: the kernel makes CLI records with it
from gatehouse.audit.segments import SegmentAppender, recover
from gatehouse.audit.signing import CHECKPOINT, Signer, append_checkpoint, last_checkpoint_seq
from gatehouse.db.engine import utcnow

log = logging.getLogger(__name__)


class AuditUnavailable(Exception):
    """The log cannot take the record; whoever asked must refuse the action it was for."""


class AuditSink(Protocol):
    async def write(self, event: AuditEvent) -> None:
        """Return once the record is durable; raise AuditUnavailable otherwise."""


def checkpoint_now(folder: Path, signer: Signer, node: str, seq: int, digest: str) -> None:
    """Sign and fsync a checkpoint of the chain head into the node's folder (the shipper copies it on)."""
    append_checkpoint(folder, signer.sign(node, CHECKPOINT, seq, digest, utcnow().isoformat(timespec="seconds")))


class SegmentAuditWriter:
    """Group commit into the node's segment files; refuses once the database lags too far behind."""

    def __init__(self, folder: Path, node: str, *, signer: Signer | None = None, checkpoint_seconds: float = 60.0,
                 privileged: frozenset[str] = frozenset(), max_queue: int = 10_000, max_batch: int = 1_000,
                 max_unshipped: int = 100_000) -> None:
        self.folder = folder
        self.node = node
        self._signer = signer
        self._checkpoint_seconds = checkpoint_seconds
        self._privileged = privileged
        self._checkpointed = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[AuditEvent, asyncio.Future[None]]] = asyncio.Queue(max_queue)
        self._max_batch = max_batch
        self._max_unshipped = max_unshipped
        self._task: asyncio.Task[None] | None = None
        self._appender = SegmentAppender(folder)
        self.seq, self.last_hash = 0, ""
        self.shipped_seq = 0
        self.committed = asyncio.Event()

    async def start(self, shipped_seq: int = 0) -> None:
        self.seq, self.last_hash = await asyncio.to_thread(recover, self.folder, self.node)
        self.shipped_seq = min(shipped_seq, self.seq)
        self._checkpointed = await asyncio.to_thread(last_checkpoint_seq, self.folder)
        if self.seq > self._checkpointed:
            # No closing checkpoint: the node crashed. Sign what it left (and the record of any cut) now, not an
            # interval later: a second crash meanwhile would leave those records covered by no checkpoint.
            signed_before = self._checkpointed
            try:
                if await self.checkpoint():
                    log.warning("audit: node %s stopped without a closing checkpoint; signed one of #%d at start "
                                "(the last one signed #%d)", self.node, self.seq, signed_before)
            except OSError as exc:
                log.error("audit: cannot write a checkpoint in %s: %s", self.folder, exc)
        self._task = asyncio.create_task(self._run(), name=f"audit-writer-{self.node}")
        if self._signer is not None:
            self._checkpointing = asyncio.create_task(self._checkpoint_forever(), name=f"audit-checkpoints-{self.node}")

    async def checkpoint(self) -> bool:
        """Sign the chain head now if it moved since the last checkpoint; True when one was written."""
        seq, digest = self.seq, self.last_hash
        if self._signer is None or seq <= self._checkpointed:
            return False
        await asyncio.to_thread(checkpoint_now, self.folder, self._signer, self.node, seq, digest)
        self._checkpointed = seq
        self.committed.set()  # wake the shipper
        return True

    async def _checkpoint_forever(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_seconds)
            try:
                await self.checkpoint()
            except OSError as exc:
                log.error("audit: cannot write a checkpoint in %s: %s", self.folder, exc)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        if self._checkpointing is not None:
            self._checkpointing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointing
            self._checkpointing = None
        try:
            await self.checkpoint()
        except OSError as exc:
            log.error("audit: cannot write the closing checkpoint in %s: %s", self.folder, exc)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        self._appender.close()

    @property
    def backlog(self) -> int:
        """Records durable in segments but not yet in the database."""
        return self.seq - self.shipped_seq

    async def write(self, event: AuditEvent) -> None:
        if self._task is None or self._task.done():
            raise AuditUnavailable("the audit writer is not running")
        if self.backlog >= self._max_unshipped:
            raise AuditUnavailable(f"the audit database is {self.backlog} records behind")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((event, done))
        except asyncio.QueueFull:
            raise AuditUnavailable("the audit queue is full") from None
        await done

    def _link(self, events: list[AuditEvent]) -> list[Linked]:
        records = []
        seq, prev = self.seq, self.last_hash
        for event in events:
            seq += 1
            record = link(self.node, seq, prev, body_of(event, self._privileged))
            records.append(record)
            prev = record.hash
        return records

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            records = self._link([event for event, _ in batch])
            try:
                await asyncio.to_thread(self._appender.append, records)
            except OSError as exc:
                log.error("audit: cannot write %d records to %s: %s", len(batch), self.folder, exc)
                error = AuditUnavailable(f"the audit segment cannot be written ({exc.strerror})")
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                self.seq, self.last_hash = records[-1].seq, records[-1].hash
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                self.committed.set()
            finally:
                for _ in batch:
                    self._queue.task_done()
