"""What the gateway learns from the learning domain: the courses whose sites are open to an inmate now.

Read at every identity lookup (about once a second per terminal), so it is one indexed query and imports only
the tables, never the services that change them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from gatehouse.learning.models import Course, Enrolment, EnrolmentStatus


def _open_now(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """An enrolment whose course's sites are open now."""
    return (Enrolment.status == EnrolmentStatus.ACTIVE.value, Enrolment.starts_at <= now,
            or_(Enrolment.ends_at.is_(None), Enrolment.ends_at > now))


def active_courses(session: Session, inmate_id: int, now: datetime) -> frozenset[str]:
    """The courses whose sites are open to this inmate now: what the gateway puts in `Subject.courses`."""
    return frozenset(session.scalars(
        select(Course.slug).join(Enrolment, Enrolment.course_id == Course.id)
        .where(Enrolment.inmate_id == inmate_id, *_open_now(now))))


def active_courses_of_all(session: Session, now: datetime) -> dict[int, frozenset[str]]:
    """The same for every inmate at once (by inmate id), for a page that looks at all of them."""
    found: dict[int, set[str]] = {}
    for inmate_id, slug in session.execute(select(Enrolment.inmate_id, Course.slug)
                                           .join(Course, Enrolment.course_id == Course.id).where(*_open_now(now))):
        found.setdefault(inmate_id, set()).add(slug)
    return {inmate_id: frozenset(slugs) for inmate_id, slugs in found.items()}
