"""Studying, on SQLite and PostgreSQL: lessons opened and done, time from activity, quiz attempts drawn once,
answered in turn and resumed, forged and replayed answers refused, and completion with its certificate."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gatehouse.bus import EnrolmentChanged
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.kernel import Kernel
from gatehouse.learning import awards, catalog, enrolment, grants, study
from gatehouse.learning.models import Answer, Attempt, Enrolment, EnrolmentStatus
from gatehouse.learning.package import load_package
from gatehouse.settings import Settings
from tests.helpers import INMATE, OTHER_INMATE, populate
from tests.test_course_package import build

NOW = utcnow().replace(microsecond=0)

COURSE = """\
id: safe-money
title: Money safely
language: en
level: A2
category: life
duration_minutes: 60
completion: all-lessons-and-quiz
translations: [nl]
modules:
  - title: Basics
    lessons: [lessons/cash.md, lessons/bank.md]
    quiz: quizzes/practice.yaml
  - title: Check
    lessons: [lessons/scam.md]
    quiz: quizzes/final.yaml
"""
PRACTICE = """\
questions:
  - {id: p1, type: truefalse, prompt: A bank card has a PIN., answer: true}
  - {id: p2, type: truefalse, prompt: You tell your PIN to callers., answer: false}
  - {id: p3, type: numeric, prompt: "2 + 2?", answer: 4}
order: fixed
mastery: {in_a_row: 2}
"""
FINAL = """\
questions:
  - id: f1
    type: single
    prompt: Who may ask for your PIN?
    options: {a: Nobody, b: The bank by phone}
    answer: a
  - id: f2
    type: multiple
    prompt: Signs of a scam
    options: {a: Hurry, b: A prize you did not enter, c: Your own bank app}
    answer: [a, b]
  - {id: f3, type: numeric, prompt: "How many digits in a PIN?", answer: 4, tolerance: 0}
  - {id: f4, type: text, prompt: Name the thing you never share, accepted: [PIN, pin code]}
order: fixed
attempts: 2
pass_mark: 75
feedback: at-end
"""
FILES: dict[str, str | bytes] = {
    "course.yaml": COURSE, "quizzes/practice.yaml": PRACTICE, "quizzes/final.yaml": FINAL,
    **{f"lessons/{name}.md": f"# {name.title()}\n\nAbout {name}.\n" for name in ("cash", "bank", "scam")},
    **{f"lessons/{name}.nl.md": f"# {name.upper()} (nl)\n\nOver {name}.\n" for name in ("cash", "bank", "scam")},
}
RIGHT = {"f1": ["a"], "f2": ["a", "b"], "f3": ["4"], "f4": ["Pin Code"]}
WRONG = {"f1": ["b"], "f2": ["a"], "f3": ["5"], "f4": ["password"]}


@dataclass
class Place:
    settings: Settings
    kernel: Kernel

    def inmate_id(self, number: str) -> int:
        with self.kernel.factory() as session:
            found = session.scalar(select(Inmate.id).where(Inmate.number == number))
            assert found is not None
            return found


@pytest.fixture
def place(tmp_path: Path, database_url: str) -> Iterator[Place]:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0, "database.url": database_url},
                          quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        catalog.import_course(session, load_package(build(tmp_path / "pkg", FILES)), by="teacher", now=NOW)
        enrolment.enrol(session, course="safe-money", inmate=INMATE, by="teacher", now=NOW)
        enrolment.enrol(session, course="safe-money", inmate=OTHER_INMATE, by="teacher", now=NOW)
    yield Place(settings, kernel)
    kernel.engine.dispose()


def at(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def answer_all(place: Place, inmate: int, module: int, answers: dict[str, list[str]], when: timedelta
               ) -> study.Answered:
    with place.kernel.factory.begin() as session:
        row = study.enrolment_of(session, inmate, "safe-money")
        token = study.start_attempt(session, row, module, NOW + when).token
    answered = None
    for _ in answers:
        with place.kernel.factory.begin() as session:
            shown = study.view_attempt(session, inmate, token).next_question
            assert shown is not None
            answered = study.answer(session, place.settings, inmate, token, shown.id, {"answer": answers[shown.id]},
                                    NOW + when)
    assert answered is not None
    return answered


def read_every_lesson(place: Place, inmate: int) -> None:
    with place.kernel.factory.begin() as session:
        row = study.enrolment_of(session, inmate, "safe-money")
        for number in (1, 2, 3):
            study.open_lesson(session, row, number, NOW + at(number * 60))
            study.activity(session, row, number, NOW + at(number * 60 + 30))
            study.finish_lesson(session, place.settings, row, number, NOW + at(number * 60 + 50))


def test_lessons_count_active_time_not_an_open_tab_and_resume(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as session:
        row = study.enrolment_of(session, me, "safe-money")
        lesson = study.open_lesson(session, row, 2, NOW)
        assert lesson.file == "lessons/bank.md"
        assert study.translated(lesson, "nl")[:2] == ("BANK (nl)", "# BANK (nl)\n\nOver bank.\n")
        assert study.translated(lesson, "de")[0] == "Bank"
        assert study.activity(session, row, 2, NOW + at(30)) == 30
        assert study.activity(session, row, 2, NOW + at(60)) == 60
        # An hour with the tab open and nobody there counts as IDLE_AFTER only.
        assert study.activity(session, row, 2, NOW + at(3660)) == 60 + study.IDLE_AFTER.total_seconds()
        with pytest.raises(Conflict):
            study.activity(session, row, 3, NOW + at(3700))  # never opened
        with pytest.raises(NotFound):
            study.open_lesson(session, row, 4, NOW)
    with place.kernel.factory() as session:
        state = study.progress(session, study.enrolment_of(session, me, "safe-money"))
        assert (state.next_lesson, state.done, state.percent) == (2, frozenset(), 0)  # where they were
        assert state.opened == {"lessons/bank.md"} and state.seconds == 180


def test_an_attempt_is_drawn_once_and_resumes_where_it_was(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as session:
        row = study.enrolment_of(session, me, "safe-money")
        first = study.start_attempt(session, row, 2, NOW)
        token, drawn = first.token, list(first.questions)
        assert drawn == ["f1", "f2", "f3", "f4"]
    with place.kernel.factory.begin() as session:
        study.answer(session, place.settings, me, token, "f1", {"answer": ["a"]}, NOW)
    # The browser closes; the next start is the same attempt, at the second question.
    with place.kernel.factory.begin() as session:
        again = study.start_attempt(session, study.enrolment_of(session, me, "safe-money"), 2, NOW + at(600))
        assert again.token == token
        view = study.view_attempt(session, me, token)
        assert view.next_question is not None and (view.next_question.id, view.answered) == ("f2", 1)
        assert view.marked == []  # feedback at the end: nothing graded is shown yet


def test_shown_questions_carry_no_answers(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as session:
        token = study.start_attempt(session, study.enrolment_of(session, me, "safe-money"), 2, NOW).token
        shown = study.view_attempt(session, me, token).next_question
    assert shown is not None
    assert {f.name for f in dataclasses.fields(shown)} == {"id", "type", "prompt", "options", "position", "count"}
    assert shown.options == (("a", "Nobody"), ("b", "The bank by phone"))


def test_forged_replayed_and_out_of_turn_answers_are_refused(place: Place) -> None:
    me, other = place.inmate_id(INMATE), place.inmate_id(OTHER_INMATE)
    with place.kernel.factory.begin() as session:
        token = study.start_attempt(session, study.enrolment_of(session, me, "safe-money"), 2, NOW).token
    with place.kernel.factory.begin() as session, pytest.raises(NotFound):
        study.answer(session, place.settings, other, token, "f1", {"answer": ["a"]}, NOW)  # another's attempt
    with place.kernel.factory.begin() as session, pytest.raises(NotFound):
        study.view_attempt(session, other, token)
    with place.kernel.factory.begin() as session, pytest.raises(Conflict):
        study.answer(session, place.settings, me, token, "f3", {"answer": ["4"]}, NOW)  # not its turn
    with place.kernel.factory.begin() as session, pytest.raises(InvalidInput):
        study.answer(session, place.settings, me, token, "f1", {"answer": ["z"]}, NOW)  # no such option
    with place.kernel.factory.begin() as session:
        study.answer(session, place.settings, me, token, "f1", {"answer": ["b"]}, NOW)
    with place.kernel.factory.begin() as session, pytest.raises(Conflict):
        study.answer(session, place.settings, me, token, "f1", {"answer": ["a"]}, NOW)  # replayed, to change it
    with place.kernel.factory.begin() as session:
        study.answer(session, place.settings, me, token, "f2", {"answer": ["a"]}, NOW)
    with place.kernel.factory.begin() as session, pytest.raises(InvalidInput, match="number"):
        study.answer(session, place.settings, me, token, "f3", {"answer": ["four"]}, NOW)
    with place.kernel.factory() as session:
        kept = session.scalars(select(Answer).join(Attempt).where(Attempt.token == token)).all()
        # The refused changed nothing; f2 was only partly right.
        assert sorted((a.question, a.correct, a.feedback) for a in kept) == [
            ("f1", False, "incorrect"), ("f2", False, "incomplete")]


def test_fail_retry_pass_completes_closes_the_grant_and_certifies(place: Place) -> None:
    me = place.inmate_id(INMATE)
    read_every_lesson(place, me)
    failed = answer_all(place, me, 2, WRONG, at(400))
    assert failed.finished and not failed.outcome.completed
    with place.kernel.factory() as session:
        row = study.enrolment_of(session, me, "safe-money")
        final = study.progress(session, row).quizzes[2]
        assert (final.attempts, final.best, final.passed, final.may_start) == (1, 0, False, True)
        view = study.view_attempt(session, me, session.scalars(select(Attempt.token)).one())
        assert view.finished and [m.right_answer for m in view.marked] == ["Nobody", "Hurry, A prize you did not enter",
                                                                           "4", "PIN"]
        assert "safe-money" in grants.active_courses(session, me, NOW + at(500))
    passed = answer_all(place, me, 2, RIGHT, at(500))
    assert passed.finished and passed.outcome.completed
    assert passed.outcome.events == [EnrolmentChanged(INMATE, "safe-money", False)]
    certificate = passed.outcome.certificate
    assert certificate is not None
    with place.kernel.factory() as session:
        row = study.enrolment_of(session, me, "safe-money")
        assert (row.status, study.progress(session, row).percent) == ("completed", 100)
        assert "safe-money" not in grants.active_courses(session, me, NOW + at(600))
        shown = awards.credential_of(study.certificate_of(session, me, certificate.id).signed)
        assert (shown["course"], shown["result"], shown["hours"]) == ("Money safely", "100%", "0.0")
        with pytest.raises(NotFound):
            study.certificate_of(session, place.inmate_id(OTHER_INMATE), certificate.id)
        with pytest.raises(Conflict, match="finished"):
            study.start_attempt(session, row, 2, NOW + at(700))
        # A finished course stays readable.
        assert study.open_lesson(session, row, 1, NOW + at(700)).file == "lessons/cash.md"


def test_attempts_run_out_and_passing_twice_is_refused(place: Place) -> None:
    me = place.inmate_id(INMATE)
    answer_all(place, me, 2, WRONG, at(10))
    answer_all(place, me, 2, WRONG, at(20))
    with place.kernel.factory.begin() as session, pytest.raises(Conflict, match="all 2 attempts"):
        study.start_attempt(session, study.enrolment_of(session, me, "safe-money"), 2, NOW + at(30))
    other = place.inmate_id(OTHER_INMATE)
    answer_all(place, other, 2, RIGHT, at(10))  # lessons unread: passed, not complete
    with place.kernel.factory.begin() as session:
        row = study.enrolment_of(session, other, "safe-money")
        assert row.status == "active" and study.progress(session, row).quizzes[2].passed
        with pytest.raises(Conflict, match="passed"):
            study.start_attempt(session, row, 2, NOW + at(40))


def test_practice_is_mastered_by_a_run_of_right_answers(place: Place) -> None:
    me = place.inmate_id(INMATE)
    wrong_first = answer_all(place, me, 1, {"p1": ["false"], "p2": ["false"], "p3": ["4"]}, at(10))
    assert wrong_first.finished  # the pool ran out: p2 and p3 right, two in a row, mastered on the last
    with place.kernel.factory() as session:
        state = study.progress(session, study.enrolment_of(session, me, "safe-money")).quizzes[1]
        assert (state.practice, state.passed, state.needed) == (True, True, 0)
    other = place.inmate_id(OTHER_INMATE)
    with place.kernel.factory.begin() as session:
        token = study.start_attempt(session, study.enrolment_of(session, other, "safe-money"), 1, NOW).token
        for qid, value in (("p1", "true"), ("p2", "false")):
            done = study.answer(session, place.settings, other, token, qid, {"answer": [value]}, NOW)
        assert done.finished  # two right in a row: mastered before the pool ran out
        assert session.scalar(select(Attempt.passed).where(Attempt.token == token)) is True


def test_withdrawn_learner_cannot_answer(place: Place) -> None:
    me = place.inmate_id(INMATE)
    with place.kernel.factory.begin() as session:
        token = study.start_attempt(session, study.enrolment_of(session, me, "safe-money"), 2, NOW).token
        enrolment.withdraw(session, course="safe-money", inmate=INMATE, reason="moved unit", by="teacher", now=NOW)
    with place.kernel.factory.begin() as session, pytest.raises(Conflict):
        study.answer(session, place.settings, me, token, "f1", {"answer": ["a"]}, NOW)
    with place.kernel.factory() as session, pytest.raises(NotFound):
        study.enrolment_of(session, me, "safe-money")
    with place.kernel.factory() as session:
        assert session.scalar(select(Enrolment.status).where(Enrolment.inmate_id == me)) == "withdrawn"


def test_two_enrolments_at_the_same_moment_make_one(place: Place) -> None:
    """Both see no enrolment yet; the database's unique index lets one in and the other is refused as taken."""
    with place.kernel.factory.begin() as session:
        enrolment.withdraw(session, course="safe-money", inmate=INMATE, reason="to enrol again", by="teacher",
                           now=NOW)
    first_in = threading.Event()
    results: list[str] = []

    def enrol(hold: bool) -> None:
        try:
            with place.kernel.factory.begin() as session:
                enrolment.enrol(session, course="safe-money", inmate=INMATE, by="teacher", now=NOW + at(1))
                if hold:
                    first_in.set()
                    time.sleep(0.5)  # the second checks for an open enrolment while this one is not committed
            results.append("enrolled")
        except Conflict as exc:
            results.append(f"refused: {exc}")

    holder = threading.Thread(target=enrol, args=(True,))
    holder.start()
    assert first_in.wait(10)
    enrol(False)
    holder.join()
    assert sorted(results) == ["enrolled", f"refused: {INMATE} is enrolled in safe-money already"]
    with place.kernel.factory() as session:
        statuses = session.scalars(select(Enrolment.status).join(Inmate).where(Inmate.number == INMATE)).all()
        assert sorted(statuses) == ["active", "withdrawn"]


def test_release_closes_every_open_enrolment_and_the_sweep_ends_past_ones(place: Place) -> None:
    with place.kernel.factory.begin() as session:
        catalog.import_course(session, load_package(build(place.settings.data_dir / "two", {
            **FILES, "course.yaml": str(FILES["course.yaml"]).replace("id: safe-money", "id: second")})),
            by="teacher", now=NOW)
        enrolment.request_enrolment(session, course="second", inmate=INMATE, now=NOW)
        me = session.scalar(select(Inmate).where(Inmate.number == INMATE))
        assert me is not None
        released = enrolment.close_all(session, me, EnrolmentStatus.ENDED, "released", NOW + at(5))
        assert released.events == [EnrolmentChanged(INMATE, "safe-money", False)]  # the request opened nothing
        assert sorted((r.course.slug, r.status, r.reason) for r in released.enrolments) == [
            ("safe-money", "ended", "released"), ("second", "ended", "released")]
        enrolment.enrol(session, course="second", inmate=OTHER_INMATE, by="teacher", now=NOW,
                        ends_at=NOW + at(60))
    with place.kernel.factory.begin() as session:
        assert enrolment.sweep_ended(session, NOW + at(59)).enrolments == []
        swept = enrolment.sweep_ended(session, NOW + at(60))
        assert [(r.inmate.number, r.course.slug, r.status) for r in swept.enrolments] == [
            (OTHER_INMATE, "second", "ended")]
        assert swept.events == [EnrolmentChanged(OTHER_INMATE, "second", False)]
    with place.kernel.factory() as session:
        assert grants.active_courses(session, place.inmate_id(INMATE), NOW + at(10)) == frozenset()
