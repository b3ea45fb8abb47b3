"""The course package: a folder (or a .zip of one) that an education officer writes, checks and imports.

```
course.yaml        the course
lessons/*.md       lesson text; the first first-level heading is the lesson's title
lessons/<name>.<lang>.md   the same lesson in another language listed under translations
quizzes/*.yaml     one quiz each
media/...          images, audio, video, PDF that lessons name as media/...
```

course.yaml keys: `id` (lowercase letters, digits, `-`), `title`, `language` (en, nl, fr, de), `level`,
`category`, `duration_minutes` (a positive whole number), `completion` (all-lessons-and-quiz, all-lessons,
final-quiz), `sites` (optional; rules as in a policy file: `host`, `paths` default `[/]`, `methods` default
`[GET, HEAD]`), `translations` (optional list of languages; every lesson then has a file for each), `modules`
(a list of `{title, lessons: [lessons/x.md, ...], quiz: quizzes/y.yaml}`, quiz optional).

A quiz file: `questions` (a list; each `id`, `type`, `prompt`, optional `feedback`, and by type: `single` with
`options` (id: text) and `answer` (an option id); `multiple` with `options` and `answer` (a list of ids);
`truefalse` with `answer: true|false`; `numeric` with `answer` and `tolerance` (default 0); `text` with
`accepted` (a list)), `pool` (how many questions an attempt draws; default all), `order` (fixed, random),
`attempts` (0 = unlimited), `pass_mark` (0-100), `feedback` (after-each, at-end), and for a practice quiz
`mastery` (`m_of_n: [m, n]` or `in_a_row: n`).

`load_package` reports every problem at once as `FILE:LINE: message` (FILE is the path inside the package)
and returns a Course only when there are none; `write_package` writes a Course back in the same format.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gatehouse.errors import InvalidInput
from gatehouse.learning import archive, lessons

LANGUAGES = ("en", "nl", "fr", "de")
COMPLETIONS = ("all-lessons-and-quiz", "all-lessons", "final-quiz")
QUESTION_TYPES = ("single", "multiple", "truefalse", "numeric", "text")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
COURSE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
COURSE_KEYS = ("id", "title", "language", "level", "category", "duration_minutes", "completion", "sites",
               "translations", "modules")
REQUIRED_COURSE_KEYS = COURSE_KEYS[:7] + ("modules",)
QUIZ_KEYS = ("questions", "pool", "order", "attempts", "pass_mark", "feedback", "mastery")
QUESTION_KEYS = ("id", "type", "prompt", "feedback", "options", "answer", "tolerance", "accepted")


class PackageError(InvalidInput):
    """Every problem in a package, each `FILE:LINE: message`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Site:
    host: str
    paths: tuple[str, ...] = ("/",)
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class Translation:
    language: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Lesson:
    file: str
    title: str
    text: str
    translations: tuple[Translation, ...] = ()


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    type: str
    prompt: str
    feedback: str = ""
    options: tuple[tuple[str, str], ...] = ()
    answer: tuple[str, ...] = ()
    """Option ids for single and multiple; `true` or `false`; the number for numeric (as written)."""
    tolerance: float = 0.0
    accepted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Mastery:
    kind: str  # m_of_n or in_a_row
    m: int
    n: int


@dataclass(frozen=True, slots=True)
class Quiz:
    file: str
    questions: tuple[Question, ...]
    pool: int
    order: str = "fixed"
    attempts: int = 0
    pass_mark: int = 70
    feedback: str = "at-end"
    mastery: Mastery | None = None


@dataclass(frozen=True, slots=True)
class Module:
    title: str
    lessons: tuple[Lesson, ...]
    quiz: Quiz | None = None


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    title: str
    language: str
    level: str
    category: str
    duration_minutes: int
    completion: str
    modules: tuple[Module, ...]
    sites: tuple[Site, ...] = ()
    translations: tuple[str, ...] = ()
    media: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


# -- YAML with lines ----------------------------------------------------------------------------------------

class _Checker:
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def bad(self, file: str, node: yaml.Node | int, message: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        self.errors.append(f"{file}:{line}: {message}")

    def compose(self, file: str, data: bytes) -> yaml.Node | None:
        try:
            return yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
        except UnicodeDecodeError:
            self.bad(file, 1, "not UTF-8 text")
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self.bad(file, mark.line + 1 if mark else 1, f"YAML syntax: {exc.problem or exc}")
        return None

    def mapping(self, file: str, node: yaml.Node, keys: tuple[str, ...], required: tuple[str, ...],
                what: str) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.bad(file, node, f"{what} is a mapping of keys ({', '.join(keys)})")
            return None
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(keys)}"
                self.bad(file, key_node, f"unknown key {key!r} in {what}{hint}")
            elif key in fields:
                self.bad(file, key_node, f"key {key!r} given twice in {what}")
            else:
                fields[key] = value_node
        for key in required:
            if key not in fields:
                self.bad(file, node, f"{what} has no {key!r}")
        return fields

    def value(self, file: str, node: yaml.Node, kind: type | tuple[type, ...], what: str) -> Any:
        value = yaml.SafeLoader("").construct_object(node, deep=True)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join({str: "text", int: "a whole number", float: "a number", bool: "true or false",
                                 list: "a list"}.get(k, k.__name__) for k in kinds)
            self.bad(file, node, f"{what} must be {names}, not {value!r}")
            return None
        if isinstance(value, str) and not value.strip():
            self.bad(file, node, f"{what} is empty")
            return None
        return value

    def choice(self, file: str, node: yaml.Node, choices: tuple[str, ...], what: str) -> str | None:
        value = self.value(file, node, str, what)
        if value is not None and value not in choices:
            self.bad(file, node, f"{what} {value!r} is not one of {', '.join(choices)}")
            return None
        return value  # type: ignore[no-any-return]

    def items(self, file: str, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.bad(file, node, f"{what} must be a list")
            return []
        return list(node.value)


# -- checking a package -------------------------------------------------------------------------------------

def _site(c: _Checker, node: yaml.Node) -> Site | None:
    fields = c.mapping("course.yaml", node, ("host", "paths", "methods"), ("host",), "a site")
    if fields is None or "host" not in fields:
        return None
    host = c.value("course.yaml", fields["host"], str, "host")
    if host is not None and ("/" in host or ":" in host or host != host.strip().lower()):
        c.bad("course.yaml", fields["host"], f"host {host!r} is a lowercase host name, without scheme or path")
        host = None
    paths: list[str] = []
    for item in c.items("course.yaml", fields["paths"], "paths") if "paths" in fields else []:
        path = c.value("course.yaml", item, str, "a path")
        if path is not None and not path.startswith("/"):
            c.bad("course.yaml", item, f"path {path!r} must start with /")
        elif path is not None:
            paths.append(path)
    methods = [m for item in (c.items("course.yaml", fields["methods"], "methods") if "methods" in fields else [])
               if (m := c.choice("course.yaml", item, METHODS, "method")) is not None]
    if host is None:
        return None
    return Site(host, tuple(paths) or ("/",), tuple(methods) or ("GET", "HEAD"))


def _question(c: _Checker, file: str, node: yaml.Node, seen: dict[str, int]) -> Question | None:
    fields = c.mapping(file, node, QUESTION_KEYS, ("id", "type", "prompt"), "a question")
    if fields is None or not {"id", "type", "prompt"} <= set(fields):
        return None
    qid = c.value(file, fields["id"], (str, int), "question id")
    kind = c.choice(file, fields["type"], QUESTION_TYPES, "question type")
    prompt = c.value(file, fields["prompt"], str, "prompt")
    feedback = c.value(file, fields["feedback"], str, "feedback") if "feedback" in fields else ""
    if qid is not None:
        qid = str(qid)
        if qid in seen:
            c.bad(file, fields["id"], f"question id {qid!r} is on line {seen[qid]} already")
        seen[qid] = fields["id"].start_mark.line + 1
    if kind is None or qid is None or prompt is None:
        return None
    needs = {"single": ("options", "answer"), "multiple": ("options", "answer"), "truefalse": ("answer",),
             "numeric": ("answer",), "text": ("accepted",)}[kind]
    allowed = needs + (("tolerance",) if kind == "numeric" else ())
    for key in ("options", "answer", "tolerance", "accepted"):
        if key in fields and key not in allowed:
            c.bad(file, fields[key], f"a {kind} question has no {key!r}")
        if key in needs and key not in fields:
            c.bad(file, node, f"a {kind} question needs {key!r}")
    if any(key not in fields for key in needs):
        return None
    options: list[tuple[str, str]] = []
    answer: list[str] = []
    tolerance, accepted = 0.0, []
    ok = True
    if kind in ("single", "multiple"):
        raw = c.value(file, fields["options"], dict, "options")
        if raw is not None and len(raw) < 2:
            c.bad(file, fields["options"], "a question needs two options or more")
        elif raw is not None:
            options = [(str(k), str(v)) for k, v in raw.items()]
        given = c.value(file, fields["answer"], (str, int) if kind == "single" else list, "answer")
        ids = [str(given)] if kind == "single" and given is not None else [str(g) for g in given or []]
        if kind == "multiple" and given == []:
            c.bad(file, fields["answer"], "a multiple question needs at least one answer")
            ok = False
        for answer_id in ids:
            if options and answer_id not in dict(options):
                c.bad(file, fields["answer"], f"answer {answer_id!r} is not an option ({', '.join(dict(options))})")
                ok = False
        answer = ids
        ok = ok and given is not None and bool(options)
    elif kind == "truefalse":
        truth = c.value(file, fields["answer"], bool, "answer")
        answer, ok = ["true" if truth else "false"], truth is not None
    elif kind == "numeric":
        number = c.value(file, fields["answer"], (int, float), "answer")
        answer, ok = [repr(number)], number is not None
        if "tolerance" in fields:
            tol = c.value(file, fields["tolerance"], (int, float), "tolerance")
            if tol is not None and tol < 0:
                c.bad(file, fields["tolerance"], "tolerance must not be negative")
                tol = None
            ok = ok and tol is not None
            tolerance = float(tol or 0)
    else:
        for item in c.items(file, fields["accepted"], "accepted"):
            text = c.value(file, item, (str, int, float), "an accepted answer")
            if text is not None:
                accepted.append(str(text))
        if not accepted:
            c.bad(file, fields["accepted"], "a text question needs at least one accepted answer")
        ok = bool(accepted)
    if not ok:
        return None
    return Question(qid, kind, prompt, feedback or "", tuple(options), tuple(answer), tolerance, tuple(accepted))


def _whole(c: _Checker, file: str, node: yaml.Node, what: str, low: int, high: int | None = None) -> int | None:
    value = c.value(file, node, int, what)
    if value is not None and (value < low or high is not None and value > high):
        c.bad(file, node, f"{what} {value} is outside {low}-{high}" if high is not None
              else f"{what} must be {low} or more")
        return None
    return value  # type: ignore[no-any-return]


def _mastery(c: _Checker, file: str, node: yaml.Node) -> Mastery | None:
    fields = c.mapping(file, node, ("m_of_n", "in_a_row"), (), "mastery")
    if not fields or len(fields) != 1:
        if fields is not None:
            c.bad(file, node, "mastery is either m_of_n: [m, n] or in_a_row: n")
        return None
    if "in_a_row" in fields:
        n = _whole(c, file, fields["in_a_row"], "in_a_row", 1)
        return None if n is None else Mastery("in_a_row", n, n)
    pair = c.value(file, fields["m_of_n"], list, "m_of_n")
    if pair is None:
        return None
    if len(pair) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair) \
            or not 1 <= pair[0] <= pair[1]:
        c.bad(file, fields["m_of_n"], f"m_of_n is [m, n] with 1 <= m <= n, not {pair!r}")
        return None
    return Mastery("m_of_n", pair[0], pair[1])


def _quiz(c: _Checker, file: str, data: bytes) -> Quiz | None:
    root = c.compose(file, data)
    if root is None:
        if not data.strip():
            c.bad(file, 1, "the quiz is empty")
        return None
    fields = c.mapping(file, root, QUIZ_KEYS, ("questions",), "a quiz")
    if fields is None or "questions" not in fields:
        return None
    before = len(c.errors)
    seen: dict[str, int] = {}
    nodes = c.items(file, fields["questions"], "questions")
    questions = [q for node in nodes if (q := _question(c, file, node, seen)) is not None]
    if not nodes and isinstance(fields["questions"], yaml.SequenceNode):
        c.bad(file, fields["questions"], "a quiz needs at least one question")
    pool = _whole(c, file, fields["pool"], "pool", 1) if "pool" in fields else len(nodes)
    if pool is not None and "pool" in fields and pool > len(nodes):
        c.bad(file, fields["pool"], f"pool {pool} is larger than the {len(nodes)} questions")
    order = c.choice(file, fields["order"], ("fixed", "random"), "order") if "order" in fields else "fixed"
    attempts = _whole(c, file, fields["attempts"], "attempts", 0) if "attempts" in fields else 0
    pass_mark = _whole(c, file, fields["pass_mark"], "pass_mark", 0, 100) if "pass_mark" in fields else 70
    feedback = (c.choice(file, fields["feedback"], ("after-each", "at-end"), "feedback") if "feedback" in fields
                else "at-end")
    mastery = _mastery(c, file, fields["mastery"]) if "mastery" in fields else None
    if len(c.errors) > before or pool is None or order is None or attempts is None or pass_mark is None \
            or feedback is None:
        return None
    return Quiz(file, tuple(questions), pool, order, attempts, pass_mark, feedback, mastery)


def _lesson(c: _Checker, files: dict[str, bytes], name: str, languages: tuple[str, ...]) -> Lesson | None:
    def text_of(file: str) -> tuple[str, str] | None:
        try:
            text = files[file].decode("utf-8")
        except UnicodeDecodeError:
            c.bad(file, 1, "not UTF-8 text")
            return None
        before = len(c.errors)
        for ref in lessons.references(text):
            problem = lessons.check_reference(ref.target)
            path = lessons.media_path(ref.target)
            if problem:
                c.bad(file, ref.line, problem)
            elif path is not None and posixpath.normpath(path) not in files:
                c.bad(file, ref.line, f"{ref.target!r} is not in the package; add it under media/")
        heading = lessons.title(text)
        if heading is None:
            c.bad(file, 1, "no title; start the lesson with a first-level heading (# Title)")
        return None if heading is None or len(c.errors) > before else (heading, text)

    main = text_of(name)
    stem = name.removesuffix(".md")
    translations = []
    for language in languages:
        file = f"{stem}.{language}.md"
        if file not in files:
            c.bad(name, 1, f"no {language} translation; add {file} or take {language} out of translations")
        elif (got := text_of(file)) is not None:
            translations.append(Translation(language, *got))
    if main is None or len(translations) != len(languages):
        return None
    return Lesson(name, main[0], main[1], tuple(translations))


def _file_ref(c: _Checker, node: yaml.Node, folder: str, suffix: str, files: dict[str, bytes]) -> str | None:
    name = c.value("course.yaml", node, str, f"a {folder[:-1]}")
    if name is None:
        return None
    if not name.startswith(f"{folder}/") or not name.endswith(suffix) or ".." in name.split("/"):
        c.bad("course.yaml", node, f"{name!r} must be a {suffix} file under {folder}/")
    elif name not in files:
        c.bad("course.yaml", node, f"{name!r} is not in the package")
    else:
        return name  # type: ignore[no-any-return]
    return None


def _course(c: _Checker, files: dict[str, bytes]) -> Course | None:
    if "course.yaml" not in files:
        c.bad("course.yaml", 0, "no course.yaml at the top of the package")
        return None
    root = c.compose("course.yaml", files["course.yaml"])
    if root is None:
        if not files["course.yaml"].strip():
            c.bad("course.yaml", 1, "course.yaml is empty")
        return None
    fields = c.mapping("course.yaml", root, COURSE_KEYS, REQUIRED_COURSE_KEYS, "course.yaml")
    if fields is None:
        return None
    before = len(c.errors)
    got: dict[str, Any] = {}
    for key in ("title", "level", "category"):
        got[key] = c.value("course.yaml", fields[key], str, key) if key in fields else None
    if "id" in fields and (cid := c.value("course.yaml", fields["id"], str, "id")) is not None:
        if not COURSE_ID.match(cid):
            c.bad("course.yaml", fields["id"], f"id {cid!r} is lowercase letters, digits and -, up to 64")
        got["id"] = cid
    if "language" in fields:
        got["language"] = c.choice("course.yaml", fields["language"], LANGUAGES, "language")
    if "completion" in fields:
        got["completion"] = c.choice("course.yaml", fields["completion"], COMPLETIONS, "completion")
    if "duration_minutes" in fields:
        got["duration_minutes"] = _whole(c, "course.yaml", fields["duration_minutes"], "duration_minutes", 1)
    translations: list[str] = []
    for node in c.items("course.yaml", fields["translations"], "translations") if "translations" in fields else []:
        language = c.choice("course.yaml", node, LANGUAGES, "translation")
        if language is not None and (language in translations or language == got.get("language")):
            c.bad("course.yaml", node, f"translation {language!r} is the course language or listed twice")
        elif language is not None:
            translations.append(language)
    sites = [s for node in (c.items("course.yaml", fields["sites"], "sites") if "sites" in fields else [])
             if (s := _site(c, node)) is not None]
    modules: list[Module] = []
    used: dict[str, int] = {}
    module_nodes = c.items("course.yaml", fields["modules"], "modules") if "modules" in fields else []
    if "modules" in fields and not module_nodes and isinstance(fields["modules"], yaml.SequenceNode):
        c.bad("course.yaml", fields["modules"], "a course needs at least one module")
    for node in module_nodes:
        mf = c.mapping("course.yaml", node, ("title", "lessons", "quiz"), ("title", "lessons"), "a module")
        if mf is None:
            continue
        mtitle = c.value("course.yaml", mf["title"], str, "module title") if "title" in mf else None
        module_lessons = []
        for lnode in c.items("course.yaml", mf["lessons"], "lessons") if "lessons" in mf else []:
            if (name := _file_ref(c, lnode, "lessons", ".md", files)) is None:
                continue
            if name in used:
                c.bad("course.yaml", lnode, f"{name!r} is on line {used[name]} already")
                continue
            used[name] = lnode.start_mark.line + 1
            if (lesson := _lesson(c, files, name, tuple(translations))) is not None:
                module_lessons.append(lesson)
        quiz = None
        if "quiz" in mf and (qname := _file_ref(c, mf["quiz"], "quizzes", ".yaml", files)) is not None:
            quiz = _quiz(c, qname, files[qname])
        if mtitle is not None:
            modules.append(Module(mtitle, tuple(module_lessons), quiz))
    for name in sorted(files):
        lang = name.removesuffix(".md").rsplit(".", 1)[-1] if name.count(".") > 1 else ""
        if name.startswith("lessons/") and lang and lang not in translations:
            c.bad(name, 1, f"{lang!r} is not in the course's translations; add it there or remove the file")
    if len(c.errors) > before:
        return None
    media = tuple(sorted((name, data) for name, data in files.items() if name.startswith("media/")))
    return Course(got["id"], got["title"], got["language"], got["level"], got["category"],
                  got["duration_minutes"], got["completion"], tuple(modules), tuple(sites), tuple(translations),
                  media)


def load_package(path: Path | str) -> Course:
    """The course in a folder or .zip; raises PackageError naming every problem, FILE:LINE each."""
    path = Path(path)
    errors: list[str] = []
    if not path.exists():
        raise PackageError([f"{path.name}:0: no such folder or zip file"])
    files = archive.read_files(path, errors)
    course = None if errors else _course(_Checker(errors), files)
    if errors or course is None:
        raise PackageError(errors or ["course.yaml:0: the package could not be read"])
    return course


# -- writing a package --------------------------------------------------------------------------------------

def _quiz_yaml(quiz: Quiz) -> dict[str, Any]:
    questions: list[dict[str, Any]] = []
    for q in quiz.questions:
        item: dict[str, Any] = {"id": q.id, "type": q.type, "prompt": q.prompt}
        if q.feedback:
            item["feedback"] = q.feedback
        if q.type in ("single", "multiple"):
            item["options"] = dict(q.options)
            item["answer"] = q.answer[0] if q.type == "single" else list(q.answer)
        elif q.type == "truefalse":
            item["answer"] = q.answer[0] == "true"
        elif q.type == "numeric":
            item["answer"] = yaml.safe_load(q.answer[0])
            item["tolerance"] = q.tolerance
        else:
            item["accepted"] = list(q.accepted)
        questions.append(item)
    out: dict[str, Any] = {"questions": questions, "pool": quiz.pool, "order": quiz.order,
                           "attempts": quiz.attempts, "pass_mark": quiz.pass_mark, "feedback": quiz.feedback}
    if quiz.mastery is not None:
        m = quiz.mastery
        out["mastery"] = {"in_a_row": m.n} if m.kind == "in_a_row" else {"m_of_n": [m.m, m.n]}
    return out


def write_package(course: Course, folder: Path | str) -> None:
    """Write the course as a package folder (export); loading it back gives an equal Course."""
    folder = Path(folder)

    def put(name: str, data: bytes) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def dump(value: object) -> bytes:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).encode("utf-8")

    doc: dict[str, Any] = {"id": course.id, "title": course.title, "language": course.language,
                           "level": course.level, "category": course.category,
                           "duration_minutes": course.duration_minutes, "completion": course.completion}
    if course.sites:
        doc["sites"] = [{"host": s.host, "paths": list(s.paths), "methods": list(s.methods)} for s in course.sites]
    if course.translations:
        doc["translations"] = list(course.translations)
    doc["modules"] = []
    for module in course.modules:
        item: dict[str, Any] = {"title": module.title, "lessons": [lesson.file for lesson in module.lessons]}
        if module.quiz is not None:
            item["quiz"] = module.quiz.file
            put(module.quiz.file, dump(_quiz_yaml(module.quiz)))
        doc["modules"].append(item)
        for lesson in module.lessons:
            put(lesson.file, lesson.text.encode("utf-8"))
            for translation in lesson.translations:
                put(f"{lesson.file.removesuffix('.md')}.{translation.language}.md", translation.text.encode("utf-8"))
    put("course.yaml", dump(doc))
    for name, data in course.media:
        put(name, data)
