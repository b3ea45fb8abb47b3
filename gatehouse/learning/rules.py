"""The pure rules of learning: grading, drawing questions, attempts, mastery, time spent and completion.

No I/O and no clock: the services pass answers, histories, timestamps and seeds in, and store what comes out.
"""

from __future__ import annotations

import enum
import math
import random
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["AnswerError", "AttemptResult", "CompletionRule", "Feedback", "Graded", "InARow", "LearningRuleError",
           "MOfN", "MultipleChoice", "NotANumber", "Numeric", "Question", "QuestionError", "ShortText",
           "SingleChoice", "TrueFalse", "active_seconds", "attempt_result", "course_complete", "draw", "grade",
           "mastered", "may_start_attempt", "module_complete", "normalize_text", "parse_number", "progress_percent",
           "right_answers_needed"]


class LearningRuleError(ValueError):
    """Arguments the rules cannot work with (a count larger than the pool, a pass mark above 1)."""


class QuestionError(LearningRuleError):
    """A question that cannot be graded as written (its right option is not one of its options)."""


class AnswerError(LearningRuleError):
    """An answer of the wrong shape for its question: the form or the client is wrong, not the learner."""


class NotANumber(AnswerError):
    """A numeric answer that is not a number; the portal asks again instead of marking it wrong."""


class Feedback(enum.StrEnum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    INCOMPLETE = "incomplete"
    """Multiple choice: only right options chosen, but not all of them."""
    TOO_LOW = "too-low"
    TOO_HIGH = "too-high"


def _unique(qid: str, options: tuple[str, ...]) -> None:
    if not options:
        raise QuestionError(f"question {qid!r} has no options")
    if len(set(options)) != len(options):
        raise QuestionError(f"question {qid!r} lists an option twice")


@dataclass(frozen=True, slots=True)
class SingleChoice:
    id: str
    options: tuple[str, ...]
    correct: str

    def __post_init__(self) -> None:
        _unique(self.id, self.options)
        if self.correct not in self.options:
            raise QuestionError(f"question {self.id!r}: the right option {self.correct!r} is not an option")


@dataclass(frozen=True, slots=True)
class MultipleChoice:
    """Right when all and only the right options are chosen.

    No partial credit: with it, ticking every box earns marks on a question whose point is to tell the right
    options from the wrong ones, and a pass mark stops meaning "knows the answers".
    """

    id: str
    options: tuple[str, ...]
    correct: frozenset[str]

    def __post_init__(self) -> None:
        _unique(self.id, self.options)
        if not self.correct:
            raise QuestionError(f"question {self.id!r} has no right option")
        if unknown := self.correct - set(self.options):
            raise QuestionError(f"question {self.id!r}: right options {sorted(unknown)} are not options")


@dataclass(frozen=True, slots=True)
class TrueFalse:
    id: str
    correct: bool


@dataclass(frozen=True, slots=True)
class Numeric:
    """Right within an absolute tolerance of the value, bounds included (3.13 is within 0.01 of 3.14, although
    the float difference is 0.0100000000000002)."""

    id: str
    value: float
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise QuestionError(f"question {self.id!r}: the value must be a finite number")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise QuestionError(f"question {self.id!r}: the tolerance must be a finite number, 0 or more")


@dataclass(frozen=True, slots=True)
class ShortText:
    """Right when the answer equals an accepted one after `normalize_text`."""

    id: str
    accepted: tuple[str, ...]
    ignore_accents: bool = False

    def __post_init__(self) -> None:
        if not any(normalize_text(a) for a in self.accepted):
            raise QuestionError(f"question {self.id!r} accepts no answer")


Question = SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText


@dataclass(frozen=True, slots=True)
class Graded:
    correct: bool
    score: float
    feedback: Feedback


_EPSILON = 1e-9
"""Slack for float arithmetic: 7 right of 10 passes a pass mark of 0.7, 3.13 is within 0.01 of 3.14."""

_RIGHT = Graded(True, 1.0, Feedback.CORRECT)


def _wrong(feedback: Feedback = Feedback.INCORRECT) -> Graded:
    return Graded(False, 0.0, feedback)


def normalize_text(text: str, *, ignore_accents: bool = False) -> str:
    """NFKC, case-folded, trimmed, inner whitespace collapsed; accents dropped on request ("é" is "e")."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if ignore_accents:
        decomposed = unicodedata.normalize("NFD", folded)
        folded = unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
    return folded


_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")


def parse_number(text: str) -> float:
    """A decimal as learners write it: "3.5" or "3,5" (Belgian usage); no thousands separators, no exponents."""
    cleaned = unicodedata.normalize("NFKC", text).strip().replace("\u2212", "-")
    if not _NUMBER.fullmatch(cleaned):
        raise NotANumber(f"{text!r} is not a number: write digits, with a comma or a point before the decimals")
    return float(cleaned.replace(",", "."))


def _choices(question: SingleChoice | MultipleChoice, answer: object) -> frozenset[str]:
    if isinstance(answer, str) or not isinstance(answer, Collection) \
            or not all(isinstance(a, str) for a in answer):
        raise AnswerError(f"question {question.id!r} expects a set of option ids, got {answer!r}")
    chosen = frozenset(str(a) for a in answer)
    if unknown := chosen - set(question.options):
        raise AnswerError(f"question {question.id!r} has no option {sorted(unknown)}")
    return chosen


def grade(question: Question, answer: object) -> Graded:
    """Grade one answer; an answer of the wrong shape raises `AnswerError` rather than counting as wrong."""
    match question:
        case SingleChoice():
            if not isinstance(answer, str):
                raise AnswerError(f"question {question.id!r} expects one option id, got {answer!r}")
            if answer not in question.options:
                raise AnswerError(f"question {question.id!r} has no option {answer!r}")
            return _RIGHT if answer == question.correct else _wrong()
        case MultipleChoice():
            chosen = _choices(question, answer)
            if chosen == question.correct:
                return _RIGHT
            return _wrong(Feedback.INCOMPLETE if chosen and chosen < question.correct else Feedback.INCORRECT)
        case TrueFalse():
            if not isinstance(answer, bool):
                raise AnswerError(f"question {question.id!r} expects true or false, got {answer!r}")
            return _RIGHT if answer is question.correct else _wrong()
        case Numeric():
            if isinstance(answer, str):
                number = parse_number(answer)
            elif isinstance(answer, int | float) and not isinstance(answer, bool) and math.isfinite(answer):
                number = float(answer)
            else:
                raise NotANumber(f"question {question.id!r} expects a number, got {answer!r}")
            if abs(number - question.value) <= question.tolerance + _EPSILON * max(1.0, abs(question.value)):
                return _RIGHT
            return _wrong(Feedback.TOO_LOW if number < question.value else Feedback.TOO_HIGH)
        case ShortText():
            if not isinstance(answer, str):
                raise AnswerError(f"question {question.id!r} expects text, got {answer!r}")
            given = normalize_text(answer, ignore_accents=question.ignore_accents)
            accepted = {normalize_text(a, ignore_accents=question.ignore_accents) for a in question.accepted}
            return _RIGHT if given in accepted else _wrong()


def draw(pool: Sequence[str], count: int, seed: int | str, *, shuffle: bool = True) -> tuple[str, ...]:
    """The questions of one attempt: the same for the same seed; in pool order unless `shuffle`."""
    if len(set(pool)) != len(pool):
        raise LearningRuleError("the question pool lists a question twice")
    if count < 1:
        raise LearningRuleError(f"an attempt needs at least one question, not {count}")
    if count > len(pool):
        raise LearningRuleError(f"cannot draw {count} questions from a pool of {len(pool)}")
    picked = random.Random(seed).sample(list(pool), count)
    if not shuffle:
        chosen = set(picked)
        picked = [q for q in pool if q in chosen]
    return tuple(picked)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    score: float
    """The fraction of the attempt's marks earned, from 0 to 1."""
    passed: bool


def attempt_result(grades: Sequence[Graded], pass_mark: float) -> AttemptResult:
    if not grades:
        raise LearningRuleError("an attempt with no graded answers has no result")
    if not 0 <= pass_mark <= 1:
        raise LearningRuleError(f"the pass mark is a fraction from 0 to 1, not {pass_mark}")
    score = sum(g.score for g in grades) / len(grades)
    return AttemptResult(score, score + _EPSILON >= pass_mark)


def may_start_attempt(previous_attempts: int, limit: int | None) -> bool:
    """Whether another attempt may start; `limit` None means no limit."""
    if previous_attempts < 0:
        raise LearningRuleError(f"a number of attempts cannot be negative ({previous_attempts})")
    if limit is not None and limit < 1:
        raise LearningRuleError(f"an attempt limit is at least 1, not {limit}")
    return limit is None or previous_attempts < limit


@dataclass(frozen=True, slots=True)
class MOfN:
    """Kolibri's "m of n": m right among the last n answers (fewer answers count if m of them are right)."""

    m: int
    n: int

    def __post_init__(self) -> None:
        if not 1 <= self.m <= self.n:
            raise LearningRuleError(f"m of n needs 1 <= m <= n, not {self.m} of {self.n}")


@dataclass(frozen=True, slots=True)
class InARow:
    """Kolibri's "n in a row": the last n answers all right."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise LearningRuleError(f"n in a row needs n >= 1, not {self.n}")


def _streak(history: Sequence[bool]) -> int:
    run = 0
    for right in reversed(history):
        if not right:
            break
        run += 1
    return run


def right_answers_needed(history: Sequence[bool], model: MOfN | InARow) -> int:
    """How many more right answers, at best, until mastery; `history` is oldest first."""
    if isinstance(model, InARow):
        return max(0, model.n - _streak(history))
    for more in range(model.m + 1):
        window = [*history, *([True] * more)][-model.n:]
        if sum(window) >= model.m:
            return more
    raise AssertionError("unreachable: m right answers always reach m of n")  # pragma: no cover


def mastered(history: Sequence[bool], model: MOfN | InARow) -> bool:
    return right_answers_needed(history, model) == 0


def active_seconds(events: Sequence[float], idle_after: float) -> float:
    """Time spent from activity timestamps (seconds): each gap counts up to `idle_after`, so an open tab left
    alone adds at most that much."""
    if not (math.isfinite(idle_after) and idle_after > 0):
        raise LearningRuleError(f"idle_after must be a positive number of seconds, not {idle_after}")
    if not all(math.isfinite(t) for t in events):
        raise LearningRuleError("activity timestamps must be finite numbers")
    ordered = sorted(events)
    return sum(min(b - a, idle_after) for a, b in zip(ordered, ordered[1:], strict=False))


class CompletionRule(enum.StrEnum):
    ALL_LESSONS_AND_FINAL_QUIZ = "all-lessons-and-final-quiz"
    ALL_LESSONS = "all-lessons"
    FINAL_QUIZ_ONLY = "final-quiz-only"


def _counts(done: int, total: int) -> None:
    if done < 0 or total < 0 or done > total:
        raise LearningRuleError(f"{done} of {total} lessons done is not a count of lessons")


def module_complete(lessons_done: int, lessons_total: int) -> bool:
    _counts(lessons_done, lessons_total)
    if lessons_total == 0:
        raise LearningRuleError("a module with no lessons cannot be completed")
    return lessons_done == lessons_total


def course_complete(lessons_done: int, lessons_total: int, final_quiz_passed: bool,
                    rule: CompletionRule = CompletionRule.ALL_LESSONS_AND_FINAL_QUIZ) -> bool:
    _counts(lessons_done, lessons_total)
    if rule is CompletionRule.FINAL_QUIZ_ONLY:
        return final_quiz_passed
    if lessons_total == 0:
        raise LearningRuleError(f"a course with no lessons cannot be completed by the rule {rule.value!r}")
    lessons = lessons_done == lessons_total
    return lessons if rule is CompletionRule.ALL_LESSONS else lessons and final_quiz_passed


def progress_percent(done: int, total: int) -> int:
    """A whole percentage rounded down, so a bar shows 100 only when everything is done (nothing to do is done)."""
    _counts(done, total)
    return 100 if total == 0 else done * 100 // total
