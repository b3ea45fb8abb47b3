"""The delivery round: mail waiting in the visits outbox put into words in its recipient's language and handed
to the facility's relay. Success marks it sent; a refusal or a relay that is down leaves it queued for the next
try (`outbox.RETRY`), so nothing is lost. Without `mail.host` everything waits, and the staff page says so.

Each message is claimed before it is sent (its next try moved on by one conditional UPDATE), so portals that
run side by side never send one twice. A visit's invitation that is out of date when its turn comes (the visit
was cancelled meanwhile) is dropped: the cancellation follows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.db.engine import stored
from gatehouse.db.models import Inmate
from gatehouse.kernel import Kernel
from gatehouse.mail import MailError, MailSettings, build_message, send
from gatehouse.settings import Settings
from gatehouse.visits import invites, outbox
from gatehouse.visits.models import LIVE, ListEntry, MailKind, Outbox, Visit, Visitor, VisitStatus
from portal import i18n
from portal.i18n import _
from portal.visits.public import public_url

log = logging.getLogger(__name__)
ROUND_SECONDS = 5.0
LEASE = timedelta(minutes=10)
"""How long a claimed message is left to its sender before another round may take it."""
BATCH = 50
MAIL_TEMPLATES = Path(__file__).resolve().parent / "templates" / "visits" / "public" / "mail"
_complaints: set[str] = set()


def mail_settings(settings: Settings) -> MailSettings | None:
    """The relay as the settings name it; None when there is none (mail waits). ValueError on a bad one."""
    if not settings["mail.host"]:
        return None
    username = settings["mail.username"] or None
    return MailSettings(host=settings["mail.host"], port=settings["mail.port"], sender=settings["mail.sender"],
                        starttls=settings["mail.starttls"], username=username,
                        password=settings["mail.password"] if username else None)


def waiting(session: Session) -> int:
    """Messages not sent yet (waiting for a relay, or for their next try)."""
    return int(session.scalar(select(func.count(Outbox.id)).where(Outbox.sent_at.is_(None))) or 0)


def visit_link(settings: Settings, visit_id: int) -> str:
    return f"{public_url(settings)}/visits#visit-{visit_id}"


@dataclass(frozen=True, slots=True)
class VisitFacts:
    id: int
    inmate: str
    starts_at: datetime
    ends_at: datetime
    legal: bool
    status: str
    reason: str
    sequence: int
    recorded: bool


@dataclass(frozen=True, slots=True)
class EntryFacts:
    inmate: str
    relationship: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Letter:
    """One claimed message and the facts its words need, read in the claiming transaction."""

    id: int
    kind: str
    recipient: str
    name: str
    language: str
    payload: Mapping[str, str]
    visit: VisitFacts | None
    entry: EntryFacts | None


def _facts(session: Session, row: Outbox) -> tuple[VisitFacts | None, EntryFacts | None]:
    visit = session.get(Visit, row.visit_id) if row.visit_id is not None else None
    visit_facts = None
    if visit is not None:
        inmate = session.get(Inmate, visit.inmate_id)
        visit_facts = VisitFacts(visit.id, inmate.name if inmate else "", visit.starts_at, visit.ends_at,
                                 visit.visit_class == "legal", visit.status, row.payload.get("reason") or
                                 visit.close_reason, visit.sequence, visit.recorded)
    entry_id = row.payload.get("entry", "")
    entry = session.get(ListEntry, int(entry_id)) if entry_id.isdigit() else None
    entry_facts = None
    if entry is not None:
        inmate = session.get(Inmate, entry.inmate_id)
        entry_facts = EntryFacts(inmate.name if inmate else "", entry.relationship_, entry.status,
                                 row.payload.get("reason") or entry.reason)
    return visit_facts, entry_facts


def claim(factory: sessionmaker[Session], now: datetime, default_language: str,
          limit: int = BATCH) -> list[Letter]:
    """Due messages this round takes: each claimed by moving its next try on by `LEASE`, if nobody moved it."""
    moment = stored(now)
    letters = []
    with factory.begin() as session:
        for row in outbox.due(session, moment, limit):
            won = session.execute(update(Outbox).where(Outbox.id == row.id, Outbox.sent_at.is_(None),
                                                       Outbox.next_try_at == row.next_try_at)
                                  .values(next_try_at=moment + LEASE).execution_options(synchronize_session=False))
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
            person = session.get(Visitor, row.visitor_id) if row.visitor_id is not None else None
            visit, entry = _facts(session, row)
            letters.append(Letter(row.id, row.kind, row.recipient, person.name if person else "",
                                  person.language if person else default_language, dict(row.payload), visit, entry))
    return letters


def _finish(factory: sessionmaker[Session], letter_id: int, now: datetime, error: str = "",
            dropped: str = "") -> None:
    with factory.begin() as session:
        row = session.get(Outbox, letter_id)
        if row is None:
            return
        if error:
            outbox.failed(row, error, stored(now))
            return
        outbox.sent(row, stored(now))
        row.last_error = dropped  # a message dropped says why; one sent says nothing


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(MAIL_TEMPLATES), autoescape=False,
                             undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.i18n"],
                             keep_trailing_newline=True)
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Outdated(Exception):
    """The message no longer says what is true (an invitation to a visit since cancelled): drop it."""


def compose(letter: Letter, settings: Settings, now: datetime) -> EmailMessage:
    """The message in its recipient's language; raises Outdated, or ValueError when it cannot be built."""
    i18n.activate(letter.language)
    zone = ZoneInfo(settings["facility.timezone"])
    context = {"name": letter.name, "facility": settings["facility.name"], "site": public_url(settings)}
    kind, attachments = letter.kind, []
    if kind == MailKind.CONFIRM and letter.payload.get("secret"):
        subject, template = _("Confirm your e-mail address"), "confirm.txt"
        context["link"] = f"{public_url(settings)}/confirm/{letter.payload['secret']}"
    elif kind == MailKind.CONFIRM:
        subject, template = _("You have an account already"), "registered.txt"
    elif kind in (MailKind.PROPOSED, MailKind.LIST_DECIDED):
        if letter.entry is None:
            raise Outdated("its list entry is gone")
        context["entry"] = letter.entry
        if kind == MailKind.PROPOSED:
            subject, template = _("%(name)s would like you to visit") % {"name": letter.entry.inmate}, "proposed.txt"
        else:
            subject, template = _("Your request to visit %(name)s") % {"name": letter.entry.inmate}, "decided.txt"
    elif kind in (MailKind.INVITATION, MailKind.CHANGED, MailKind.CANCELLED):
        visit = letter.visit
        if visit is None:
            raise Outdated("its visit is gone")
        cancelled = kind == MailKind.CANCELLED
        if not cancelled and visit.status not in LIVE:
            raise Outdated(f"the visit is {visit.status} now")
        starts, ends = _aware(visit.starts_at), _aware(visit.ends_at)
        link = visit_link(settings, visit.id)
        context.update(visit=visit, link=link, kind=kind, day=i18n.format_date(starts, zone),
                       time=f"{i18n.format_time(starts, zone)} – {i18n.format_time(ends, zone)}", zone=zone.key,
                       ended=visit.status == VisitStatus.ENDED.value)
        subject = {MailKind.INVITATION: _("Video visit with %(name)s on %(day)s"),
                   MailKind.CHANGED: _("Changed: video visit with %(name)s on %(day)s"),
                   MailKind.CANCELLED: _("Cancelled: video visit with %(name)s on %(day)s")}[MailKind(kind)] % {
                       "name": visit.inmate, "day": context["day"]}
        template = "visit.txt"
        method: invites.Method = "CANCEL" if cancelled else "REQUEST"
        sender = settings["mail.sender"]
        ics = invites.visit_calendar(
            uid=invites.visit_uid(visit.id, sender.rpartition("@")[2]), sequence=visit.sequence, method=method,
            start=starts, end=ends, summary=_("Video visit with %(name)s") % {"name": visit.inmate},
            description=_("Join the visit from %(link)s") % {"link": link},
            location=_("Video call on %(site)s") % {"site": public_url(settings)}, organizer_email=sender,
            organizer_name=settings["facility.name"], attendees=[(letter.name, letter.recipient)], url=link,
            status="CANCELLED" if cancelled else "CONFIRMED" if visit.status == VisitStatus.APPROVED.value
            else "TENTATIVE", stamp=_aware(now))
        attachments.append(invites.calendar_attachment(ics, method))
    else:
        raise Outdated(f"no words for mail of kind {kind!r}")
    text = _env().get_template(template).render(context)
    to = [(letter.name, letter.recipient)] if letter.name else letter.recipient
    return build_message(sender=(settings["facility.name"], settings["mail.sender"]), to=to, subject=subject,
                         text=text, attachments=attachments, now=_aware(now))


async def deliver_due(kernel: Kernel, now: datetime) -> int:
    """One round: every due message claimed, composed and sent; the number sent."""
    settings = kernel.settings
    try:
        relay = mail_settings(settings)
    except ValueError as exc:
        if str(exc) not in _complaints:  # said once, not every round
            _complaints.add(str(exc))
            log.error("visits: mail waits in the outbox: %s", exc)
        return 0
    if relay is None:
        return 0
    letters = await asyncio.to_thread(claim, kernel.factory, now, settings["facility.language"])
    done = 0
    for letter in letters:
        try:
            message = compose(letter, settings, now)
        except Outdated as why:
            await asyncio.to_thread(_finish, kernel.factory, letter.id, now, dropped=f"not sent: {why}")
            continue
        except ValueError as exc:
            await asyncio.to_thread(_finish, kernel.factory, letter.id, now, error=f"cannot be written: {exc}")
            continue
        try:
            await send(relay, message)
        except MailError as exc:
            log.warning("visits: mail %d to %s not sent: %s", letter.id, letter.recipient, exc)
            await asyncio.to_thread(_finish, kernel.factory, letter.id, now, error=str(exc))
            continue
        await asyncio.to_thread(_finish, kernel.factory, letter.id, now)
        done += 1
    return done
