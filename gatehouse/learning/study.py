"""Studying: what an enrolled inmate reads, answers and completes, with the rules of `rules` applied and kept.

Every function takes the inmate's own id and refuses an enrolment, lesson or attempt that is not theirs with the
same `NotFound` as one that does not exist, so a forged id learns nothing. A quiz attempt's questions are drawn
once and stored; answers are graded here and stored as they come, one question after another, so a closed browser
resumes at the next unanswered question and a replayed or out-of-turn answer is refused. Nothing that tells a
right answer leaves this module before that answer is graded: `Shown` questions carry prompts and options only.

When the last thing a course needs is done (by `package.Course.completion`), the enrolment is completed, which
closes the course's sites (`Outcome.events`), and its certificate is issued.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.bus import ControlEvent
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.learning import awards, catalog, content, enrolment, record, rules
from gatehouse.learning.models import (
    Answer,
    Attempt,
    Enrolment,
    EnrolmentStatus,
    IssuedCertificate,
    LessonProgress,
)
from gatehouse.learning.package import Course, Lesson, Module, Question, Quiz
from gatehouse.settings import Settings

IDLE_AFTER = timedelta(seconds=120)
"""A gap between two signs of activity counts up to this much: a tab left open adds no more."""

class Refused(Conflict):
    """A step the rules do not allow now; `code` names which, for a page to say it in the learner's language."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadAnswer(InvalidInput):
    """An answer that cannot be graded as given (nothing chosen, not a number); nothing is kept, ask again."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_RULES = {"all-lessons-and-quiz": rules.CompletionRule.ALL_LESSONS_AND_FINAL_QUIZ,
          "all-lessons": rules.CompletionRule.ALL_LESSONS, "final-quiz": rules.CompletionRule.FINAL_QUIZ_ONLY}
_READABLE = (EnrolmentStatus.ACTIVE.value, EnrolmentStatus.COMPLETED.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step changed that the caller announces (bus events) and records (completion, certificate)."""

    events: list[ControlEvent] = field(default_factory=list)
    completed: bool = False
    certificate: IssuedCertificate | None = None


# -- finding what is the inmate's own -------------------------------------------------------------------------

def enrolment_of(session: Session, inmate_id: int, slug: str) -> Enrolment:
    """The inmate's active enrolment in the course, else their latest completed one (which stays readable)."""
    rows = list(session.scalars(select(Enrolment).join(Enrolment.course).where(
        Enrolment.inmate_id == inmate_id, Enrolment.status.in_(_READABLE),
        Enrolment.course.has(slug=slug)).order_by(Enrolment.id.desc())))
    active = [r for r in rows if r.status == EnrolmentStatus.ACTIVE.value]
    chosen = (active or rows)[0] if rows else None
    if chosen is None or chosen.version is None:
        raise NotFound(f"you are not enrolled in the course {slug!r}")
    return chosen


def course_of(row: Enrolment) -> Course:
    if row.version is None:
        raise NotFound(f"enrolment {row.id} has no course version")
    return catalog.course_of(row.version)


def lesson_at(course: Course, number: int) -> Lesson:
    """Lessons are numbered from 1 in reading order, across modules."""
    every = content.lessons_of(course)
    if not 1 <= number <= len(every):
        raise NotFound(f"the course has no lesson {number}")
    return every[number - 1]


def module_at(course: Course, number: int) -> Module:
    if not 1 <= number <= len(course.modules):
        raise NotFound(f"the course has no module {number}")
    return course.modules[number - 1]


def quiz_at(course: Course, number: int) -> Quiz:
    quiz = module_at(course, number).quiz
    if quiz is None:
        raise NotFound(f"module {number} has no quiz")
    return quiz


def translated(lesson: Lesson, language: str) -> tuple[str, str, str]:
    """(title, Markdown, language) of the lesson in `language` if the course has it, else in its own."""
    for t in lesson.translations:
        if t.language == language:
            return t.title, t.text, t.language
    return lesson.title, lesson.text, ""


def _active(row: Enrolment, now: datetime) -> None:
    if row.status != EnrolmentStatus.ACTIVE.value:
        raise Refused("finished", "this course is finished; its quizzes are closed")
    if row.starts_at > now:
        raise Refused("not-started", "this course has not started yet")
    if row.ends_at is not None and row.ends_at <= now:
        raise Refused("ended", "this course's end date has passed; ask education staff")


# -- progress ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QuizState:
    module: int
    file: str
    practice: bool
    attempts: int
    """Finished attempts."""
    limit: int | None
    best: int | None
    """Best score in percent (graded quizzes)."""
    passed: bool
    """Passed (graded) or mastered (practice)."""
    open_token: str | None
    """An unfinished attempt to resume."""
    needed: int | None
    """Practice: right answers still needed for mastery."""

    @property
    def may_start(self) -> bool:
        return self.open_token is None and not (self.passed and not self.practice) \
            and rules.may_start_attempt(self.attempts, self.limit)


@dataclass(frozen=True, slots=True)
class Progress:
    done: frozenset[str]
    """Lesson files completed."""
    opened: frozenset[str]
    seconds: int
    quizzes: dict[int, QuizState]
    lessons_total: int
    percent: int
    next_lesson: int
    """The lesson "continue" opens: the one opened last, else the first not done, else the first."""


def _history(session: Session, enrolment_id: int, quiz: str) -> list[bool]:
    return list(session.scalars(select(Answer.correct).join(Attempt).where(
        Attempt.enrolment_id == enrolment_id, Attempt.quiz == quiz).order_by(Attempt.number, Answer.answered_at)))


def _mastery(quiz: Quiz) -> rules.MOfN | rules.InARow | None:
    if quiz.mastery is None:
        return None
    return rules.InARow(quiz.mastery.n) if quiz.mastery.kind == "in_a_row" else rules.MOfN(quiz.mastery.m,
                                                                                           quiz.mastery.n)


def _quiz_state(session: Session, row: Enrolment, number: int, quiz: Quiz) -> QuizState:
    attempts = list(session.scalars(select(Attempt).where(Attempt.enrolment_id == row.id, Attempt.quiz == quiz.file)
                                    .order_by(Attempt.number)))
    finished = [a for a in attempts if a.finished_at is not None]
    model = _mastery(quiz)
    needed = None if model is None else rules.right_answers_needed(_history(session, row.id, quiz.file), model)
    scores = [a.score for a in finished if a.score is not None]
    passed = needed == 0 if model is not None else any(a.passed for a in finished)
    return QuizState(number, quiz.file, model is not None, len(finished), None if model or not quiz.attempts
                     else quiz.attempts, max(scores) if scores else None, passed,
                     next((a.token for a in attempts if a.finished_at is None), None), needed)


def progress(session: Session, row: Enrolment) -> Progress:
    course = course_of(row)
    kept = {p.lesson: p for p in session.scalars(select(LessonProgress).where(LessonProgress.enrolment_id == row.id))}
    every = [lesson.file for lesson in content.lessons_of(course)]
    done = frozenset(f for f, p in kept.items() if p.completed_at is not None and f in every)
    quizzes = {n: _quiz_state(session, row, n, m.quiz) for n, m in enumerate(course.modules, 1) if m.quiz}
    final = content.final_quiz(course)
    steps = len(every) + (1 if final is not None and course.completion != "all-lessons" else 0)
    steps_done = len(done) + (1 if final is not None and course.completion != "all-lessons" and any(
        q.passed for q in quizzes.values() if q.file == final.file) else 0)
    if course.completion == "final-quiz" and final is not None:
        steps, steps_done = 1, int(any(q.passed for q in quizzes.values() if q.file == final.file))
    percent = 100 if row.status == EnrolmentStatus.COMPLETED.value else min(99, rules.progress_percent(
        steps_done, steps))
    if row.last_lesson in every:
        following = every.index(row.last_lesson) + 1
    else:
        following = next((i for i, f in enumerate(every, 1) if f not in done), 1)
    return Progress(done, frozenset(kept), sum(p.active_seconds for p in kept.values()), quizzes, len(every),
                    percent, following)


def _lesson_row(session: Session, row: Enrolment, lesson: str, now: datetime) -> LessonProgress:
    kept = session.get(LessonProgress, (row.id, lesson))
    if kept is None:
        kept = LessonProgress(enrolment_id=row.id, lesson=lesson, opened_at=now, last_activity_at=now,
                              active_seconds=0)
        session.add(kept)
    return kept


def open_lesson(session: Session, row: Enrolment, number: int, now: datetime) -> Lesson:
    """The lesson, marked opened and remembered as where the learner is (also on a finished course)."""
    lesson = lesson_at(course_of(row), number)
    kept = _lesson_row(session, row, lesson.file, now)
    _count(kept, now)
    row.last_lesson = lesson.file
    session.flush()
    return lesson


def _count(kept: LessonProgress, now: datetime) -> None:
    gap = (now - kept.last_activity_at).total_seconds()
    if gap > 0:
        kept.active_seconds += int(min(gap, IDLE_AFTER.total_seconds()))
    kept.last_activity_at = max(now, kept.last_activity_at)


def activity(session: Session, row: Enrolment, number: int, now: datetime) -> int:
    """The page reports the learner active (reading, scrolling, typing): time spent grows by the gap since the
    last report, up to `IDLE_AFTER`. Returns the lesson's active seconds."""
    lesson = lesson_at(course_of(row), number)
    kept = session.get(LessonProgress, (row.id, lesson.file))
    if kept is None:
        raise Refused("not-opened", "open the lesson first")
    _count(kept, now)
    session.flush()
    return kept.active_seconds


def finish_lesson(session: Session, settings: Settings, row: Enrolment, number: int, now: datetime) -> Outcome:
    """The learner marks the lesson done; the course may be complete with it."""
    _active(row, now)
    lesson = lesson_at(course_of(row), number)
    kept = _lesson_row(session, row, lesson.file, now)
    _count(kept, now)
    if kept.completed_at is None:
        kept.completed_at = now
    session.flush()
    return _maybe_complete(session, settings, row, now)


# -- quizzes ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Shown:
    """A question as the learner sees it before answering: no right answer, no feedback, no accepted texts."""

    id: str
    type: str
    prompt: str
    options: tuple[tuple[str, str], ...]
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class Marked:
    """An answer as graded, with what the learner may see once it is graded."""

    question: str
    prompt: str
    correct: bool
    feedback: str
    """`rules.Feedback` value."""
    explanation: str
    right_answer: str
    """The right answer as text, shown after grading (for at-end feedback, at the end)."""


def to_rule(question: Question) -> rules.Question:
    """The package's question as the grading rules take it."""
    if question.type == "single":
        return rules.SingleChoice(question.id, tuple(o for o, _ in question.options), question.answer[0])
    if question.type == "multiple":
        return rules.MultipleChoice(question.id, tuple(o for o, _ in question.options), frozenset(question.answer))
    if question.type == "truefalse":
        return rules.TrueFalse(question.id, question.answer[0] == "true")
    if question.type == "numeric":
        return rules.Numeric(question.id, float(question.answer[0]), question.tolerance)
    return rules.ShortText(question.id, question.accepted)


def _right_answer(question: Question) -> str:
    texts = dict(question.options)
    if question.type in ("single", "multiple"):
        return ", ".join(texts[a] for a in question.answer)
    if question.type == "numeric":
        return question.answer[0] + (f" ± {question.tolerance:g}" if question.tolerance else "")
    if question.type == "text":
        return question.accepted[0]
    return question.answer[0]


def _attempt(session: Session, inmate_id: int, token: str) -> Attempt:
    found = session.scalar(select(Attempt).where(Attempt.token == token).with_for_update())
    if found is None or _enrolment(session, found).inmate_id != inmate_id:
        raise NotFound("no such quiz attempt")
    return found


def _enrolment(session: Session, attempt: Attempt) -> Enrolment:
    row = session.get(Enrolment, attempt.enrolment_id)
    if row is None:  # pragma: no cover - the foreign key cascades
        raise NotFound("no such quiz attempt")
    return row


def _quiz_of(row: Enrolment, attempt: Attempt) -> Quiz:
    for quiz in content.quizzes_of(course_of(row)):
        if quiz.file == attempt.quiz:
            return quiz
    raise NotFound("the quiz of this attempt is not in the course")  # pragma: no cover - versions are fixed


def start_attempt(session: Session, row: Enrolment, module: int, now: datetime) -> Attempt:
    """The unfinished attempt at this quiz if there is one (resumed), else a new one with its questions drawn."""
    _active(row, now)
    quiz = quiz_at(course_of(row), module)
    state = _quiz_state(session, row, module, quiz)
    if state.open_token is not None:
        return _attempt(session, row.inmate_id, state.open_token)
    if state.passed and not state.practice:
        raise Refused("passed", "you have passed this quiz already")
    if not rules.may_start_attempt(state.attempts, state.limit):
        raise Refused("no-attempts", f"all {state.limit} attempts at this quiz are used")
    token = secrets.token_urlsafe(24)
    drawn = rules.draw([q.id for q in quiz.questions], quiz.pool or len(quiz.questions), token,
                       shuffle=quiz.order == "random")
    number = (session.scalar(select(func.max(Attempt.number)).where(
        Attempt.enrolment_id == row.id, Attempt.quiz == quiz.file)) or 0) + 1
    made = Attempt(token=token, enrolment_id=row.id, quiz=quiz.file, number=number, questions=list(drawn),
                   started_at=now)
    session.add(made)
    session.flush()  # the unique (enrolment, quiz, number) refuses a second start at the same moment
    return made


def _answers(session: Session, attempt: Attempt) -> dict[str, Answer]:
    return {a.question: a for a in session.scalars(select(Answer).where(Answer.attempt_id == attempt.id))}


@dataclass(frozen=True, slots=True)
class AttemptView:
    token: str
    course: str
    """The course's id."""
    module: int
    quiz: Quiz
    number: int
    finished: bool
    next_question: Shown | None
    answered: int
    marked: list[Marked]
    """Graded answers the learner may see now: all of them at the end, or each as it comes (after-each)."""
    score: int | None
    passed: bool | None
    practice: bool
    needed: int | None


def _shown(question: Question, position: int, count: int) -> Shown:
    return Shown(question.id, question.type, question.prompt, question.options, position, count)


def _marked(question: Question, answer: Answer) -> Marked:
    return Marked(question.id, question.prompt, answer.correct, answer.feedback, question.feedback,
                  _right_answer(question))


def view_attempt(session: Session, inmate_id: int, token: str) -> AttemptView:
    attempt = _attempt(session, inmate_id, token)
    row = _enrolment(session, attempt)
    quiz = _quiz_of(row, attempt)
    by_id = {q.id: q for q in quiz.questions}
    given = _answers(session, attempt)
    waiting = [q for q in attempt.questions if q not in given]
    finished = attempt.finished_at is not None
    upcoming = None if finished or not waiting else _shown(by_id[waiting[0]], len(given) + 1, len(attempt.questions))
    show = finished or quiz.feedback == "after-each"
    marked = [_marked(by_id[q], given[q]) for q in attempt.questions if q in given] if show else []
    model = _mastery(quiz)
    needed = None if model is None else rules.right_answers_needed(_history(session, row.id, quiz.file), model)
    module = next(n for n, m in enumerate(course_of(row).modules, 1) if m.quiz and m.quiz.file == quiz.file)
    return AttemptView(attempt.token, row.course.slug, module, quiz, attempt.number, finished, upcoming, len(given),
                       marked, attempt.score, attempt.passed, model is not None, needed)


def _given(question: Question, form: Mapping[str, Sequence[str]]) -> object:
    """The answer from the form's values for `answer` (several for multiple choice)."""
    values = [v for v in form.get("answer", []) if isinstance(v, str)]
    if question.type == "multiple":
        if not values:
            raise BadAnswer("choose", "choose one answer or more")
        return values
    if len(values) != 1:
        if question.type in ("single", "truefalse"):
            raise BadAnswer("choose", "choose an answer")
        raise BadAnswer("write", "write an answer")
    value = values[0]
    if question.type == "truefalse":
        if value not in ("true", "false"):
            raise BadAnswer("choose", "choose true or false")
        return value == "true"
    if question.type == "text" and not value.strip():
        raise BadAnswer("write", "write an answer")
    return value


@dataclass(frozen=True, slots=True)
class Answered:
    marked: Marked | None
    """Shown at once when the quiz gives feedback after each question."""
    finished: bool
    outcome: Outcome


def answer(session: Session, settings: Settings, inmate_id: int, token: str, question_id: str,
           form: Mapping[str, Sequence[str]], now: datetime) -> Answered:
    """Grade and keep the answer to the attempt's next question; refused for any other question, a question
    answered already (a replay), a finished attempt, or another inmate's."""
    attempt = _attempt(session, inmate_id, token)
    if attempt.finished_at is not None:
        raise Refused("attempt-finished", "this attempt is finished; its answers cannot change")
    row = _enrolment(session, attempt)
    _active(row, now)
    quiz = _quiz_of(row, attempt)
    given = _answers(session, attempt)
    waiting = [q for q in attempt.questions if q not in given]
    if not waiting or question_id != waiting[0]:
        raise Refused("out-of-turn", "this is not the question the attempt is at; reload the page")
    question = next(q for q in quiz.questions if q.id == question_id)
    value = _given(question, form)
    try:
        graded = rules.grade(to_rule(question), value)
    except rules.NotANumber:
        raise BadAnswer("number", "write a number, with a comma or a point before the decimals") from None
    except rules.AnswerError:
        raise BadAnswer("not-a-choice", "that answer is not one of the choices") from None
    made = Answer(attempt_id=attempt.id, question=question.id, given=_stored(value),
                  correct=graded.correct, feedback=graded.feedback.value, answered_at=now)
    session.add(made)
    session.flush()
    given[question.id] = made
    model = _mastery(quiz)
    outcome = Outcome()
    done = len(waiting) == 1 or (model is not None and rules.mastered(_history(session, row.id, quiz.file), model))
    if done:
        outcome = _finish(session, settings, row, attempt, quiz, given, now)
    return Answered(_marked(question, made) if quiz.feedback == "after-each" else None, done, outcome)


def _stored(value: object) -> object:
    return value if isinstance(value, bool | str) else list(value) if isinstance(value, list) else str(value)


def _finish(session: Session, settings: Settings, row: Enrolment, attempt: Attempt, quiz: Quiz,
            given: dict[str, Answer], now: datetime) -> Outcome:
    grades = [rules.Graded(a.correct, 1.0 if a.correct else 0.0, rules.Feedback(a.feedback)) for a in given.values()]
    model = _mastery(quiz)
    if model is not None:
        passed = rules.mastered(_history(session, row.id, quiz.file), model)
        score = rules.attempt_result(grades, 0).score
    else:
        result = rules.attempt_result(grades, quiz.pass_mark / 100)
        score, passed = result.score, result.passed
    attempt.finished_at, attempt.score, attempt.passed = now, int(score * 100 + 1e-9), passed
    session.flush()
    return _maybe_complete(session, settings, row, now)


# -- completion -------------------------------------------------------------------------------------------------

def _maybe_complete(session: Session, settings: Settings, row: Enrolment, now: datetime) -> Outcome:
    if row.status != EnrolmentStatus.ACTIVE.value:
        return Outcome()
    course = course_of(row)
    state = progress(session, row)
    final = content.final_quiz(course)
    final_passed = final is not None and any(q.passed for q in state.quizzes.values() if q.file == final.file)
    rule = _RULES[course.completion]
    if final is None and rule is not rules.CompletionRule.ALL_LESSONS:
        rule = rules.CompletionRule.ALL_LESSONS  # nothing to pass: the lessons are the course
    if not rules.course_complete(len(state.done), state.lessons_total, final_passed, rule):
        return Outcome()
    closed = enrolment.complete(session, row, now)
    best = max((q.best for q in state.quizzes.values() if final and q.file == final.file and q.best is not None),
               default=None)
    result = "completed" if best is None else f"{best}%"
    certificate = awards.issue_certificate(session, settings, row, hours=record.hours_of(session, row.id),
                                           result=result, now=now)
    return Outcome(closed.events, True, certificate)


def certificate_of(session: Session, inmate_id: int, certificate_id: str) -> IssuedCertificate:
    found = session.get(IssuedCertificate, certificate_id)
    if found is None or found.enrolment.inmate_id != inmate_id:
        raise NotFound("no such certificate")
    return found


def certificates_of(session: Session, inmate_id: int) -> list[IssuedCertificate]:
    return list(session.scalars(select(IssuedCertificate).join(Enrolment).where(Enrolment.inmate_id == inmate_id)
                                .order_by(IssuedCertificate.issued_at.desc())))
