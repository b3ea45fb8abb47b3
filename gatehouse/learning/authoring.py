"""Authoring in the portal: a draft version edited file by file, with the package's own checks, then published.

A draft is a course version whose status is `draft`; it starts as a copy of the published version (or of the
newest). An edit names one file of the package (`course.yaml`, a lesson or its translation, a quiz) and its new
text; the whole package is then checked exactly as an import checks it, so an edit that breaks it is refused with
every `FILE:LINE: message` and changes nothing. Published and retired versions are never edited: learners keep
the version they enrolled in, and publishing the draft retires the one before.
"""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.learning import catalog, content, package
from gatehouse.learning.models import CourseMedia, CourseVersion, VersionStatus

EDITABLE_SUFFIXES = (".md", ".yaml")
"""Text files an author edits here; media are replaced by importing the package again."""


def _course_with_media(session: Session, version: CourseVersion) -> package.Course:
    media = tuple((m.path, m.data) for m in session.scalars(
        select(CourseMedia).where(CourseMedia.version_id == version.id).order_by(CourseMedia.path)))
    return dataclasses.replace(catalog.course_of(version), media=media)


def files_of(session: Session, version: CourseVersion) -> dict[str, str]:
    """The version's text files as a package holds them (course.yaml, lessons, quizzes), by name."""
    with tempfile.TemporaryDirectory() as folder:
        package.write_package(dataclasses.replace(catalog.course_of(version), media=()), folder)
        root = Path(folder)
        return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted(root.rglob("*")) if p.is_file()}


def draft(session: Session, slug: str, *, by: str, now: datetime) -> CourseVersion:
    """The course's draft: the one there is, else a new one copied from the published (or newest) version."""
    every = catalog.versions(session, slug)
    waiting = [v for v in every if v.status == VersionStatus.DRAFT.value]
    if waiting:
        return waiting[-1]
    source = next((v for v in every if v.status == VersionStatus.PUBLISHED.value), every[-1])
    return catalog.import_course(session, _course_with_media(session, source), by=by, now=now, publish=False)


def _draft(session: Session, version_id: int) -> CourseVersion:
    version = catalog.version(session, version_id)
    if version.status != VersionStatus.DRAFT.value:
        raise Conflict(f"version {version.number} of {version.course.slug} is {version.status}; a version learners "
                       "may be using is never changed: edit a draft")
    return version


def check(session: Session, version: CourseVersion, changed: dict[str, str]) -> package.Course:
    """The course the version would be with these files changed; PackageError with every problem if broken."""
    with tempfile.TemporaryDirectory() as folder:
        package.write_package(_course_with_media(session, version), folder)
        for name, text in changed.items():
            if not name.endswith(EDITABLE_SUFFIXES) or name.startswith("/") or ".." in name.split("/"):
                raise InvalidInput(f"{name}: only course.yaml, lessons and quizzes are edited here")
            target = Path(folder) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        course = package.load_package(folder)
    if course.id != version.course.slug:
        raise package.PackageError([f"course.yaml:1: the id is {version.course.slug!r}; a course keeps its id "
                                    "(import a package to make another course)"])
    return course


def _store(version: CourseVersion, course: package.Course) -> None:
    version.content = content.to_document(course)
    version.title, version.language, version.level = course.title, course.language, course.level
    version.category, version.duration_minutes = course.category, course.duration_minutes


def edit(session: Session, version_id: int, file: str, text: str) -> CourseVersion:
    """Replace one file of the draft; the whole package is checked first, and a problem changes nothing."""
    version = _draft(session, version_id)
    if not file.endswith(EDITABLE_SUFFIXES):
        raise InvalidInput(f"{file}: only course.yaml, lessons and quizzes are edited here; media come with an "
                           "import")
    if file not in files_of(session, version):
        raise NotFound(f"the course has no file {file}; new lessons come with a package import")
    _store(version, check(session, version, {file: text.replace("\r\n", "\n")}))
    session.flush()
    return version


def move_lesson(session: Session, version_id: int, number: int, delta: int) -> CourseVersion:
    """Move a lesson one place earlier (-1) or later (+1) in reading order; at a module's edge it moves into the
    next module, so any order can be reached."""
    version = _draft(session, version_id)
    course = catalog.course_of(version)
    order = content.lessons_of(course)
    target = number - 1 + delta
    if not 1 <= number <= len(order) or delta not in (-1, 1) or not 0 <= target < len(order):
        raise InvalidInput(f"lesson {number} cannot move {'up' if delta < 0 else 'down'}")
    order[number - 1], order[target] = order[target], order[number - 1]
    sizes = [len(m.lessons) for m in course.modules]
    modules, start = [], 0
    for module, size in zip(course.modules, sizes, strict=True):
        modules.append(dataclasses.replace(module, lessons=tuple(order[start:start + size])))
        start += size
    _store(version, dataclasses.replace(course, modules=tuple(modules)))
    session.flush()
    return version


def discard(session: Session, version_id: int) -> str:
    version = _draft(session, version_id)
    slug, number = version.course.slug, version.number
    if len(catalog.versions(session, slug)) == 1:
        raise Conflict("this draft is the course's only version; it cannot be discarded")
    course = version.course
    session.delete(version)
    session.flush()
    session.expire(course, ["versions"])
    return f"draft version {number} of {slug} discarded"
