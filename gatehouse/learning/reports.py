"""What education staff watch: progress, time and scores per course (optionally one group), per inmate, and the
questions learners get wrong most. The screen and its CSV come from the same rows, so they always match.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from gatehouse.db.models import Inmate, InmateGroup
from gatehouse.inmates import find_inmate
from gatehouse.learning import catalog, content, study
from gatehouse.learning.models import Answer, Attempt, Course, Enrolment, EnrolmentStatus

COLUMNS = ("inmate", "name", "groups", "course", "status", "progress_percent", "minutes", "best_score",
           "attempts", "started", "completed")


@dataclass(frozen=True, slots=True)
class Line:
    inmate: str
    name: str
    groups: str
    course: str
    status: str
    percent: int
    minutes: int
    best: int | None
    attempts: int
    started: str
    completed: str

    def cells(self) -> list[str]:
        return [self.inmate, self.name, self.groups, self.course, self.status, str(self.percent), str(self.minutes),
                "" if self.best is None else str(self.best), str(self.attempts), self.started, self.completed]


@dataclass(frozen=True, slots=True)
class Hard:
    question: str
    prompt: str
    answered: int
    right: int

    @property
    def percent_right(self) -> int:
        return self.right * 100 // self.answered if self.answered else 0


def _line(session: Session, row: Enrolment) -> Line:
    percent, seconds, best, tries = 0, 0, None, 0
    if row.version is not None and row.status != EnrolmentStatus.REQUESTED.value:
        state = study.progress(session, row)
        percent, seconds = (0 if row.status == EnrolmentStatus.REFUSED.value else state.percent), state.seconds
        final = content.final_quiz(study.course_of(row))
        graded = [q for q in state.quizzes.values() if final is not None and q.file == final.file]
        best = graded[0].best if graded else None
        tries = graded[0].attempts if graded else 0
    return Line(row.inmate.number, row.inmate.name, ", ".join(sorted(row.inmate.group_names)), row.course.slug,
                row.status, percent, seconds // 60, best, tries, f"{row.starts_at:%Y-%m-%d}",
                "" if row.completed_at is None else f"{row.completed_at:%Y-%m-%d}")


def course_lines(session: Session, slug: str, group: str = "") -> list[Line]:
    """Every enrolment in the course (requests too), by inmate number; only members of `group` if given."""
    query = select(Enrolment).join(Enrolment.course).join(Enrolment.inmate).where(Course.slug == slug)
    if group:
        query = query.where(Inmate.id.in_(select(InmateGroup.inmate_id).where(
            InmateGroup.name == group.strip().lower())))
    catalog.versions(session, slug)  # NotFound for an unknown course
    return [_line(session, row) for row in session.scalars(query.order_by(Inmate.number, Enrolment.id))]


def inmate_lines(session: Session, number: str) -> list[Line]:
    inmate = find_inmate(session, number)
    return [_line(session, row) for row in session.scalars(
        select(Enrolment).where(Enrolment.inmate_id == inmate.id).order_by(Enrolment.id))]


def hardest(session: Session, slug: str, limit: int = 10) -> list[Hard]:
    """The course's graded questions by share of right answers, lowest first (every version: ids are the
    package's, and a question keeps its id across versions)."""
    rows = session.execute(
        select(Answer.question, func.count(), func.sum(case((Answer.correct, 1), else_=0)))
        .join(Attempt, Attempt.id == Answer.attempt_id).join(Enrolment, Enrolment.id == Attempt.enrolment_id)
        .join(Course, Course.id == Enrolment.course_id).where(Course.slug == slug)
        .group_by(Answer.question)).all()
    prompts: dict[str, str] = {}
    for version in catalog.versions(session, slug):
        for quiz in content.quizzes_of(catalog.course_of(version)):
            prompts.update({q.id: q.prompt for q in quiz.questions})
    found = [Hard(q, prompts.get(q, q), int(n), int(right or 0)) for q, n, right in rows]
    return sorted(found, key=lambda h: (h.right / h.answered if h.answered else 1, -h.answered, h.question))[:limit]


BANDS = ((0, 24), (25, 49), (50, 74), (75, 99), (100, 100))
"""Progress bands of the course chart, in percent, bounds included."""


def progress_bands(lines: Iterable[Line]) -> list[tuple[str, int]]:
    """How many learners (requests and refusals aside) are in each band of progress."""
    counted = [line.percent for line in lines if line.status not in ("requested", "refused")]
    return [(f"{low}%" if low == high else f"{low}-{high}%", sum(1 for p in counted if low <= p <= high))
            for low, high in BANDS]


def to_csv(lines: Iterable[Line]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow([_safe(cell) for cell in line.cells()])
    return out.getvalue()


def _safe(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (=, +, -, @ first)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
