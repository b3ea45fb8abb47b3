"""The curation domain's tables: what inmates ask for, what staff propose, and where each curated rule came from.

An inmate's request (`AccessRequest`) names a URL and why; education staff refuse it or answer it with a
`Proposal`: a rule to add, or a change or removal of a curated rule. A proposal becomes policy only when a second
staff member with the right role approves it (four eyes); the rule itself is a `PolicyRule` row, which the policy
store compiles with the files into the snapshot, and which keeps the proposal it came from.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatehouse.db.models import Base, Inmate, intpk, str64, str255, utc


class Purpose(enum.StrEnum):
    COURSE = "course"
    JOBS = "jobs"
    HOUSING = "housing"
    LEGAL = "legal"
    FAMILY = "family"
    OTHER = "other"


class RequestStatus(enum.StrEnum):
    OPEN = "open"
    """Waits for education staff."""
    PROPOSED = "proposed"
    """A rule for it is proposed and waits for its second pair of eyes."""
    GRANTED = "granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


OPEN_REQUESTS = (RequestStatus.OPEN.value, RequestStatus.PROPOSED.value)
"""An inmate has at most one request in these states per URL, and a few in all."""


class ProposalKind(enum.StrEnum):
    ADD = "add"
    EDIT = "edit"
    REMOVE = "remove"


class ProposalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    RETURNED = "returned"
    """Sent back to the proposer to change; a changed proposal is a new one."""


class AccessRequest(Base):
    __tablename__ = "curation_requests"
    __table_args__ = (
        Index("uq_curation_requests_open", "inmate_id", "url", unique=True,
              sqlite_where=text("status IN ('open', 'proposed')"),
              postgresql_where=text("status IN ('open', 'proposed')")),
    )
    id: Mapped[intpk]
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    host: Mapped[str255]
    purpose: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.OPEN.value, index=True)
    created_at: Mapped[utc]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str64] = mapped_column(default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    """Why it was refused, in staff's words; the inmate reads it."""

    inmate: Mapped[Inmate] = relationship()


class Proposal(Base):
    __tablename__ = "curation_proposals"
    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str64] = mapped_column(index=True)
    """The rule it adds, changes or removes."""
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The rule as a policy file writes it (without `id`); for a removal, the rule as it was."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """For a change or removal, the rule in force when it was proposed."""
    note: Mapped[str] = mapped_column(Text, default="")
    """Why, from the proposer, for the approver."""
    request_id: Mapped[int | None] = mapped_column(ForeignKey("curation_requests.id", ondelete="SET NULL"),
                                                   index=True)
    needs: Mapped[str] = mapped_column(String(16))
    """The role whose approval makes it policy (security, or education for a narrow rule)."""
    why_needs: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ProposalStatus.PENDING.value, index=True)
    proposed_by: Mapped[str64]
    proposed_at: Mapped[utc]
    decided_by: Mapped[str64] = mapped_column(default="")
    decided_at: Mapped[datetime | None]
    answer: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[AccessRequest | None] = relationship()


class PageCheck(Base):
    """What the server saw of a curated rule's page, fetched again on a schedule (the second look on drift)."""

    __tablename__ = "curation_page_checks"
    id: Mapped[intpk]
    rule_id: Mapped[str64] = mapped_column(index=True)
    url: Mapped[str] = mapped_column(String(2048))
    checked_at: Mapped[utc]
    preview: Mapped[dict[str, Any]] = mapped_column(JSON)
    drift: Mapped[list[str]] = mapped_column(JSON, default=list)
    """What appeared since the page as approved; empty when nothing of concern."""
    flagged: Mapped[bool] = mapped_column(default=False, index=True)
    cleared_by: Mapped[str64] = mapped_column(default="")
    cleared_at: Mapped[datetime | None]
