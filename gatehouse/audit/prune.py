"""Retention: remove a node's records older than a date, leaving a signed anchor so what remains still verifies.

Pruning removes a prefix of each chain (sequence 1 up to the last record before the date). The anchor signs the
sequence number and hash of the last removed record; the first record kept links to that hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gatehouse.audit.segments import read_segment, segment_files
from gatehouse.audit.shipper import checkpoint_row, insert_ignoring_duplicates
from gatehouse.audit.signing import ANCHOR, CHECKPOINT, Signer
from gatehouse.audit.verify import LEGACY
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditCheckpoint, AuditRecord


@dataclass(frozen=True, slots=True)
class Pruned:
    node: str
    up_to: int
    records: int
    segment_files: int = 0


def prune_plan(session: Session, before: datetime) -> dict[str, int]:
    """For each node, the last sequence number that goes (0: nothing does)."""
    plan: dict[str, int] = {}
    for node in session.scalars(select(AuditRecord.node).distinct()):
        kept = session.scalar(select(func.min(AuditRecord.seq))
                              .where(AuditRecord.node == node, AuditRecord.at >= before))
        if kept is None:
            up_to = session.scalar(select(func.max(AuditRecord.seq)).where(AuditRecord.node == node)) or 0
        else:
            up_to = kept - 1
        lowest = session.scalar(select(func.min(AuditRecord.seq)).where(AuditRecord.node == node)) or 0
        if up_to >= lowest > 0:
            plan[node] = int(up_to)
    return plan


def prune(session: Session, signer: Signer, plan: dict[str, int], audit_dir: Path | None) -> list[Pruned]:
    """Sign an anchor per node, then delete what it covers (one transaction: `session` is committed by the
    caller). Segment files wholly covered are removed too, except each node's last one."""
    done = []
    for node, up_to in sorted(plan.items()):
        if node != LEGACY:
            digest = session.scalar(select(AuditRecord.hash).where(AuditRecord.node == node,
                                                                   AuditRecord.seq == up_to))
            if digest is None:
                continue
            anchor = signer.sign(node, ANCHOR, up_to, digest, utcnow().isoformat(timespec="seconds"))
            insert_ignoring_duplicates(session, AuditCheckpoint, ["node", "kind", "seq"], [checkpoint_row(anchor)])
            session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.node == node,
                                                          AuditCheckpoint.kind.in_([CHECKPOINT, ANCHOR]),
                                                          AuditCheckpoint.seq < up_to))
        result = session.execute(delete(AuditRecord).where(AuditRecord.node == node, AuditRecord.seq <= up_to))
        files = _prune_segments(audit_dir / node, up_to) if audit_dir is not None and node != LEGACY else 0
        done.append(Pruned(node, up_to, int(getattr(result, "rowcount", 0) or 0), files))
    return done


def _prune_segments(folder: Path, up_to: int) -> int:
    files = segment_files(folder)
    removed = 0
    for path, following in zip(files, files[1:], strict=False):
        first_next = next((record.seq for record, _ in read_segment(following)), None)
        if first_next is None or first_next - 1 > up_to:
            break
        path.unlink()
        removed += 1
    return removed
