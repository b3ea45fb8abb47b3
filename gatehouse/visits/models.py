"""The tables of video visits: visitors and their logins, approved lists, no-contact orders, booths and their
hours, visits, and the claims that keep any person, booth or supervision seat from being booked twice.

A visit holds its claims, one row per thing it occupies (`inmate:12`, `visitor:7`, `booth:3`, `supervision:0`)
over its time. The database refuses two live claims on one thing that overlap in time: on PostgreSQL an
exclusion constraint over `tsrange(starts_at, ends_at)` (times are naive UTC), on SQLite a trigger that aborts
the insert or update, which is as safe there because SQLite runs one writer at a time and the trigger reads
inside that writer's lock. Neither is a model construct: the migration makes the one its database needs.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatehouse.db.models import Base, intpk, str64, str255, utc

CLAIMS_TABLE = "visits_claims"
OVERLAP = "visits_claims_overlap"
"""The name of the exclusion constraint (PostgreSQL) and the trigger's abort message (SQLite)."""


class ListStatus(enum.StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REFUSED = "refused"
    REMOVED = "removed"


class VisitStatus(enum.StrEnum):
    REQUESTED = "requested"
    """Asked for by the family or the inmate; staff (or the automatic approval) have not said yes yet."""
    APPROVED = "approved"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    ENDED = "ended"
    """Ended before its time by a supervisor or a lockdown (a visit that ran to its end stays approved)."""


LIVE = (VisitStatus.REQUESTED.value, VisitStatus.APPROVED.value)
"""Visits that hold their claims: a request keeps its slot while staff decide."""


class Visitor(Base):
    """A person outside who may be approved to visit: registered on the public site (or by staff), with a
    confirmed e-mail address, and verified by a member of staff who saw an identity document."""

    __tablename__ = "visits_visitors"
    id: Mapped[intpk]
    name: Mapped[str255]
    email: Mapped[str255] = mapped_column(unique=True)
    """Lower case; the login name."""
    language: Mapped[str] = mapped_column(String(8), default="en")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None]
    email_token: Mapped[str | None] = mapped_column(String(64))
    """A hash of the confirmation link's secret while it waits to be followed."""
    email_token_expires: Mapped[datetime | None]
    email_confirmed_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[str64] = mapped_column(default="")
    document: Mapped[str255] = mapped_column(default="")
    """What staff checked: the kind of identity document and its number as they recorded it."""
    lawyer: Mapped[bool] = mapped_column(Boolean, default=False)
    """Verified by staff as a lawyer: may book legal visits, which nobody watches or records."""
    failed_attempts: Mapped[int] = mapped_column(default=0)
    suspended_reason: Mapped[str255] = mapped_column(default="")
    created_at: Mapped[utc]

    @property
    def verified(self) -> bool:
        return self.verified_at is not None and self.email_confirmed_at is not None and not self.suspended_reason


class VisitorSession(Base):
    __tablename__ = "visits_visitor_sessions"
    id: Mapped[intpk]
    token: Mapped[str64] = mapped_column(unique=True)
    """A hash of the cookie's secret: a copy of the table logs nobody in."""
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visits_visitors.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[utc]
    last_seen_at: Mapped[utc]
    expires_at: Mapped[utc]
    ended_at: Mapped[datetime | None]
    totp_done: Mapped[bool] = mapped_column(Boolean, default=False)
    visitor: Mapped[Visitor] = relationship(lazy="joined")


class ListEntry(Base):
    """A visitor on an inmate's approved list, or proposed for it, or refused with a reason."""

    __tablename__ = "visits_list"
    id: Mapped[intpk]
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visits_visitors.id", ondelete="CASCADE"), index=True)
    relationship_: Mapped[str64] = mapped_column("relationship", default="")
    status: Mapped[str] = mapped_column(String(16), default=ListStatus.PROPOSED.value)
    proposed_by: Mapped[str64]
    proposed_at: Mapped[utc]
    decided_by: Mapped[str64] = mapped_column(default="")
    decided_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    visitor: Mapped[Visitor] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("inmate_id", "visitor_id"),)


class NoContactOrder(Base):
    """A person who may never see an inmate. Named by e-mail so an order holds before the person registers;
    it wins over any approved list and any booking."""

    __tablename__ = "visits_no_contact"
    id: Mapped[intpk]
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), index=True)
    email: Mapped[str255] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    made_by: Mapped[str64]
    made_at: Mapped[utc]
    lifted_by: Mapped[str64] = mapped_column(default="")
    lifted_at: Mapped[datetime | None]


class VisitingHours(Base):
    """The weekly windows of a unit (booth is null) or of one booth, as `policies.windows` spells them."""

    __tablename__ = "visits_hours"
    id: Mapped[intpk]
    unit: Mapped[str64]
    booth_id: Mapped[int | None] = mapped_column(ForeignKey("visits_booths.id", ondelete="CASCADE"))
    windows: Mapped[list[str]] = mapped_column(JSON, default=list)

    __table_args__ = (UniqueConstraint("unit", "booth_id"),)


class ClosedDay(Base):
    __tablename__ = "visits_closed_days"
    id: Mapped[intpk]
    unit: Mapped[str64]
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str255] = mapped_column(default="")

    __table_args__ = (UniqueConstraint("unit", "day"),)


class Booth(Base):
    """Where an inmate sits for a call: a terminal of kind `booth`, or a room with one."""

    __tablename__ = "visits_booths"
    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    unit: Mapped[str64] = mapped_column(default="")
    terminal: Mapped[str64] = mapped_column(default="")
    """The booth terminal's name, when the booth is one; the inmate joins from it."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Visit(Base):
    __tablename__ = "visits_visits"
    id: Mapped[intpk]
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), index=True)
    booth_id: Mapped[int] = mapped_column(ForeignKey("visits_booths.id"))
    starts_at: Mapped[utc] = mapped_column(index=True)
    ends_at: Mapped[utc]
    visit_class: Mapped[str] = mapped_column(String(16), default="ordinary")
    status: Mapped[str] = mapped_column(String(16), default=VisitStatus.REQUESTED.value)
    requested_by: Mapped[str64]
    """Who asked, as the audit log names them: `visitor:7`, `inmate:A1001`, `staff:sam`."""
    requested_at: Mapped[utc]
    decided_by: Mapped[str64] = mapped_column(default="")
    decided_at: Mapped[datetime | None]
    supervisor: Mapped[str64] = mapped_column(default="")
    recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the call is recorded; both sides are told before they join. Never true for a legal visit."""
    closed_by: Mapped[str64] = mapped_column(default="")
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str] = mapped_column(Text, default="")
    sequence: Mapped[int] = mapped_column(default=0)
    """iCalendar SEQUENCE: each change sent to the families counts one up."""
    booth: Mapped[Booth] = relationship(lazy="joined")
    visitors: Mapped[list[VisitGuest]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class VisitGuest(Base):
    __tablename__ = "visits_guests"
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits_visits.id", ondelete="CASCADE"), primary_key=True)
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visits_visitors.id"), primary_key=True, index=True)
    visitor: Mapped[Visitor] = relationship(lazy="joined")


class Claim(Base):
    __tablename__ = CLAIMS_TABLE
    id: Mapped[intpk]
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits_visits.id", ondelete="CASCADE"), index=True)
    resource: Mapped[str] = mapped_column(String(96))
    starts_at: Mapped[utc]
    ends_at: Mapped[utc]
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("ix_visits_claims_resource_starts_at", "resource", "starts_at"),)


class MailKind(enum.StrEnum):
    CONFIRM = "confirm"
    """The link that confirms a visitor's e-mail address."""
    PROPOSED = "proposed"
    """An inmate put this person on their list: register to be verified."""
    INVITATION = "invitation"
    CHANGED = "changed"
    CANCELLED = "cancelled"
    LIST_DECIDED = "list-decided"


class Outbox(Base):
    """Mail to send: what to tell whom, written in the transaction that decided it and put into words (the
    recipient's language, an iCalendar file) only when it is sent, so a relay that is down loses nothing and the
    kernel, which has no words, can cancel a visit in a lockdown. `payload` holds what the words need (a
    confirmation secret, a reason); it is emptied once the message is sent."""

    __tablename__ = "visits_outbox"
    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str255]
    visitor_id: Mapped[int | None] = mapped_column(ForeignKey("visits_visitors.id", ondelete="CASCADE"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits_visits.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[utc]
    attempts: Mapped[int] = mapped_column(default=0)
    next_try_at: Mapped[utc]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_visits_outbox_unsent", "next_try_at", sqlite_where=text("sent_at IS NULL"),
                            postgresql_where=text("sent_at IS NULL")),)
