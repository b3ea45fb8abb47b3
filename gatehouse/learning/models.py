"""The learning domain's tables: courses and their versions, media, enrolments, progress, attempts, certificates.

A course is a name (`slug`, the package's `id`) with numbered versions. A version holds its whole content (the
package's course.yaml, lessons and quizzes as one JSON document, see `content`) and its media; once published it
is never changed: an author edits a new draft, and learners stay on the version they enrolled in. Attempts and
answers are kept on the server, so a closed browser resumes where it was, and nothing a browser sends is trusted
beyond the answer itself.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatehouse.db.models import Base, Inmate, intpk, str64, str255, utc


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    """The version new enrolments get; at most one per course."""
    RETIRED = "retired"
    """Was published; learners enrolled in it keep it until they finish."""


class EnrolmentStatus(enum.StrEnum):
    REQUESTED = "requested"
    """Asked for by the inmate from the catalogue; waits for education staff."""
    REFUSED = "refused"
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    ENDED = "ended"
    """Its end date passed before completion (set when noticed; the gateway reads the date itself)."""
    TRANSFERRED = "transferred"


OPEN_STATUSES = (EnrolmentStatus.REQUESTED.value, EnrolmentStatus.ACTIVE.value)
"""At most one enrolment per inmate and course is in one of these."""


class Course(Base):
    __tablename__ = "learning_courses"
    id: Mapped[intpk]
    slug: Mapped[str64] = mapped_column(unique=True)
    """The package's `id`: what policy rules name in `courses: [...]`."""
    eligible_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Only members of one of these groups may enrol; empty: everyone. Regimes are groups too."""
    created_at: Mapped[utc]
    created_by: Mapped[str64]
    versions: Mapped[list[CourseVersion]] = relationship(
        back_populates="course", cascade="all, delete-orphan", order_by="CourseVersion.number")


class CourseVersion(Base):
    __tablename__ = "learning_versions"
    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("learning_courses.id", ondelete="CASCADE"))
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.DRAFT.value)
    title: Mapped[str255]
    language: Mapped[str] = mapped_column(String(8))
    level: Mapped[str64]
    category: Mapped[str64]
    duration_minutes: Mapped[int]
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The whole course but its media (`gatehouse.learning.content`)."""
    created_at: Mapped[utc]
    created_by: Mapped[str64]
    published_at: Mapped[datetime | None]
    published_by: Mapped[str64] = mapped_column(default="")
    course: Mapped[Course] = relationship(back_populates="versions", lazy="joined")

    __table_args__ = (
        UniqueConstraint("course_id", "number"),
        Index("uq_learning_versions_published", "course_id", unique=True,
              sqlite_where=text("status = 'published'"), postgresql_where=text("status = 'published'")),
    )


class CourseMedia(Base):
    """A file a version's lessons show (`media/...`), served by the portal itself: no third-party host."""

    __tablename__ = "learning_media"
    version_id: Mapped[int] = mapped_column(ForeignKey("learning_versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str255] = mapped_column(primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Exclusion(Base):
    """A named inmate who may not take a course, with the reason staff recorded (shown to staff at enrolment)."""

    __tablename__ = "learning_exclusions"
    course_id: Mapped[int] = mapped_column(ForeignKey("learning_courses.id", ondelete="CASCADE"), primary_key=True)
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[utc]
    created_by: Mapped[str64]


class Enrolment(Base):
    __tablename__ = "learning_enrolments"
    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("learning_courses.id", ondelete="CASCADE"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("learning_versions.id"))
    """The version learnt; fixed when the enrolment becomes active."""
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[utc]
    ends_at: Mapped[datetime | None]
    """The end date (exclusive, UTC); None: until completion or withdrawal."""
    requested_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str64] = mapped_column(default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why it was refused or withdrawn; the inmate sees a refusal's reason."""
    completed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    """When it stopped opening the course's sites (completed, withdrawn, ended, transferred)."""
    last_lesson: Mapped[str255] = mapped_column(default="")
    """The lesson file opened last: where "continue" takes the learner."""
    created_at: Mapped[utc]
    created_by: Mapped[str64]
    course: Mapped[Course] = relationship(lazy="joined")
    version: Mapped[CourseVersion | None] = relationship(lazy="joined")
    inmate: Mapped[Inmate] = relationship(lazy="joined")

    __table_args__ = (
        Index("uq_learning_enrolments_open", "course_id", "inmate_id", unique=True,
              sqlite_where=text("status IN ('requested', 'active')"),
              postgresql_where=text("status IN ('requested', 'active')")),
        Index("ix_learning_enrolments_status_inmate", "status", "inmate_id"),
    )


class LessonProgress(Base):
    __tablename__ = "learning_progress"
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("learning_enrolments.id", ondelete="CASCADE"),
                                              primary_key=True)
    lesson: Mapped[str255] = mapped_column(primary_key=True)
    """The lesson's file in the package (`lessons/intro.md`)."""
    opened_at: Mapped[utc]
    completed_at: Mapped[datetime | None]
    active_seconds: Mapped[int] = mapped_column(default=0)
    """Counted from activity the page reports (`rules.active_seconds`), not from an open tab."""
    last_activity_at: Mapped[utc]


class Attempt(Base):
    """One go at a quiz. `token` names it to the browser; the questions drawn and every answer stay here."""

    __tablename__ = "learning_attempts"
    id: Mapped[intpk]
    token: Mapped[str64] = mapped_column(unique=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("learning_enrolments.id", ondelete="CASCADE"), index=True)
    quiz: Mapped[str255]
    """The quiz's file in the package (`quizzes/final.yaml`)."""
    number: Mapped[int]
    questions: Mapped[list[str]] = mapped_column(JSON)
    """The question ids drawn for this attempt, in the order shown."""
    started_at: Mapped[utc]
    finished_at: Mapped[datetime | None]
    score: Mapped[int | None]
    """Percent right once finished."""
    passed: Mapped[bool | None]

    __table_args__ = (UniqueConstraint("enrolment_id", "quiz", "number"),)


class Answer(Base):
    __tablename__ = "learning_answers"
    attempt_id: Mapped[int] = mapped_column(ForeignKey("learning_attempts.id", ondelete="CASCADE"), primary_key=True)
    question: Mapped[str64] = mapped_column(primary_key=True)
    given: Mapped[Any] = mapped_column(JSON)
    correct: Mapped[bool]
    feedback: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[utc]


class IssuedCertificate(Base):
    __tablename__ = "learning_certificates"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """The credential's UUID (also the key of the revocation list)."""
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("learning_enrolments.id", ondelete="CASCADE"),
                                              unique=True)
    short_code: Mapped[str] = mapped_column(String(32), index=True)
    signed: Mapped[bytes] = mapped_column(LargeBinary)
    """The Open Badges credential exactly as signed (`certificates.issue`)."""
    issued_at: Mapped[utc]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str64] = mapped_column(default="")
    revoke_reason: Mapped[str] = mapped_column(Text, default="")
    enrolment: Mapped[Enrolment] = relationship(lazy="joined")


__all__ = ["OPEN_STATUSES", "Answer", "Attempt", "Course", "CourseMedia", "CourseVersion", "Enrolment",
           "EnrolmentStatus", "Exclusion", "IssuedCertificate", "LessonProgress", "VersionStatus"]
