"""The course package format: a good package loads from a folder and a zip, a broken one names file and line."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from gatehouse.errors import InvalidInput
from gatehouse.learning.lessons import render_lesson
from gatehouse.learning.package import PackageError, load_package, write_package

COURSE = """\
id: job-letters
title: Writing a job letter
language: en
level: A2
category: work
duration_minutes: 90
completion: all-lessons-and-quiz
sites:
  - host: werk.nl
    paths: [/vacatures]
translations: [nl]
modules:
  - title: Before you write
    lessons: [lessons/intro.md, lessons/tone.md]
  - title: The letter
    lessons: [lessons/letter.md]
    quiz: quizzes/letter.yaml
"""

QUIZ = """\
questions:
  - id: q1
    type: single
    prompt: Which greeting is formal?
    options: {a: Dear Sir or Madam, b: Hiya}
    answer: a
  - id: q2
    type: multiple
    prompt: What goes in a letter?
    options: {a: Your address, b: Your PIN, c: The date}
    answer: [a, c]
  - id: q3
    type: truefalse
    prompt: A letter has a subject line.
    answer: true
  - id: q4
    type: numeric
    prompt: How many pages at most?
    answer: 1
    tolerance: 0
  - id: q5
    type: text
    prompt: Sign off with?
    accepted: [Yours faithfully, Kind regards]
pool: 4
order: random
attempts: 3
pass_mark: 75
feedback: after-each
mastery: {m_of_n: [3, 4]}
"""

GOOD: dict[str, str | bytes] = {
    "course.yaml": COURSE,
    "quizzes/letter.yaml": QUIZ,
    "lessons/intro.md": "# Introduction\n\n![A letter](media/letter.png)\n",
    "lessons/intro.nl.md": "# Inleiding\n\n![Een brief](media/letter.png)\n",
    "lessons/tone.md": "# Tone\n\nListen: ![tone](media/tone.mp3) and see https://werk.nl/vacatures\n",
    "lessons/tone.nl.md": "# Toon\n\nLuister: ![toon](media/tone.mp3)\n",
    "lessons/letter.md": "# The letter\n\n[Example (PDF)](media/example.pdf)\n",
    "lessons/letter.nl.md": "# De brief\n\n[Voorbeeld](media/example.pdf)\n",
    "media/letter.png": b"\x89PNG\r\n\x1a\n",
    "media/tone.mp3": b"ID3",
    "media/example.pdf": b"%PDF-1.4",
}


def build(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def zipped(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(PackageError) as info:
        load_package(path)
    return info.value.errors


def test_good_package_from_folder(tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    assert (course.id, course.language, course.translations) == ("job-letters", "en", ("nl",))
    assert [len(m.lessons) for m in course.modules] == [2, 1]
    assert course.modules[0].lessons[0].title == "Introduction"
    assert course.modules[0].lessons[0].translations[0].title == "Inleiding"
    quiz = course.modules[1].quiz
    assert quiz is not None and quiz.pool == 4 and quiz.pass_mark == 75 and len(quiz.questions) == 5
    assert quiz.questions[1].answer == ("a", "c") and quiz.mastery is not None and quiz.mastery.m == 3
    assert course.sites[0].host == "werk.nl" and course.sites[0].methods == ("GET", "HEAD")
    assert dict(course.media)["media/tone.mp3"] == b"ID3"


def test_good_package_from_zip_and_from_zipped_folder(tmp_path: Path) -> None:
    folder_course = load_package(build(tmp_path / "pkg", GOOD))
    assert load_package(zipped(tmp_path / "a.zip", GOOD)) == folder_course
    assert load_package(zipped(tmp_path / "b.zip", {f"course/{k}": v for k, v in GOOD.items()})) == folder_course


def test_write_then_load_gives_the_same_course(tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    write_package(course, tmp_path / "out")
    assert load_package(tmp_path / "out") == course


def test_package_error_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_package(build(tmp_path / "pkg", {**GOOD, "course.yaml": "id: [\n"}))


def _with(name: str, old: str, new: str) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = dict(GOOD)
    text = files[name]
    assert isinstance(text, str) and old in text
    files[name] = text.replace(old, new, 1)
    return files


BROKEN = [
    ("missing-key", _with("course.yaml", "level: A2\n", ""), "course.yaml:1: course.yaml has no 'level'"),
    ("unknown-key", _with("course.yaml", "level: A2", "levle: A2"),
     "course.yaml:4: unknown key 'levle' in course.yaml; did you mean 'level'?"),
    ("language", _with("course.yaml", "language: en", "language: es"),
     "course.yaml:3: language 'es' is not one of en, nl, fr, de"),
    ("duration-type", _with("course.yaml", "duration_minutes: 90", "duration_minutes: long"),
     "course.yaml:6: duration_minutes must be a whole number, not 'long'"),
    ("completion", _with("course.yaml", "all-lessons-and-quiz", "some"), "course.yaml:7: completion 'some'"),
    ("missing-lesson", _with("course.yaml", "lessons/tone.md]", "lessons/tones.md]"),
     "course.yaml:14: 'lessons/tones.md' is not in the package"),
    ("missing-quiz", _with("course.yaml", "quizzes/letter.yaml", "quizzes/other.yaml"),
     "course.yaml:17: 'quizzes/other.yaml' is not in the package"),
    ("duplicate-lesson", _with("course.yaml", "lessons/letter.md]", "lessons/intro.md]"),
     "course.yaml:16: 'lessons/intro.md' is on line 14 already"),
    ("bad-host", _with("course.yaml", "host: werk.nl", "host: https://werk.nl"), "course.yaml:9: host"),
    ("missing-media", _with("lessons/letter.md", "media/example.pdf", "media/missing.pdf"),
     "lessons/letter.md:3: 'media/missing.pdf' is not in the package"),
    ("climbing-media", _with("lessons/intro.md", "media/letter.png", "../media/letter.png"),
     "lessons/intro.md:3: '../media/letter.png' climbs out of the package"),
    ("no-title", _with("lessons/tone.md", "# Tone", "Tone"), "lessons/tone.md:1: no title"),
    ("missing-translation", {k: v for k, v in GOOD.items() if k != "lessons/tone.nl.md"},
     "lessons/tone.md:1: no nl translation"),
    ("answer-not-option", _with("quizzes/letter.yaml", "answer: [a, c]", "answer: [a, d]"),
     "quizzes/letter.yaml:11: answer 'd' is not an option"),
    ("pass-mark", _with("quizzes/letter.yaml", "pass_mark: 75", "pass_mark: 120"),
     "quizzes/letter.yaml:28: pass_mark 120 is outside 0-100"),
    ("pool", _with("quizzes/letter.yaml", "pool: 4", "pool: 9"),
     "quizzes/letter.yaml:25: pool 9 is larger than the 5 questions"),
    ("duplicate-question", _with("quizzes/letter.yaml", "id: q2", "id: q1"),
     "quizzes/letter.yaml:7: question id 'q1' is on line 2 already"),
    ("question-type", _with("quizzes/letter.yaml", "type: truefalse", "type: yesno"),
     "quizzes/letter.yaml:13: question type 'yesno' is not one of"),
    ("mastery", _with("quizzes/letter.yaml", "[3, 4]", "[5, 4]"), "quizzes/letter.yaml:30: m_of_n is [m, n]"),
    ("yaml-syntax", _with("quizzes/letter.yaml", "pool: 4", "pool: [4"), "quizzes/letter.yaml:"),
]


@pytest.mark.parametrize(("files", "expected"), [pytest.param(f, e, id=i) for i, f, e in BROKEN])
def test_broken_package_names_file_and_line(tmp_path: Path, files: dict[str, str | bytes], expected: str) -> None:
    errors = errors_of(build(tmp_path / "pkg", files))
    assert any(e.startswith(expected) for e in errors), errors


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    files = _with("course.yaml", "language: en", "language: es")
    files["quizzes/letter.yaml"] = QUIZ.replace("pass_mark: 75", "pass_mark: -1").replace("pool: 4", "pool: 9")
    errors = errors_of(build(tmp_path / "pkg", files))
    assert len(errors) == 3, errors
    assert all(e.split(":")[1].isdigit() for e in errors)


def test_zip_member_names_are_the_files_in_errors(tmp_path: Path) -> None:
    errors = errors_of(zipped(tmp_path / "c.zip", _with("lessons/tone.md", "# Tone", "Tone")))
    assert errors == ["lessons/tone.md:1: no title; start the lesson with a first-level heading (# Title)"]


def _symlink_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in GOOD.items():
            archive.writestr(name, content)
        link = zipfile.ZipInfo("media/passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


@pytest.mark.parametrize("member", ["../evil.md", "/etc/cron.d/evil", "media/../../evil", "C:/evil", "..\\evil"])
def test_zip_slip_is_refused(tmp_path: Path, member: str) -> None:
    errors = errors_of(zipped(tmp_path / "s.zip", {**GOOD, member: "x"}))
    assert errors == [f"{member}:0: a path outside the package; zip the course folder's contents only"]


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    assert errors_of(_symlink_zip(tmp_path / "l.zip")) == [
        "media/passwd:0: a symbolic link; put the file itself in the package"]


def test_folder_symlink_is_refused(tmp_path: Path) -> None:
    folder = build(tmp_path / "pkg", GOOD)
    (folder / "media" / "secret").symlink_to(tmp_path)
    assert errors_of(folder) == ["media/secret:0: a symbolic link; put the file itself in the package"]


def test_zip_too_large_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gatehouse.learning.archive.MAX_TOTAL_BYTES", 1000)
    errors = errors_of(zipped(tmp_path / "big.zip", {**GOOD, "media/big.bin": b"\0" * 2000}))
    assert len(errors) == 1 and "unpacks to" in errors[0]


def test_folder_too_large_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gatehouse.learning.archive.MAX_TOTAL_BYTES", 1000)
    errors = errors_of(build(tmp_path / "big", {**GOOD, "media/big.bin": b"\0" * 2000}))
    assert len(errors) == 1 and errors[0].startswith("big:0: more than")


def media(path: str) -> str:
    return f"/learning/media/job-letters/{path}"


RENDER = [
    ("image", "![pic](media/pic.png)", '<img src="/learning/media/job-letters/media/pic.png" alt="pic">'),
    ("pdf-link", "[pdf](media/a.pdf)", 'href="/learning/media/job-letters/media/a.pdf"'),
    ("audio", "![tone](media/tone.mp3)", '<audio controls=""><source src="/learning/media/job-letters/media/tone.mp3"'),
    ("video", "![clip](media/clip.mp4)", '<video controls=""><source src="/learning/media/job-letters/media/clip.mp4"'),
    ("external", "[werk](https://werk.nl/)", '<a href="https://werk.nl/" rel="noopener noreferrer">werk</a>'),
    ("table", "| a |\n|---|\n| 1 |", "<td>1</td>"),
    ("figure", '<figure><img src="media/p.png" alt="p"><figcaption>P</figcaption></figure>',
     '<figure><img src="/learning/media/job-letters/media/p.png" alt="p"><figcaption>P</figcaption></figure>'),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in RENDER])
def test_render_keeps_and_rewrites(text: str, expected: str) -> None:
    assert expected in render_lesson(text, media)


HOSTILE = [
    ("script", "<script>alert(1)</script>hello", ["<script", "alert"]),
    ("onerror", '<img src="media/x.png" onerror="alert(1)">', ["onerror", "alert"]),
    ("javascript-md", "[click](javascript:alert(1))", ["<a", "href"]),
    ("javascript-html", '<a href="javascript:alert(1)">x</a>', ["javascript:"]),
    ("javascript-entity", '<a href="jav&#x61;script:alert(1)">x</a>', ["javascript", "alert"]),
    ("iframe", '<iframe src="https://evil.example/"></iframe>', ["<iframe", "evil.example"]),
    ("style", "<style>body{display:none}</style><p style=\"color:red\">x</p>", ["<style", "style=", "display"]),
    ("onclick", '<p onclick="alert(1)">x</p>', ["onclick"]),
    ("data-url", '<img src="data:image/svg+xml,<svg onload=alert(1)>">', ["data:", "onload"]),
    ("climbing", "![x](../../secret.png)", ["secret", "../"]),
    ("object", '<object data="x.swf"></object><embed src="x.swf">', ["<object", "<embed", "swf"]),
]


@pytest.mark.parametrize(("text", "refused"), [pytest.param(t, r, id=i) for i, t, r in HOSTILE])
def test_sanitiser_refuses(text: str, refused: list[str]) -> None:
    html = render_lesson(text, media)
    for fragment in refused:
        assert fragment not in html, html


def test_rendered_lesson_in_a_loaded_package(tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    html = render_lesson(course.modules[0].lessons[1].text, media)
    assert "/learning/media/job-letters/media/tone.mp3" in html and "<h1>Tone</h1>" in html
    assert html.count("<audio") == 1
