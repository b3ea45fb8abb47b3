"""A course's content as the one JSON document a version stores, and back.

`to_document(course)` keeps everything but the media (stored beside it, one row per file); `from_document` gives
the same `package.Course` the package loader gives, with `media` empty. The document is versioned by `format` so a
later change of shape can still read what older versions stored.
"""

from __future__ import annotations

from typing import Any

from gatehouse.learning.package import Course, Lesson, Mastery, Module, Question, Quiz, Site, Translation

FORMAT = 1


def _quiz(quiz: Quiz) -> dict[str, Any]:
    return {"file": quiz.file, "pool": quiz.pool, "order": quiz.order, "attempts": quiz.attempts,
            "pass_mark": quiz.pass_mark, "feedback": quiz.feedback,
            "mastery": None if quiz.mastery is None else
            {"kind": quiz.mastery.kind, "m": quiz.mastery.m, "n": quiz.mastery.n},
            "questions": [{"id": q.id, "type": q.type, "prompt": q.prompt, "feedback": q.feedback,
                           "options": [list(o) for o in q.options], "answer": list(q.answer),
                           "tolerance": q.tolerance, "accepted": list(q.accepted)} for q in quiz.questions]}


def to_document(course: Course) -> dict[str, Any]:
    return {
        "format": FORMAT, "id": course.id, "title": course.title, "language": course.language,
        "level": course.level, "category": course.category, "duration_minutes": course.duration_minutes,
        "completion": course.completion, "translations": list(course.translations),
        "sites": [{"host": s.host, "paths": list(s.paths), "methods": list(s.methods)} for s in course.sites],
        "modules": [{"title": m.title,
                     "lessons": [{"file": lesson.file, "title": lesson.title, "text": lesson.text,
                                  "translations": [{"language": t.language, "title": t.title, "text": t.text}
                                                   for t in lesson.translations]} for lesson in m.lessons],
                     "quiz": None if m.quiz is None else _quiz(m.quiz)} for m in course.modules],
    }


def _quiz_of(data: dict[str, Any]) -> Quiz:
    mastery = data["mastery"]
    return Quiz(data["file"], tuple(
        Question(q["id"], q["type"], q["prompt"], q["feedback"], tuple((o[0], o[1]) for o in q["options"]),
                 tuple(q["answer"]), float(q["tolerance"]), tuple(q["accepted"])) for q in data["questions"]),
        data["pool"], data["order"], data["attempts"], data["pass_mark"], data["feedback"],
        None if mastery is None else Mastery(mastery["kind"], mastery["m"], mastery["n"]))


def from_document(data: dict[str, Any]) -> Course:
    if data.get("format") != FORMAT:
        raise ValueError(f"course content of format {data.get('format')!r}; this version reads {FORMAT}")
    modules = tuple(Module(m["title"], tuple(
        Lesson(lesson["file"], lesson["title"], lesson["text"],
               tuple(Translation(t["language"], t["title"], t["text"]) for t in lesson["translations"]))
        for lesson in m["lessons"]), None if m["quiz"] is None else _quiz_of(m["quiz"])) for m in data["modules"])
    return Course(data["id"], data["title"], data["language"], data["level"], data["category"],
                  data["duration_minutes"], data["completion"], modules,
                  tuple(Site(s["host"], tuple(s["paths"]), tuple(s["methods"])) for s in data["sites"]),
                  tuple(data["translations"]))


def lessons_of(course: Course) -> list[Lesson]:
    """Every lesson in reading order."""
    return [lesson for module in course.modules for lesson in module.lessons]


def quizzes_of(course: Course) -> list[Quiz]:
    return [module.quiz for module in course.modules if module.quiz is not None]


def final_quiz(course: Course) -> Quiz | None:
    """The last module's quiz that is not a practice exercise: the one a completion rule counts."""
    graded = [q for q in quizzes_of(course) if q.mastery is None]
    return graded[-1] if graded else None
