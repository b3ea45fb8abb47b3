"""An inmate's release plan: saved services and jobs, the checklist, notes, the release date and region; the staff
who support the inmate and may read it, and every time one of them did.

The plan row is made the first time the inmate changes something; until then the plan reads as an empty one.
Supporting an inmate is a responsibility of education staff (re-entry work), so only an education account can be
a supporter, and only a supporter may read a plan: `may_read` is the one place that decides it. Each reading is a
`PlanView`, which the inmate sees.

Problems are `InvalidInput` messages that start with the field they are about (`notes: ...`), so the portal can
name the field in the reader's language.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatehouse.db.models import Inmate, StaffAccount, StaffRole
from gatehouse.errors import InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from gatehouse.learning import awards, study
from gatehouse.resources import jobs, plan
from gatehouse.resources.jobs import JobState
from gatehouse.resources.models import JobOffer, PlanItem, PlanItemKind, PlanSupporter, PlanView, ReleasePlan, Service

__all__ = ["MAX_NOTES", "MAX_REGION", "Certificate", "Looked", "Opening", "PlanPage", "SavedJob", "SavedService",
           "Supported", "Supporter", "add_supporter", "certificates", "may_read", "page", "plan_of", "record_view",
           "remove", "remove_supporter", "save", "set_notes", "set_release", "set_step", "supported_by"]

MAX_NOTES = 4000
MAX_REGION = 128
SAVED_KINDS = (PlanItemKind.SERVICE.value, PlanItemKind.JOB.value)
VIEWS_SHOWN = 50
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True, slots=True)
class Opening:
    """One of a service's weekly opening times, as its HSDS schedule gives it."""

    days: frozenset[int]
    """Monday is 0; empty when the schedule is not a plain weekly one (its description says it)."""
    opens: time | None
    closes: time | None
    description: str


@dataclass(frozen=True, slots=True)
class SavedService:
    id: str
    name: str
    organization: str
    addresses: tuple[str, ...]
    phones: tuple[str, ...]
    openings: tuple[Opening, ...]
    url: str
    email: str
    gone: bool
    """No longer in the directory: only its id is left."""


@dataclass(frozen=True, slots=True)
class SavedJob:
    id: int
    title: str
    employer: str
    region: str
    city: str
    contract: str
    hours: str
    fair_chance: bool
    closes_on: date | None
    how_to_apply: str
    language: str
    state: JobState | None
    """None: the offer is gone (only its number is left)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """A course completed, from the learning record."""

    course: str
    issued: str
    """The day it was issued, YYYY-MM-DD."""
    short_code: str


@dataclass(frozen=True, slots=True)
class Supporter:
    staff: str
    name: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Looked:
    staff: str
    name: str
    at: datetime
    what: str
    """"page" or "pdf"."""


@dataclass(frozen=True, slots=True)
class PlanPage:
    """Everything the plan's page and its PDF show."""

    inmate_number: str
    inmate_name: str
    language: str
    release_date: date | None
    release_region: str
    notes: str
    steps: tuple[plan.Checked, ...]
    services: tuple[SavedService, ...]
    jobs: tuple[SavedJob, ...]
    certificates: tuple[Certificate, ...]
    supporters: tuple[Supporter, ...]
    views: tuple[Looked, ...]

    def saved(self, kind: str, ref: str) -> bool:
        if kind == PlanItemKind.SERVICE.value:
            return any(s.id == ref for s in self.services)
        return any(str(j.id) == ref for j in self.jobs)


# -- the plan and what is in it --------------------------------------------------------------------------------

def _find(session: Session, inmate_id: int) -> ReleasePlan | None:
    return session.scalar(select(ReleasePlan).where(ReleasePlan.inmate_id == inmate_id))


def plan_of(session: Session, inmate_id: int, *, now: datetime) -> ReleasePlan:
    """The inmate's plan, made now if it is the first use (two first uses at once make one)."""
    found = _find(session, inmate_id)
    if found is not None:
        return found
    if session.get(Inmate, inmate_id) is None:
        raise NotFound(f"no inmate {inmate_id}")
    try:
        with session.begin_nested():
            row = ReleasePlan(inmate_id=inmate_id, release_region="", notes="", updated_at=now)
            session.add(row)
        return row
    except IntegrityError:
        found = _find(session, inmate_id)
        if found is None:
            raise
        return found


def _item(row: ReleasePlan, kind: str, ref: str) -> PlanItem | None:
    return next((i for i in row.items if i.kind == kind and i.ref == ref), None)


def _add_item(session: Session, row: ReleasePlan, kind: str, ref: str, now: datetime) -> tuple[PlanItem, bool]:
    existing = _item(row, kind, ref)
    if existing is not None:
        return existing, False
    try:
        with session.begin_nested():
            item = PlanItem(plan_id=row.id, kind=kind, ref=ref, done=False, note="", added_at=now)
            session.add(item)
    except IntegrityError:  # the same item saved at the same moment from another terminal
        session.expire(row, ["items"])
        existing = _item(row, kind, ref)
        if existing is None:
            raise
        return existing, False
    session.expire(row, ["items"])
    return item, True


def save(session: Session, inmate_id: int, kind: str, ref: str, *, today: date,
         now: datetime) -> tuple[PlanItem, bool]:
    """Save an active directory entry, or a job offer open today; saving one twice keeps the first. The item
    and whether it is new."""
    ref = ref.strip()
    if kind == PlanItemKind.SERVICE.value:
        service = session.get(Service, ref) if ref else None
        if service is None or service.status != "active":  # inmates read active entries only
            raise NotFound(f"no directory entry {ref!r}")
    elif kind == PlanItemKind.JOB.value:
        offer = session.get(JobOffer, jobs.number(ref))
        if offer is None or not jobs.is_open(offer, today):
            raise NotFound(f"no open job offer {ref!r}")
        ref = str(offer.id)
    else:
        raise InvalidInput(f"kind: {kind!r} is not one of {', '.join(SAVED_KINDS)}")
    row = plan_of(session, inmate_id, now=now)
    item, new = _add_item(session, row, kind, ref, now)
    if new:
        row.updated_at = now
    return item, new


def remove(session: Session, inmate_id: int, kind: str, ref: str, *, now: datetime) -> bool:
    """Take a saved service or job out of the plan; False when it was not in it."""
    if kind not in SAVED_KINDS:
        raise InvalidInput(f"kind: {kind!r} is not one of {', '.join(SAVED_KINDS)}")
    row = _find(session, inmate_id)
    item = _item(row, kind, ref.strip()) if row is not None else None
    if row is None or item is None:
        return False
    row.items.remove(item)
    row.updated_at = now
    session.flush()
    return True


def set_step(session: Session, inmate_id: int, key: str, done: bool, *, now: datetime) -> PlanItem:
    """Tick a step of the checklist, or untick it (the day it was done is kept only while it is done)."""
    try:
        plan.step(key)
    except plan.PlanRuleError:
        raise InvalidInput(f"step: no step {key!r} in the checklist") from None
    row = plan_of(session, inmate_id, now=now)
    item, _new = _add_item(session, row, PlanItemKind.STEP.value, key, now)
    if item.done != done:
        item.done, item.done_at = done, now if done else None
        row.updated_at = now
    session.flush()
    return item


def set_notes(session: Session, inmate_id: int, text: str, *, now: datetime) -> ReleasePlan:
    clean = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))
    if len(clean) > MAX_NOTES:
        raise InvalidInput(f"notes: at most {MAX_NOTES} characters ({len(clean)} given)")
    row = plan_of(session, inmate_id, now=now)
    row.notes, row.updated_at = clean, now
    session.flush()
    return row


def set_release(session: Session, inmate_id: int, day: date | None, region: str, *, today: date,
                now: datetime) -> ReleasePlan:
    """The day and region the checklist is anchored to (no day: the steps wait for one)."""
    try:
        day = plan.check_release(day, today)
    except plan.PlanRuleError as exc:
        raise InvalidInput(f"release_date: {exc}") from None
    region = " ".join(region.split())
    if len(region) > MAX_REGION:
        raise InvalidInput(f"release_region: at most {MAX_REGION} characters")
    row = plan_of(session, inmate_id, now=now)
    row.release_date, row.release_region, row.updated_at = day, region, now
    session.flush()
    return row


# -- supporters and who looked ---------------------------------------------------------------------------------

def _names(session: Session, usernames: Iterable[str]) -> dict[str, str]:
    wanted = set(usernames)
    if not wanted:
        return {}
    rows = session.execute(select(StaffAccount.username, StaffAccount.display_name)
                           .where(StaffAccount.username.in_(wanted)))
    return {username: name or username for username, name in rows}


def add_supporter(session: Session, inmate_number: str, staff_username: str, *, by: str,
                  now: datetime) -> tuple[Inmate, bool]:
    """`staff_username` supports the inmate from now on (and may read the plan); whether it is new."""
    inmate = find_inmate(session, inmate_number)
    account = session.scalar(select(StaffAccount).where(StaffAccount.username == staff_username))
    if account is None or account.disabled or StaffRole.EDUCATION.value not in account.role_names:
        raise InvalidInput(f"staff: {staff_username!r} is not an active education staff account; only education "
                           "staff support an inmate's release")
    if session.get(PlanSupporter, (inmate.id, staff_username)) is not None:
        return inmate, False
    try:
        with session.begin_nested():
            session.add(PlanSupporter(inmate_id=inmate.id, staff=staff_username, added_by=by, added_at=now))
    except IntegrityError:
        return inmate, False
    return inmate, True


def remove_supporter(session: Session, inmate_number: str, staff_username: str) -> Inmate:
    inmate = find_inmate(session, inmate_number)
    row = session.get(PlanSupporter, (inmate.id, staff_username))
    if row is None:
        raise NotFound(f"{staff_username} does not support inmate {inmate.number}")
    session.delete(row)
    session.flush()
    return inmate


def may_read(session: Session, staff_username: str, roles: Collection[str], inmate_id: int) -> bool:
    """Only education staff who support this inmate read the plan (being education staff is not enough)."""
    if StaffRole.EDUCATION.value not in roles:
        return False
    return session.get(PlanSupporter, (inmate_id, staff_username)) is not None


@dataclass(frozen=True, slots=True)
class Supported:
    """An inmate a member of staff supports, as their list shows it."""

    number: str
    name: str
    release_date: date | None
    since: datetime


def supported_by(session: Session, staff_username: str) -> list[Supported]:
    rows = session.execute(
        select(Inmate.number, Inmate.name, ReleasePlan.release_date, PlanSupporter.added_at)
        .join(PlanSupporter, PlanSupporter.inmate_id == Inmate.id)
        .outerjoin(ReleasePlan, ReleasePlan.inmate_id == Inmate.id)
        .where(PlanSupporter.staff == staff_username)
        .order_by(ReleasePlan.release_date.is_(None), ReleasePlan.release_date, Inmate.number))
    return [Supported(number, name, release, since) for number, name, release, since in rows]


def record_view(session: Session, inmate_id: int, staff_username: str, what: str, *, now: datetime) -> PlanView:
    row = PlanView(inmate_id=inmate_id, staff=staff_username, at=now, what=what)
    session.add(row)
    session.flush()
    return row


# -- reading the whole plan ------------------------------------------------------------------------------------

def certificates(session: Session, inmate_id: int) -> list[Certificate]:
    """The learning record's certificates that still stand (a revoked one proves nothing outside)."""
    found = []
    for row in study.certificates_of(session, inmate_id):
        if row.revoked_at is not None:
            continue
        fields = awards.credential_of(row.signed)
        found.append(Certificate(fields["course"], fields["date"], row.short_code))
    return found


def _texts(values: Iterable[Any]) -> list[str]:
    return [" ".join(str(v).split()) for v in values if v not in (None, "")]


def _address(address: Mapping[str, Any]) -> str:
    city = " ".join(_texts([address.get("postal_code"), address.get("city")]))
    return ", ".join(_texts([address.get("address_1"), city, address.get("region") or address.get("state_province"),
                             address.get("country")]))


def _locations(details: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """HSDS JSON nests a service's locations in `service_at_locations[].location`; a flatter `locations` is read too."""
    found = [link.get("location") for link in details.get("service_at_locations") or [] if isinstance(link, dict)]
    found += list(details.get("locations") or [])
    return [loc for loc in found if isinstance(loc, dict)]


def _time(value: Any) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(str(value)).replace(tzinfo=None)
    except ValueError:
        return None


def _opening(schedule: Mapping[str, Any]) -> Opening:
    days: set[int] = set()
    weekly = str(schedule.get("freq") or "WEEKLY").upper() == "WEEKLY"
    for part in str(schedule.get("byday") or "").upper().split(","):
        if weekly and part.strip() in _DAYS:
            days.add(_DAYS.index(part.strip()))
    return Opening(frozenset(days), _time(schedule.get("opens_at")), _time(schedule.get("closes_at")),
                   " ".join(str(schedule.get("description") or "").split()))


def _saved_service(service: Service | None, ref: str) -> SavedService:
    if service is None:
        return SavedService(ref, "", "", (), (), (), "", "", True)
    details = service.details or {}
    addresses = [_address(a) for loc in _locations(details) for a in loc.get("addresses") or []
                 if isinstance(a, dict)]
    phones = [" ".join(_texts([p.get("number"), f"({p['description']})" if p.get("description") else None]))
              for p in details.get("phones") or [] if isinstance(p, dict) and p.get("number")]
    openings = [_opening(s) for s in details.get("schedules") or [] if isinstance(s, dict)]
    return SavedService(service.id, service.name, service.organization.name, tuple(a for a in addresses if a),
                        tuple(phones), tuple(o for o in openings if o.days or o.description), service.url,
                        service.email, False)


def _saved_job(offer: JobOffer | None, ref: str, today: date) -> SavedJob:
    if offer is None:
        return SavedJob(int(ref) if ref.isdigit() else 0, "", "", "", "", "", "", False, None, "", "", None)
    return SavedJob(offer.id, offer.title, offer.employer, offer.region, offer.city, offer.contract, offer.hours,
                    offer.fair_chance, offer.closes_on, offer.how_to_apply, offer.language,
                    jobs.state_of(offer, today))


def page(session: Session, inmate_id: int, *, today: date) -> PlanPage:
    """The plan as it is (an empty one before the first change), on `today`'s facility day."""
    inmate = session.get(Inmate, inmate_id)
    if inmate is None:
        raise NotFound(f"no inmate {inmate_id}")
    row = _find(session, inmate_id)
    items = list(row.items) if row is not None else []
    release = row.release_date if row is not None else None
    done = {i.ref for i in items if i.kind == PlanItemKind.STEP.value and i.done}
    service_refs = [i.ref for i in items if i.kind == PlanItemKind.SERVICE.value]
    job_refs = [i.ref for i in items if i.kind == PlanItemKind.JOB.value]
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(service_refs)))} \
        if service_refs else {}
    numbers = [int(r) for r in job_refs if r.isdigit()]
    offers = {o.id: o for o in session.scalars(select(JobOffer).where(JobOffer.id.in_(numbers)))} if numbers else {}
    supporters = list(session.scalars(select(PlanSupporter).where(PlanSupporter.inmate_id == inmate_id)
                                      .order_by(PlanSupporter.added_at)))
    views = list(session.scalars(select(PlanView).where(PlanView.inmate_id == inmate_id)
                                 .order_by(PlanView.at.desc(), PlanView.id.desc()).limit(VIEWS_SHOWN)))
    names = _names(session, [s.staff for s in supporters] + [v.staff for v in views])
    return PlanPage(
        inmate.number, inmate.name, inmate.language, release, row.release_region if row is not None else "",
        row.notes if row is not None else "", plan.checklist(done, today=today, release=release),
        tuple(_saved_service(services.get(ref), ref) for ref in service_refs),
        tuple(_saved_job(offers.get(int(ref)) if ref.isdigit() else None, ref, today) for ref in job_refs),
        tuple(certificates(session, inmate_id)),
        tuple(Supporter(s.staff, names.get(s.staff, s.staff), s.added_at) for s in supporters),
        tuple(Looked(v.staff, names.get(v.staff, v.staff), v.at, v.what) for v in views))
