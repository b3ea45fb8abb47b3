"""An inmate asks for a site (from the block page or the home page); education staff see the queue with the
context to decide, and refuse with a reason the inmate reads, or answer with a proposal (`proposals`).

Limits: at most `limit` open requests per inmate, and asking for the same URL again while the first is open is
the same request (the reason given last is kept), so a bored or anxious inmate cannot flood the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse.curation.models import OPEN_REQUESTS, AccessRequest, Purpose, RequestStatus
from gatehouse.db.models import AuditRecord, Inmate
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.learning.grants import active_courses
from policies.hosts import HostError, split_authority

MAX_URL = 2048
MAX_REASON = 1000
DENIED_TAGS = ("gateway:request:denied", "gateway:connect:denied")


@dataclass(frozen=True, slots=True)
class Asked:
    request: AccessRequest
    new: bool
    """False when the inmate had asked for this URL already and it is still open."""


def clean_url(url: str) -> tuple[str, str]:
    """The URL as it is kept (no fragment, no credentials, host in lower case) and its host; InvalidInput says
    what is wrong with it."""
    url = url.strip()
    if not url:
        raise InvalidInput("url: give the address of the site (it is on the page that was blocked)")
    if len(url) > MAX_URL:
        raise InvalidInput(f"url: at most {MAX_URL} characters")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"url: {parts.scheme}: addresses are not web sites; give an http:// or https:// address")
    if "@" in parts.netloc:
        raise InvalidInput("url: an address with a user name or password in it cannot be asked for")
    try:
        host, port = split_authority(parts.netloc, 443 if parts.scheme.lower() == "https" else 80)
    except HostError as exc:
        raise InvalidInput(f"url: {exc}") from None
    default = 443 if parts.scheme.lower() == "https" else 80
    netloc = host if port == default else f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, "")), host


def purpose_of(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        raise InvalidInput(f"purpose: choose one of {', '.join(p.value for p in Purpose)}") from None


def ask(session: Session, *, inmate: str, url: str, purpose: str, reason: str, now: datetime,
        limit: int) -> Asked:
    person = find_inmate(session, inmate)
    kept, host = clean_url(url)
    why = purpose_of(purpose)
    reason = " ".join(reason.split())[:MAX_REASON]
    same = session.scalar(select(AccessRequest).where(AccessRequest.inmate_id == person.id,
                                                      AccessRequest.url == kept,
                                                      AccessRequest.status.in_(OPEN_REQUESTS)))
    if same is not None:
        if reason:
            same.reason = reason
        return Asked(same, False)
    count = session.scalar(select(func.count()).select_from(AccessRequest).where(
        AccessRequest.inmate_id == person.id, AccessRequest.status.in_(OPEN_REQUESTS))) or 0
    if count >= limit:
        raise Conflict(f"{person.number} has {count} open requests; at most {limit} may wait at once")
    row = AccessRequest(inmate=person, url=kept, host=host, purpose=why.value, reason=reason,
                        status=RequestStatus.OPEN.value, created_at=now)
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the same URL asked for at the same moment from another tab
        session.expunge(row)
        again = session.scalar(select(AccessRequest).where(AccessRequest.inmate_id == person.id,
                                                           AccessRequest.url == kept,
                                                           AccessRequest.status.in_(OPEN_REQUESTS)))
        if again is None:
            raise
        return Asked(again, False)
    return Asked(row, True)


def requests_of(session: Session, inmate: str) -> list[AccessRequest]:
    person = find_inmate(session, inmate)
    return list(session.scalars(select(AccessRequest).where(AccessRequest.inmate_id == person.id)
                                .order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc())))


def get(session: Session, request_id: int) -> AccessRequest:
    row = session.get(AccessRequest, request_id)
    if row is None:
        raise NotFound(f"no request {request_id}")
    return row


def withdraw(session: Session, request_id: int, *, inmate: str, now: datetime) -> AccessRequest:
    """The inmate no longer needs it; only their own, and only while it waits for education staff."""
    row = get(session, request_id)
    if row.inmate.number != inmate:
        raise NotFound(f"no request {request_id}")
    if row.status != RequestStatus.OPEN.value:
        raise Conflict(f"request {request_id} is {row.status}; only an open request can be withdrawn")
    row.status, row.decided_at, row.decided_by = RequestStatus.WITHDRAWN.value, now, inmate
    return row


def queue(session: Session) -> list[AccessRequest]:
    """What waits for education staff, oldest first."""
    return list(session.scalars(select(AccessRequest).where(AccessRequest.status == RequestStatus.OPEN.value)
                                .order_by(AccessRequest.created_at, AccessRequest.id)))


def refuse(session: Session, request_id: int, *, reason: str, by: str, now: datetime) -> AccessRequest:
    row = get(session, request_id)
    if row.status not in OPEN_REQUESTS:
        raise Conflict(f"request {request_id} is {row.status} already")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("reason: say why; the inmate reads it")
    row.status, row.answer = RequestStatus.REFUSED.value, reason[:MAX_REASON]
    row.decided_at, row.decided_by = now, by
    return row


@dataclass(frozen=True, slots=True)
class Denial:
    at: datetime
    method: str
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Context:
    """What a reviewer needs beside the request: who asks, what they take, what they asked before, and what the
    gateway refused them on the same host lately."""

    request: AccessRequest
    inmate: Inmate
    groups: tuple[str, ...]
    courses: tuple[str, ...]
    earlier: tuple[AccessRequest, ...]
    denials: tuple[Denial, ...]


def context(session: Session, request_id: int, now: datetime, days: int = 30) -> Context:
    row = get(session, request_id)
    person = row.inmate
    earlier = tuple(session.scalars(select(AccessRequest).where(AccessRequest.inmate_id == person.id,
                                                                AccessRequest.id != row.id)
                                    .order_by(AccessRequest.created_at.desc()).limit(20)))
    records = session.scalars(select(AuditRecord).where(
        AuditRecord.actor == person.number, AuditRecord.host == row.host, AuditRecord.tag.in_(DENIED_TAGS),
        AuditRecord.at >= now - timedelta(days=days)).order_by(AuditRecord.at.desc()).limit(20))
    denials = tuple(Denial(r.at, r.method, r.path, r.reason) for r in records)
    courses = tuple(sorted(active_courses(session, person.id, now)))
    return Context(row, person, tuple(sorted(person.group_names)), courses, earlier, denials)
