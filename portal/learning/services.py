"""The portal side of learning: each screen's data in one transaction off the event loop, and what it changed
recorded in the audit log and announced on the bus (a completed course closes its sites on every node).

The rules live in `gatehouse.learning` (`study`, `enrolment`, `catalog`, `awards`), shared with the CLI; this
module only picks what a page shows and turns the learner's number into their own rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate
from gatehouse.errors import NotFound
from gatehouse.inmates import find_inmate
from gatehouse.kernel import Kernel
from gatehouse.learning import awards, catalog, content, enrolment, speech, study
from gatehouse.learning.certificates import Verdict
from gatehouse.learning.models import CourseVersion, Enrolment, EnrolmentStatus, IssuedCertificate
from gatehouse.learning.package import Course, Site
from policies.decision import RequestFacts, Subject, decide_url
from policies.snapshot import Snapshot
from portal.auth.services import announce, record
from portal.transactions import change as change  # the domain's screens take both from here
from portal.transactions import read as read

MEDIA_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
"""A course file is shown, never run: an SVG's or a PDF's scripts stay inert."""




def _inmate(session: Session, number: str) -> Inmate:
    return find_inmate(session, number)


async def _record(kernel: Kernel, tag: Tag, actor: str, terminal: str, reason: str, decision: str = "allow") -> None:
    await record(kernel, AuditEvent(tag, "portal", actor=actor, terminal=terminal, decision=decision, reason=reason))


async def after(kernel: Kernel, outcome: study.Outcome, actor: str, terminal: str, subject: str) -> None:
    """Record and announce what a learner's step completed: the course, its grant closing, its certificate."""
    if not outcome.completed:
        return
    await _record(kernel, Tag.LEARNING_COURSE_COMPLETED, actor, terminal, subject)
    await _record(kernel, Tag.LEARNING_GRANT_CLOSED, actor, terminal, f"{subject}: completed")
    if outcome.certificate is not None:
        await _record(kernel, Tag.LEARNING_CERTIFICATE_ISSUED, actor, terminal,
                      f"{subject}: certificate {outcome.certificate.id} ({outcome.certificate.short_code})")
    for event in outcome.events:
        await announce(kernel, event)


# -- the catalogue ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Offered:
    slug: str
    title: str
    language: str
    level: str
    category: str
    minutes: int
    lessons: int
    state: str
    """enrolled, completed, requested, refused, open (may ask), closed (not eligible)."""
    reason: str
    """Why refused (staff's words) or why not eligible."""


def _offered(session: Session, version: CourseVersion, inmate: Inmate) -> Offered:
    rows = list(session.scalars(select(Enrolment).where(Enrolment.course_id == version.course_id,
                                                        Enrolment.inmate_id == inmate.id)
                                .order_by(Enrolment.id.desc())))
    latest = rows[0] if rows else None
    state, reason = "open", ""
    if latest is not None and latest.status in (EnrolmentStatus.ACTIVE.value, EnrolmentStatus.COMPLETED.value,
                                                EnrolmentStatus.REQUESTED.value):
        state = {"active": "enrolled"}.get(latest.status, latest.status)
    else:
        why = enrolment.eligibility(session, version.course.slug, inmate.number)
        if not why.ok:
            state, reason = "closed", "; ".join(why.reasons)
        elif latest is not None and latest.status == EnrolmentStatus.REFUSED.value:
            state, reason = "refused", latest.reason
    return Offered(version.course.slug, version.title, version.language, version.level, version.category,
                   version.duration_minutes, len(content.lessons_of(catalog.course_of(version))), state, reason)


async def catalogue(kernel: Kernel, number: str) -> list[Offered]:
    def work(session: Session) -> list[Offered]:
        inmate = _inmate(session, number)
        return [_offered(session, v, inmate) for v in catalog.catalogue(session)]
    return await read(kernel, work)


async def ask(kernel: Kernel, number: str, terminal: str, slug: str, now: datetime) -> None:
    """Raises Conflict (already enrolled or asked, not eligible) or NotFound for the page to say."""
    await change(kernel, lambda s: enrolment.request_enrolment(s, course=slug, inmate=number, now=now))
    await _record(kernel, Tag.LEARNING_ENROLMENT_REQUESTED, number, terminal, f"{number} asks to join {slug}")


async def titles(kernel: Kernel, slugs: set[str]) -> dict[str, str]:
    """Course titles (of the published version) by course id, for pages that name a course."""
    if not slugs:
        return {}

    def work(session: Session) -> dict[str, str]:
        return {v.course.slug: v.title for v in catalog.catalogue(session) if v.course.slug in slugs}
    return await read(kernel, work)


# -- my learning --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mine:
    slug: str
    title: str
    status: str
    percent: int
    minutes: int
    reason: str
    certificate: str | None
    starts_at: datetime
    ends_at: datetime | None


def _mine(session: Session, row: Enrolment) -> Mine:
    version = row.version
    title = version.title if version is not None else (
        catalog.published(session, row.course.slug).title if row.status == "requested" else row.course.slug)
    percent, seconds = 0, 0
    if version is not None and row.status in (EnrolmentStatus.ACTIVE.value, EnrolmentStatus.COMPLETED.value):
        state = study.progress(session, row)
        percent, seconds = state.percent, state.seconds
    cert = session.scalar(select(IssuedCertificate.id).where(IssuedCertificate.enrolment_id == row.id))
    return Mine(row.course.slug, title, row.status, percent, seconds // 60, row.reason, cert, row.starts_at,
                row.ends_at)


async def my_learning(kernel: Kernel, number: str) -> list[Mine]:
    def work(session: Session) -> list[Mine]:
        return [_mine(session, row) for row in enrolment.enrolments_of(session, number)]
    return await read(kernel, work)


# -- a course, a lesson -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Overview:
    enrolment_id: int
    course: Course
    status: str
    progress: study.Progress
    sites: tuple[Site, ...]
    certificate: str | None
    lesson_numbers: dict[str, int]
    titles: dict[str, str]
    """Lesson titles in the learner's language where the course has it."""


async def overview(kernel: Kernel, number: str, slug: str, language: str) -> Overview:
    def work(session: Session) -> Overview:
        row = study.enrolment_of(session, _inmate(session, number).id, slug)
        course = study.course_of(row)
        every = content.lessons_of(course)
        cert = session.scalar(select(IssuedCertificate.id).where(IssuedCertificate.enrolment_id == row.id))
        return Overview(row.id, course, row.status, study.progress(session, row), course.sites, cert,
                        {lesson.file: n for n, lesson in enumerate(every, 1)},
                        {lesson.file: study.translated(lesson, language)[0] for lesson in every})
    return await read(kernel, work)


@dataclass(frozen=True, slots=True)
class LessonPage:
    course: Course
    number: int
    count: int
    title: str
    markdown: str
    language: str
    """The language the lesson is shown in."""
    done: bool
    status: str
    version_id: int


async def open_lesson(kernel: Kernel, number: str, slug: str, lesson: int, language: str, now: datetime
                      ) -> LessonPage:
    def work(session: Session) -> LessonPage:
        row = study.enrolment_of(session, _inmate(session, number).id, slug)
        course = study.course_of(row)
        found = study.open_lesson(session, row, lesson, now)
        title, text, shown_in = study.translated(found, language)
        done = found.file in study.progress(session, row).done
        assert row.version_id is not None
        return LessonPage(course, lesson, len(content.lessons_of(course)), title, text, shown_in or course.language,
                          done, row.status, row.version_id)
    return await change(kernel, work)


async def activity(kernel: Kernel, number: str, slug: str, lesson: int, now: datetime) -> int:
    def work(session: Session) -> int:
        return study.activity(session, study.enrolment_of(session, _inmate(session, number).id, slug), lesson, now)
    return await change(kernel, work)


async def finish_lesson(kernel: Kernel, number: str, terminal: str, slug: str, lesson: int, now: datetime) -> bool:
    """Whether the course is complete with it."""
    def work(session: Session) -> study.Outcome:
        row = study.enrolment_of(session, _inmate(session, number).id, slug)
        return study.finish_lesson(session, kernel.settings, row, lesson, now)
    outcome = await change(kernel, work)
    await after(kernel, outcome, number, terminal, f"{number} in {slug}")
    return outcome.completed


async def media(kernel: Kernel, number: str, slug: str, path: str) -> tuple[str, bytes]:
    def work(session: Session) -> tuple[str, bytes]:
        row = study.enrolment_of(session, _inmate(session, number).id, slug)
        assert row.version_id is not None
        found = catalog.media(session, row.version_id, path)
        if found is None:
            raise NotFound(f"the course has no file {path}")
        return found.content_type, found.data
    return await read(kernel, work)


async def lesson_audio(kernel: Kernel, page: LessonPage) -> bytes:
    """The lesson read aloud (WAV), made once per text and voice and kept in the data dir's cache."""
    folder = kernel.settings.data_dir / "cache" / "speech"
    path = await asyncio.to_thread(speech.lesson_audio, folder, page.language, page.markdown)
    return await asyncio.to_thread(path.read_bytes)


@dataclass(frozen=True, slots=True)
class SiteState:
    site: Site
    open: bool
    """Whether a policy rule opens the site's first path to this subject now (GET, over HTTPS or HTTP)."""


def site_states(snapshot: Snapshot, sites: Sequence[Site], who: Subject, now: datetime) -> list[SiteState]:
    """The sites a course says it needs, each with whether the gateway opens it to `who`. A package only
    declares its sites; a policy rule scoped to the course (`courses: [id]`) opens them, so an imported course
    never opens a site that security staff have not allowed."""
    states = []
    for site in sites:
        path = site.paths[0] if site.paths else "/"
        asked = RequestFacts("GET", site.host, 0, path)
        opened = any(decide_url(scheme, replace(asked, port=port), who, snapshot, now=now).final.allowed
                     for scheme, port in (("https", 443), ("http", 80)))
        states.append(SiteState(site, opened))
    return states


def course_subject(slug: str) -> Subject:
    """A learner of this course and nothing else, at a classroom terminal: what the course alone opens."""
    return Subject("", frozenset(), "", "classroom", "", frozenset({slug}))


def can_read_aloud(language: str) -> bool:
    return speech.available(language)


# -- quizzes --------------------------------------------------------------------------------------------------------

async def start_attempt(kernel: Kernel, number: str, terminal: str, slug: str, module: int, now: datetime) -> str:
    """The attempt to go to: the unfinished one at this quiz, else a new one."""
    def work(session: Session) -> tuple[str, int, bool]:
        row = study.enrolment_of(session, _inmate(session, number).id, slug)
        made = study.start_attempt(session, row, module, now)
        return made.token, made.number, made.started_at == now
    token, count, new = await change(kernel, work)
    if new:
        await _record(kernel, Tag.LEARNING_ATTEMPT_STARTED, number, terminal,
                      f"{number} in {slug}: quiz {module}, attempt {count}")
    return token


async def attempt(kernel: Kernel, number: str, token: str) -> study.AttemptView:
    return await read(kernel, lambda s: study.view_attempt(s, _inmate(s, number).id, token))


async def answer(kernel: Kernel, number: str, terminal: str, token: str, question: str,
                 form: Mapping[str, Sequence[str]], now: datetime) -> tuple[study.Answered, study.AttemptView]:
    """The graded answer and the attempt after it."""
    def work(session: Session) -> tuple[study.Answered, study.AttemptView]:
        me = _inmate(session, number).id
        done = study.answer(session, kernel.settings, me, token, question, form, now)
        return done, study.view_attempt(session, me, token)
    done, view = await change(kernel, work)
    subject = f"{number} in {view.course}"
    if view.finished:
        await _record(kernel, Tag.LEARNING_ATTEMPT_FINISHED, number, terminal,
                      f"{subject}: quiz {view.module}, attempt {view.number}: {view.score}%, "
                      f"{'passed' if view.passed else 'not passed'}")
    await after(kernel, done.outcome, number, terminal, subject)
    return done, view


# -- certificates ---------------------------------------------------------------------------------------------------

async def certificate(kernel: Kernel, number: str, certificate_id: str, form: str) -> bytes:
    def work(session: Session) -> bytes:
        found = study.certificate_of(session, _inmate(session, number).id, certificate_id)
        if form == "pdf":
            return awards.certificate_pdf(session, kernel.settings, found)
        return awards.certificate_json(found)
    return await read(kernel, work)


async def verify(kernel: Kernel, data: bytes) -> Verdict:
    return await read(kernel, lambda s: awards.verify_bytes(s, kernel.settings, data))


async def verify_code(kernel: Kernel, code: str) -> tuple[Verdict, dict[str, Any]] | None:
    """The verdict on the certificate this short code names, with what it says; None when no such code."""
    def work(session: Session) -> tuple[Verdict, dict[str, Any]] | None:
        found = awards.lookup(session, code)
        if found is None:
            return None
        return awards.verify_bytes(session, kernel.settings, found.signed), awards.credential_of(found.signed)
    return await read(kernel, work)


def key_document(kernel: Kernel) -> bytes:
    return awards.key_document(kernel.settings)


# -- the portal's own rounds ---------------------------------------------------------------------------------------

SWEEP_SECONDS = 60.0


async def sweep_ended(kernel: Kernel) -> int:
    """Enrolments whose last day has passed become `ended`, each recorded with its grant closed."""
    outcome = await change(kernel, lambda s: enrolment.sweep_ended(s, utcnow()))
    await closed(kernel, outcome, "system", "the last day passed")
    return len(outcome.enrolments)


async def closed(kernel: Kernel, outcome: enrolment.Outcome, actor: str, why: str) -> None:
    """Record and announce enrolments another change closed (the end date, a release)."""
    for row in outcome.enrolments:
        await record(kernel, AuditEvent(Tag.LEARNING_GRANT_CLOSED, "portal", actor=actor, decision="deny",
                                        reason=f"{row.inmate.number}: the sites of course {row.course.slug} close: "
                                               f"{why}"))
    for event in outcome.events:
        await announce(kernel, event)
