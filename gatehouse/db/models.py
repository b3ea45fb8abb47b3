"""Typed SQLAlchemy models of the kernel: facilities, terminals, inmates, sessions, rules and audit records.

Times are stored as naive UTC; constraint names follow one convention so migrations stay portable.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, text
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


class StaffRole(enum.StrEnum):
    EDUCATION = "education"
    SECURITY = "security"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Facility(Base):
    __tablename__ = "facilities"
    id: Mapped[intpk]
    name: Mapped[str255] = mapped_column(unique=True)
    timezone: Mapped[str64]
    units: Mapped[list[Unit]] = relationship(cascade="all, delete-orphan", order_by="Unit.name", lazy="selectin")


class Unit(Base):
    """A wing or block of a facility; terminals stand in one, lockdowns (issue of live control) target one."""

    __tablename__ = "units"
    id: Mapped[intpk]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    name: Mapped[str64]

    __table_args__ = (UniqueConstraint("facility_id", "name"),)


class Terminal(Base):
    __tablename__ = "terminals"
    id: Mapped[intpk]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    name: Mapped[str64] = mapped_column(unique=True)
    address: Mapped[str64] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str64] = mapped_column(default="")
    created_at: Mapped[utc]
    disabled_reason: Mapped[str255] = mapped_column(default="")
    """Why security staff switched this terminal off; empty while it is on."""
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


class StaffAccount(Base):
    """A member of staff: argon2 password, mandatory TOTP, one or more roles."""

    __tablename__ = "staff_accounts"
    id: Mapped[intpk]
    username: Mapped[str64] = mapped_column(unique=True)
    display_name: Mapped[str255] = mapped_column(default="")
    password_hash: Mapped[str255]
    language: Mapped[str] = mapped_column(String(8), default="en")
    totp_secret: Mapped[str64]
    totp_enrolled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    """The time step of the last accepted code; only a strictly later one passes (no replay)."""
    totp_step_session: Mapped[int | None]
    """The session (pending login) that submitted it: the same login sending it again is a double click, not
    a replay."""
    password_changed_at: Mapped[utc]
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[utc]
    roles: Mapped[list[StaffAccountRole]] = relationship(
        cascade="all, delete-orphan", order_by="StaffAccountRole.role", lazy="selectin")

    @property
    def role_names(self) -> list[str]:
        return [r.role for r in self.roles]


class StaffAccountRole(Base):
    __tablename__ = "staff_roles"
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class RecoveryCode(Base):
    """A single-use second factor; only its SHA-256 is kept (the code carries 80 random bits)."""

    __tablename__ = "staff_recovery_codes"
    id: Mapped[intpk]
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str64]
    created_at: Mapped[utc]
    used_at: Mapped[datetime | None]


class StaffSession(Base):
    """A staff browser session; the cookie holds a token, the table its SHA-256. Survives restarts."""

    __tablename__ = "staff_sessions"
    id: Mapped[intpk]
    token_hash: Mapped[str64] = mapped_column(unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    address: Mapped[str64] = mapped_column(default="")
    created_at: Mapped[utc]
    last_seen_at: Mapped[utc]
    expires_at: Mapped[utc]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    account: Mapped[StaffAccount] = relationship(lazy="joined")


class StaffNotice(Base):
    """A security event the account holder is shown at next login (e.g. a replayed TOTP code)."""

    __tablename__ = "staff_notices"
    id: Mapped[intpk]
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    at: Mapped[utc]
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str64] = mapped_column(default="")
    shown_at: Mapped[datetime | None]


class Lockdown(Base):
    """Access cut for a unit or (unit "") a whole facility until lifted."""

    __tablename__ = "lockdowns"
    id: Mapped[intpk]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    unit: Mapped[str64] = mapped_column(default="")
    reason: Mapped[str] = mapped_column(Text)
    started_by: Mapped[str64]
    started_at: Mapped[utc]
    lifted_by: Mapped[str64] = mapped_column(default="")
    lifted_at: Mapped[datetime | None]

    __table_args__ = (
        Index("uq_lockdowns_active_scope", "facility_id", "unit", unique=True,
              sqlite_where=text("lifted_at IS NULL"), postgresql_where=text("lifted_at IS NULL")),
    )


class ControlEventRow(Base):
    """Every control action in order: gateway nodes read the ones they have not seen (the embedded default has
    no Redis, and a node that was away catches up from here)."""

    __tablename__ = "control_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[utc]
    payload: Mapped[str] = mapped_column(Text)


class PolicyRule(Base):
    """A rule curated in the portal; YAML files are the other source, both compile into one snapshot."""

    __tablename__ = "policy_rules"
    id: Mapped[intpk]
    rule_id: Mapped[str64] = mapped_column(unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str64] = mapped_column(default="")
    """Who proposed it."""
    created_at: Mapped[utc]
    approved_by: Mapped[str64] = mapped_column(default="")
    approved_at: Mapped[datetime | None]
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("curation_proposals.id", ondelete="SET NULL"))
    """The approved proposal it came from (its last change); None for a rule written in by hand."""
    removed_by: Mapped[str64] = mapped_column(default="")
    removed_at: Mapped[datetime | None]


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
        Index("ix_audit_records_at_id", "at", "id"),
        Index("ix_audit_records_terminal_at", "terminal", "at"),
        Index("ix_audit_records_host_at", "host", "at"),
        Index("uq_audit_records_node_seq", "node", "seq", unique=True),
    )


class AuditAlert(Base):
    """A rule's finding in the audit log (a burst of denials, heavy use, a bypass attempt), raised once."""

    __tablename__ = "audit_alerts"
    id: Mapped[intpk]
    rule: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str64]
    window_start: Mapped[utc]
    window_end: Mapped[utc]
    count: Mapped[int]
    detail: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[utc] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("rule", "actor", "window_start"),)


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
    "AuditAlert", "AuditCheckpoint", "AuditRecord", "Base", "ControlEventRow", "Facility", "Inmate", "InmateGroup",
    "InmateSession", "InmateStatus", "Lockdown", "PolicyRule", "RecoveryCode", "StaffAccount", "StaffAccountRole",
    "StaffNotice", "StaffRole", "StaffSession", "Terminal", "TerminalKind", "Unit",
]

# Every domain's tables join the one metadata that migrations and their check compare against.
from gatehouse.curation import models as _curation_models  # noqa: E402,F401
from gatehouse.learning import models as _learning_models  # noqa: E402,F401
from gatehouse.library import models as _library_models  # noqa: E402,F401
from gatehouse.resources import models as _resources_models  # noqa: E402,F401
from gatehouse.visits import models as _visits_models  # noqa: E402,F401
