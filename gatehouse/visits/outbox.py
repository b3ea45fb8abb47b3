"""Mail to send, kept in the database until the relay took it: what to tell whom, never the words.

`queue` runs in the transaction that decided (a booking, a cancellation in a lockdown, a registration), so the
message exists exactly when the decision does. The portal's delivery round puts it into the recipient's language
and sends it; a relay that is down leaves it here to try again later.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.visits.models import MailKind, Outbox

RETRY = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
"""After each failed attempt, the wait before the next; the last repeats until the relay answers."""


def queue(session: Session, kind: MailKind, recipient: str, now: datetime, *, visitor_id: int | None = None,
          visit_id: int | None = None, payload: dict[str, str] | None = None) -> Outbox:
    row = Outbox(kind=kind.value, recipient=recipient, visitor_id=visitor_id, visit_id=visit_id,
                 payload=dict(payload or {}), created_at=now, next_try_at=now)
    session.add(row)
    return row


def due(session: Session, now: datetime, limit: int = 50) -> list[Outbox]:
    return list(session.scalars(select(Outbox).where(Outbox.sent_at.is_(None), Outbox.next_try_at <= now)
                                .order_by(Outbox.id).limit(limit)))


def sent(row: Outbox, now: datetime) -> None:
    row.sent_at, row.payload, row.last_error = now, {}, ""


def failed(row: Outbox, error: str, now: datetime) -> None:
    row.attempts += 1
    row.last_error = error[:1000]
    row.next_try_at = now + RETRY[min(row.attempts, len(RETRY)) - 1]
