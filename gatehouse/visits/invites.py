"""Visit invitations as iCalendar (RFC 5545) in the iTIP way (RFC 5546), attached to the visit's e-mails.

One visit keeps one UID for its life; each change raises SEQUENCE, so a calendar replaces the event it holds
instead of adding a second one, and a cancellation (METHOD:CANCEL, STATUS:CANCELLED) removes it. Times are
written in UTC: no VTIMEZONE to get wrong, and the family's calendar shows them in its own zone. The texts
come in already in the recipient's language; this module does not translate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from icalendar import Alarm, Calendar, Event, vCalAddress

from gatehouse.mail import Attachment, check_address

Method = Literal["REQUEST", "CANCEL"]
Status = Literal["CONFIRMED", "TENTATIVE", "CANCELLED"]

PRODID = "-//Gatehouse//Video visits//EN"
#: The reminder on an invitation: time to sit down at a computer and test camera and microphone.
REMINDER = timedelta(minutes=30)


def visit_uid(visit_id: int, domain: str) -> str:
    """The UID of a visit's event, the same in every message about that visit (RFC 5545 3.8.4.7)."""
    return f"visit-{visit_id}@{domain}"


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def _mailto(email: str, name: str, what: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{check_address(email, what)}")
    if name:
        address.params["CN"] = name
    return address


def visit_calendar(*, uid: str, sequence: int, method: Method, start: datetime, end: datetime, summary: str,
                   description: str, location: str, organizer_email: str, attendees: Sequence[tuple[str, str]],
                   url: str | None = None, status: Status | None = None, organizer_name: str = "",
                   stamp: datetime | None = None) -> bytes:
    """The .ics of one visit: METHOD REQUEST for an invitation or a change, CANCEL for a cancellation.

    `attendees` are (name, e-mail); `status` defaults to CONFIRMED on REQUEST and must be CANCELLED on CANCEL;
    `stamp` (DTSTAMP, when this version was made) defaults to now. Raises ValueError on inconsistent input.
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"the method of a visit's calendar is REQUEST or CANCEL, not {method!r}")
    status = status or ("CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if (method == "CANCEL") != (status == "CANCELLED"):
        raise ValueError(f"METHOD:{method} does not go with STATUS:{status} (a cancellation is CANCEL and CANCELLED)")
    if not uid or any(c.isspace() for c in uid):
        raise ValueError(f"a visit's UID must be one word that never changes: {uid!r}")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise ValueError(f"SEQUENCE is a whole number from 0, raised at each change: {sequence!r}")
    begins, ends = _aware(start, "the start"), _aware(end, "the end")
    if ends <= begins:
        raise ValueError(f"the visit ends ({ends.isoformat()}) before it starts ({begins.isoformat()})")
    if not attendees:
        raise ValueError("an invitation needs at least one attendee")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError(f"the visit's link must be an http(s) URL: {url!r}")

    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", _aware(stamp or datetime.now(UTC), "the stamp"))
    event.add("dtstart", begins)
    event.add("dtend", ends)
    event.add("summary", summary)
    event.add("description", description)
    event.add("location", location)
    event.add("status", status)
    event.add("class", "PRIVATE")
    event.add("transp", "OPAQUE")
    if url is not None:
        event.add("url", url)
    event.add("organizer", _mailto(organizer_email, organizer_name, "the organizer"))
    for name, email in attendees:
        attendee = _mailto(email, name, "an attendee")
        # RSVP=FALSE: the facility takes answers on its own site, not by mail replies it would not read.
        attendee.params.update({"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION",
                                "RSVP": "FALSE"})
        event.add("attendee", attendee)
    if method == "REQUEST":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", summary)
        alarm.add("trigger", -REMINDER)
        event.add_component(alarm)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def calendar_attachment(ics: bytes, method: Method, filename: str = "visit.ics") -> Attachment:
    """The .ics as a mail attachment, its MIME type naming the iTIP method as calendar clients expect."""
    return Attachment(filename=filename, content=ics, mime_type=f"text/calendar; method={method}")
