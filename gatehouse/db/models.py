"""Typed SQLAlchemy models of the kernel: facilities, terminals, inmates, sessions, rules and audit records.

Times are stored as naive UTC; constraint names follow one convention so migrations stay portable.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

intpk = Annotated[int, mapped_column(Integer, primary_key=True)]
str64 = Annotated[str, mapped_column(String(64))]
str255 = Annotated[str, mapped_column(String(255))]
utc = Annotated[datetime, mapped_column()]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TerminalKind(enum.StrEnum):
    CELL = "cell"
    CLASSROOM = "classroom"
    LIBRARY = "library"
    BOOTH = "booth"


class InmateStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RELEASED = "released"


class Facility(Base):
    __tablename__ = "facilities"
    id: Mapped[intpk]
    name: Mapped[str255] = mapped_column(unique=True)
    timezone: Mapped[str64]


class Terminal(Base):
    __tablename__ = "terminals"
    id: Mapped[intpk]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    name: Mapped[str64] = mapped_column(unique=True)
    address: Mapped[str64] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str64] = mapped_column(default="")
    created_at: Mapped[utc]
    facility: Mapped[Facility] = relationship()


class Inmate(Base):
    __tablename__ = "inmates"
    id: Mapped[intpk]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    number: Mapped[str64] = mapped_column(unique=True)
    name: Mapped[str255]
    language: Mapped[str] = mapped_column(String(8))
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=InmateStatus.ACTIVE.value)
    created_at: Mapped[utc]
    groups: Mapped[list[InmateGroup]] = relationship(
        cascade="all, delete-orphan", order_by="InmateGroup.name", lazy="selectin"
    )

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]


class InmateGroup(Base):
    __tablename__ = "inmate_groups"
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str64] = mapped_column(primary_key=True)


class InmateSession(Base):
    """A terminal bound to an inmate; at most one open session per terminal and per inmate."""

    __tablename__ = "sessions"
    id: Mapped[intpk]
    token: Mapped[str64] = mapped_column(unique=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id"))
    started_at: Mapped[utc]
    last_seen_at: Mapped[utc]
    expires_at: Mapped[utc]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    terminal: Mapped[Terminal] = relationship(lazy="joined")
    inmate: Mapped[Inmate] = relationship(lazy="joined")

    __table_args__ = (
        Index("uq_sessions_open_terminal", "terminal_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("uq_sessions_open_inmate", "inmate_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
    )


class PolicyRule(Base):
    """A rule curated in the portal; YAML files are the other source, both compile into one snapshot."""

    __tablename__ = "policy_rules"
    id: Mapped[intpk]
    rule_id: Mapped[str64] = mapped_column(unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str64] = mapped_column(default="")
    created_at: Mapped[utc]


class AuditRecord(Base):
    __tablename__ = "audit_records"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[utc] = mapped_column(index=True)
    plane: Mapped[str] = mapped_column(String(16))
    tag: Mapped[str64] = mapped_column(index=True)
    actor: Mapped[str64] = mapped_column(default="")
    terminal: Mapped[str64] = mapped_column(default="")
    client_addr: Mapped[str64] = mapped_column(default="")
    method: Mapped[str] = mapped_column(String(16), default="")
    host: Mapped[str255] = mapped_column(default="")
    path: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int | None]
    bytes_up: Mapped[int | None] = mapped_column(BigInteger)
    bytes_down: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None]
    node: Mapped[str64] = mapped_column(default="")
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (
        Index("ix_audit_records_actor_at", "actor", "at"),
        Index("uq_audit_records_node_seq", "node", "seq", unique=True),
    )


class AuditCheckpoint(Base):
    """A signed statement of a node's chain head (kind `checkpoint`) or of where pruning stopped (kind `anchor`).

    `at` is kept as the exact text that was signed.
    """

    __tablename__ = "audit_checkpoints"
    id: Mapped[intpk]
    node: Mapped[str64]
    kind: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("uq_audit_checkpoints_node_kind_seq", "node", "kind", "seq", unique=True),)


__all__ = [
    "AuditCheckpoint", "AuditRecord", "Base", "Facility", "Inmate", "InmateGroup", "InmateSession", "InmateStatus",
    "PolicyRule", "Terminal", "TerminalKind",
]
