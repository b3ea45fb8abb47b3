"""What the gateway learns from the learning domain: the courses whose sites are open to an inmate now.

Read at every identity lookup (about once a second per terminal), so it is one indexed query and imports only
the tables, never the services that change them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gatehouse.learning.models import Course, Enrolment, EnrolmentStatus


def active_courses(session: Session, inmate_id: int, now: datetime) -> frozenset[str]:
    """The courses whose sites are open to this inmate now: what the gateway puts in `Subject.courses`."""
    return frozenset(session.scalars(
        select(Course.slug).join(Enrolment, Enrolment.course_id == Course.id)
        .where(Enrolment.inmate_id == inmate_id, Enrolment.status == EnrolmentStatus.ACTIVE.value,
               Enrolment.starts_at <= now,
               or_(Enrolment.ends_at.is_(None), Enrolment.ends_at > now))))
