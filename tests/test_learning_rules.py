"""The pure rules of learning: grading each kind of question, drawing, attempts, mastery, time and completion."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gatehouse.learning.rules as rules_module
from gatehouse.learning.rules import (
    AnswerError,
    CompletionRule,
    Feedback,
    Graded,
    InARow,
    LearningRuleError,
    MOfN,
    MultipleChoice,
    NotANumber,
    Numeric,
    Question,
    QuestionError,
    ShortText,
    SingleChoice,
    TrueFalse,
    active_seconds,
    attempt_result,
    course_complete,
    draw,
    grade,
    mastered,
    may_start_attempt,
    module_complete,
    normalize_text,
    parse_number,
    progress_percent,
    right_answers_needed,
)

CAPITAL = SingleChoice("capital", ("paris", "lyon", "nice"), "paris")
PRIMES = MultipleChoice("primes", ("2", "3", "4", "9"), frozenset({"2", "3"}))
EARTH = TrueFalse("earth-round", True)
PI = Numeric("pi", 3.14, 0.01)
HALF = Numeric("half", 3.5)
CITY = ShortText("city", ("New York", "NYC"))
CAFE = ShortText("cafe", ("café",), ignore_accents=True)
CAFE_STRICT = ShortText("cafe-strict", ("café",))
STRASSE = ShortText("strasse", ("Straße",))

RIGHT = Graded(True, 1.0, Feedback.CORRECT)
WRONG = Graded(False, 0.0, Feedback.INCORRECT)


@pytest.mark.parametrize(("question", "answer", "correct", "feedback"), [
    (CAPITAL, "paris", True, Feedback.CORRECT),
    (CAPITAL, "lyon", False, Feedback.INCORRECT),
    (PRIMES, frozenset({"2", "3"}), True, Feedback.CORRECT),
    (PRIMES, ["3", "2"], True, Feedback.CORRECT),
    (PRIMES, ("2",), False, Feedback.INCOMPLETE),
    (PRIMES, {"2", "3", "4"}, False, Feedback.INCORRECT),
    (PRIMES, {"2", "9"}, False, Feedback.INCORRECT),
    (PRIMES, set(), False, Feedback.INCORRECT),
    (PRIMES, {"2", "3", "4", "9"}, False, Feedback.INCORRECT),
    (EARTH, True, True, Feedback.CORRECT),
    (EARTH, False, False, Feedback.INCORRECT),
    (PI, 3.14, True, Feedback.CORRECT),
    (PI, "3,15", True, Feedback.CORRECT),
    (PI, "3.13", True, Feedback.CORRECT),
    (PI, " 3,14 ", True, Feedback.CORRECT),
    (PI, "3,12", False, Feedback.TOO_LOW),
    (PI, 3.1501, False, Feedback.TOO_HIGH),
    (PI, "3,16", False, Feedback.TOO_HIGH),
    (PI, 3, False, Feedback.TOO_LOW),
    (HALF, "3,5", True, Feedback.CORRECT),
    (HALF, "3.5", True, Feedback.CORRECT),
    (HALF, "３，５", True, Feedback.CORRECT),
    (HALF, "3,50", True, Feedback.CORRECT),
    (HALF, "3,51", False, Feedback.TOO_HIGH),
    (HALF, "-3,5", False, Feedback.TOO_LOW),
    (Numeric("neg", -0.5), "\u2212,5", True, Feedback.CORRECT),
    (CITY, "  new   york ", True, Feedback.CORRECT),
    (CITY, "NYC", True, Feedback.CORRECT),
    (CITY, "nyc\u00a0", True, Feedback.CORRECT),
    (CITY, "Newyork", False, Feedback.INCORRECT),
    (CITY, "York", False, Feedback.INCORRECT),
    (CAFE, "CAFE", True, Feedback.CORRECT),
    (CAFE, "cafe\u0301", True, Feedback.CORRECT),
    (CAFE_STRICT, "cafe", False, Feedback.INCORRECT),
    (CAFE_STRICT, "cafe\u0301", True, Feedback.CORRECT),
    (CAFE_STRICT, "CAFÉ", True, Feedback.CORRECT),
    (STRASSE, "STRASSE", True, Feedback.CORRECT),
    (ShortText("fi", ("ﬁne",)), "fine", True, Feedback.CORRECT),
])
def test_grade(question: Question, answer: object, correct: bool, feedback: Feedback) -> None:
    graded = grade(question, answer)
    assert graded == Graded(correct, 1.0 if correct else 0.0, feedback)


@pytest.mark.parametrize(("question", "answer", "error", "message"), [
    (CAPITAL, "rome", AnswerError, "has no option 'rome'"),
    (CAPITAL, ["paris"], AnswerError, "expects one option id"),
    (CAPITAL, None, AnswerError, "expects one option id"),
    (PRIMES, "2", AnswerError, "expects a set of option ids"),
    (PRIMES, {"2", "5"}, AnswerError, r"has no option \['5'\]"),
    (PRIMES, [2, 3], AnswerError, "expects a set of option ids"),
    (PRIMES, 2, AnswerError, "expects a set of option ids"),
    (EARTH, "true", AnswerError, "expects true or false"),
    (EARTH, 1, AnswerError, "expects true or false"),
    (PI, "abc", NotANumber, "'abc' is not a number"),
    (PI, "", NotANumber, "is not a number"),
    (PI, "3,1,4", NotANumber, "is not a number"),
    (PI, "1.000,5", NotANumber, "is not a number"),
    (PI, "1e3", NotANumber, "is not a number"),
    (PI, "nan", NotANumber, "is not a number"),
    (PI, "inf", NotANumber, "is not a number"),
    (PI, "1_000", NotANumber, "is not a number"),
    (PI, ",", NotANumber, "is not a number"),
    (PI, float("nan"), NotANumber, "expects a number"),
    (PI, True, NotANumber, "expects a number"),
    (PI, None, NotANumber, "expects a number"),
    (CITY, 42, AnswerError, "expects text"),
])
def test_answers_of_the_wrong_shape_are_refused(question: Question, answer: object, error: type[Exception],
                                                message: str) -> None:
    with pytest.raises(error, match=message):
        grade(question, answer)


def test_answer_errors_are_value_errors() -> None:
    assert issubclass(NotANumber, AnswerError)
    assert issubclass(AnswerError, ValueError)
    assert issubclass(QuestionError, ValueError)


@pytest.mark.parametrize(("text", "value"), [
    ("3,5", 3.5), ("3.5", 3.5), ("+2", 2.0), ("-0,25", -0.25), (",5", 0.5), ("7,", 7.0), ("１２", 12.0),
])
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(("text", "accents", "normal"), [
    ("  Hello\t  World\n", False, "hello world"),
    ("Ｆｕｌｌ", False, "full"),
    ("Élève", False, "élève"),
    ("Élève", True, "eleve"),
    ("Straße", False, "strasse"),
])
def test_normalize_text(text: str, accents: bool, normal: str) -> None:
    assert normalize_text(text, ignore_accents=accents) == normal


@pytest.mark.parametrize(("build", "message"), [
    (lambda: SingleChoice("q", (), "a"), "has no options"),
    (lambda: SingleChoice("q", ("a", "a"), "a"), "lists an option twice"),
    (lambda: SingleChoice("q", ("a", "b"), "c"), "is not an option"),
    (lambda: MultipleChoice("q", ("a", "b"), frozenset()), "has no right option"),
    (lambda: MultipleChoice("q", ("a", "b"), frozenset({"a", "z"})), r"\['z'\] are not options"),
    (lambda: MultipleChoice("q", ("a", "a"), frozenset({"a"})), "lists an option twice"),
    (lambda: Numeric("q", 1.0, -0.1), "tolerance"),
    (lambda: Numeric("q", 1.0, float("inf")), "tolerance"),
    (lambda: Numeric("q", float("nan")), "value"),
    (lambda: ShortText("q", ()), "accepts no answer"),
    (lambda: ShortText("q", ("  ", "")), "accepts no answer"),
])
def test_questions_that_cannot_be_graded_are_refused(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(QuestionError, match=message):
        build()


POOL = tuple(f"q{i}" for i in range(10))


@pytest.mark.parametrize(("count", "seed", "shuffle"), [
    (1, 1, True), (3, 1, True), (3, 2, False), (10, 7, True), (10, 7, False), (5, "attempt-42", True),
])
def test_draw(count: int, seed: int | str, shuffle: bool) -> None:
    drawn = draw(POOL, count, seed, shuffle=shuffle)
    assert len(drawn) == count
    assert len(set(drawn)) == count
    assert set(drawn) <= set(POOL)
    assert drawn == draw(POOL, count, seed, shuffle=shuffle)
    if not shuffle:
        assert list(drawn) == sorted(drawn, key=POOL.index)


def test_draw_depends_on_the_seed_and_shuffles() -> None:
    draws = {draw(POOL, 5, seed) for seed in range(20)}
    assert len(draws) > 1
    assert any(list(d) != sorted(d, key=POOL.index) for d in draws)
    assert {frozenset(draw(POOL, 5, s, shuffle=False)) for s in range(20)} \
        == {frozenset(draw(POOL, 5, s)) for s in range(20)}


@pytest.mark.parametrize(("pool", "count", "message"), [
    (POOL, 11, "cannot draw 11 questions from a pool of 10"),
    ((), 1, "from a pool of 0"),
    (POOL, 0, "at least one question"),
    (POOL, -1, "at least one question"),
    (("a", "b", "a"), 2, "lists a question twice"),
])
def test_draw_errors(pool: tuple[str, ...], count: int, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        draw(pool, count, 1)


@pytest.mark.parametrize(("grades", "pass_mark", "score", "passed"), [
    ([RIGHT] * 7 + [WRONG] * 3, 0.7, 0.7, True),
    ([RIGHT] * 6 + [WRONG] * 4, 0.7, 0.6, False),
    ([RIGHT, RIGHT, WRONG], 0.67, 2 / 3, False),
    ([RIGHT, RIGHT, WRONG], 2 / 3, 2 / 3, True),
    ([RIGHT], 1.0, 1.0, True),
    ([WRONG], 0.0, 0.0, True),
    ([WRONG, WRONG], 0.01, 0.0, False),
])
def test_attempt_result(grades: list[Graded], pass_mark: float, score: float, passed: bool) -> None:
    result = attempt_result(grades, pass_mark)
    assert result.score == pytest.approx(score)
    assert result.passed is passed


@pytest.mark.parametrize(("grades", "pass_mark", "message"), [
    ([], 0.5, "no graded answers"),
    ([RIGHT], 1.5, "from 0 to 1"),
    ([RIGHT], -0.1, "from 0 to 1"),
    ([RIGHT], float("nan"), "from 0 to 1"),
])
def test_attempt_result_errors(grades: list[Graded], pass_mark: float, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        attempt_result(grades, pass_mark)


@pytest.mark.parametrize(("previous", "limit", "allowed"), [
    (0, None, True), (99, None, True), (0, 1, True), (1, 1, False), (2, 3, True), (3, 3, False), (4, 3, False),
])
def test_may_start_attempt(previous: int, limit: int | None, allowed: bool) -> None:
    assert may_start_attempt(previous, limit) is allowed


@pytest.mark.parametrize(("previous", "limit", "message"), [
    (-1, None, "cannot be negative"), (0, 0, "at least 1"), (0, -2, "at least 1"),
])
def test_may_start_attempt_errors(previous: int, limit: int | None, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        may_start_attempt(previous, limit)


T, F = True, False


@pytest.mark.parametrize(("history", "model", "needed"), [
    ([], MOfN(3, 5), 3),
    ([T, T, T], MOfN(3, 5), 0),
    ([T, T], MOfN(3, 5), 1),
    ([T, F, T, F, T], MOfN(3, 5), 0),
    ([T, T, T, F, F, F], MOfN(3, 5), 3),
    ([F, F, F, F, F], MOfN(3, 5), 3),
    ([T, T, F, F, F], MOfN(3, 5), 3),
    ([F, F, F, T, T], MOfN(3, 5), 1),
    ([T, F, F, T, T], MOfN(3, 5), 0),
    ([T, F, F, F, T, T], MOfN(3, 5), 1),
    ([F, T, T, F], MOfN(3, 3), 3),
    ([F, T, T], MOfN(3, 3), 1),
    ([], InARow(3), 3),
    ([T, T, T], InARow(3), 0),
    ([T, T, T, F], InARow(3), 3),
    ([F, T, T], InARow(3), 1),
    ([T, T, T, T, T, T], InARow(5), 0),
    ([F], InARow(1), 1),
])
def test_mastery(history: list[bool], model: MOfN | InARow, needed: int) -> None:
    assert right_answers_needed(history, model) == needed
    assert mastered(history, model) is (needed == 0)
    assert mastered([*history, *[True] * needed], model)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: MOfN(0, 5), "1 <= m <= n"),
    (lambda: MOfN(6, 5), "1 <= m <= n"),
    (lambda: InARow(0), "n >= 1"),
])
def test_mastery_models_that_mean_nothing_are_refused(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(LearningRuleError, match=message):
        build()


@pytest.mark.parametrize(("events", "idle_after", "seconds"), [
    ([], 60, 0.0),
    ([100.0], 60, 0.0),
    ([0, 10, 20, 30], 60, 30.0),
    ([0, 10, 3600, 3610], 60, 80.0),
    ([0, 60], 60, 60.0),
    ([0, 61], 60, 60.0),
    ([30, 0, 10], 60, 30.0),
    ([5, 5, 5], 60, 0.0),
    ([0, 1000, 2000], 0.5, 1.0),
])
def test_active_seconds(events: list[float], idle_after: float, seconds: float) -> None:
    assert active_seconds(events, idle_after) == pytest.approx(seconds)


@pytest.mark.parametrize(("events", "idle_after", "message"), [
    ([0, 1], 0, "positive number"),
    ([0, 1], -5, "positive number"),
    ([0, 1], float("inf"), "positive number"),
    ([0, float("nan")], 60, "finite"),
    ([0, float("inf")], 60, "finite"),
])
def test_active_seconds_errors(events: list[float], idle_after: float, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        active_seconds(events, idle_after)


ALL = CompletionRule.ALL_LESSONS_AND_FINAL_QUIZ


@pytest.mark.parametrize(("done", "total", "quiz", "rule", "complete"), [
    (5, 5, True, ALL, True),
    (5, 5, False, ALL, False),
    (4, 5, True, ALL, False),
    (5, 5, False, CompletionRule.ALL_LESSONS, True),
    (4, 5, True, CompletionRule.ALL_LESSONS, False),
    (0, 5, True, CompletionRule.FINAL_QUIZ_ONLY, True),
    (5, 5, False, CompletionRule.FINAL_QUIZ_ONLY, False),
    (0, 0, True, CompletionRule.FINAL_QUIZ_ONLY, True),
])
def test_course_complete(done: int, total: int, quiz: bool, rule: CompletionRule, complete: bool) -> None:
    assert course_complete(done, total, quiz, rule) is complete


def test_course_complete_defaults_to_all_lessons_and_the_final_quiz() -> None:
    assert course_complete(3, 3, True) is True
    assert course_complete(3, 3, False) is False


@pytest.mark.parametrize(("done", "total", "rule", "message"), [
    (6, 5, ALL, "6 of 5 lessons"),
    (-1, 5, ALL, "-1 of 5 lessons"),
    (0, -1, CompletionRule.FINAL_QUIZ_ONLY, "0 of -1 lessons"),
    (0, 0, ALL, "no lessons"),
    (0, 0, CompletionRule.ALL_LESSONS, "no lessons"),
])
def test_course_complete_errors(done: int, total: int, rule: CompletionRule, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        course_complete(done, total, True, rule)


@pytest.mark.parametrize(("done", "total", "complete"), [(3, 3, True), (2, 3, False), (0, 1, False)])
def test_module_complete(done: int, total: int, complete: bool) -> None:
    assert module_complete(done, total) is complete


@pytest.mark.parametrize(("done", "total", "message"), [
    (0, 0, "no lessons"), (4, 3, "4 of 3"), (-1, 3, "-1 of 3"),
])
def test_module_complete_errors(done: int, total: int, message: str) -> None:
    with pytest.raises(LearningRuleError, match=message):
        module_complete(done, total)


@pytest.mark.parametrize(("done", "total", "percent"), [
    (0, 10, 0), (1, 3, 33), (2, 3, 66), (199, 200, 99), (200, 200, 100), (1, 200, 0), (0, 0, 100),
])
def test_progress_percent(done: int, total: int, percent: int) -> None:
    assert progress_percent(done, total) == percent


@pytest.mark.parametrize(("done", "total"), [(4, 3), (-1, 3), (0, -1)])
def test_progress_percent_errors(done: int, total: int) -> None:
    with pytest.raises(LearningRuleError, match="is not a count"):
        progress_percent(done, total)


def test_the_rules_do_no_io() -> None:
    """Only the standard library's pure modules: no database, network, Redis, clock or other planes."""
    tree = ast.parse(Path(rules_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "collections", "dataclasses", "enum", "math", "random", "re",
                        "unicodedata"}
    assert "datetime" not in Path(rules_module.__file__).read_text()
