"""Storing courses: importing a package as a new numbered version, publishing one, reading and exporting them.

An import is all or nothing: the caller's transaction holds the course, its version and every media file, and a
package that does not fit the tables raises `PackageError` (every problem, `FILE:LINE: message`) before anything
is written. A published version is never changed; importing the same course again makes the next version, and
publishing it retires the one before (learners enrolled in that one keep it until they finish).
"""

from __future__ import annotations

import dataclasses
import mimetypes
import posixpath
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.errors import Conflict, NotFound
from gatehouse.learning import content, lessons, package
from gatehouse.learning.models import Course, CourseMedia, CourseVersion, VersionStatus

__all__ = ["catalogue", "content_type", "course_of", "every_version", "export_course", "import_course", "media",
           "publish", "published", "version", "versions"]

_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp", ".svg": "image/svg+xml", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
          ".oga": "audio/ogg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".mp4": "video/mp4",
          ".webm": "video/webm", ".ogv": "video/ogg", ".pdf": "application/pdf", ".vtt": "text/vtt",
          ".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8"}
"""Fixed here rather than taken from the machine's mime.types, so every node serves a file the same way."""

_LIMITS = (("title", 255), ("level", 64), ("category", 64))


def content_type(path: str) -> str:
    """The type a media file is served with, from its suffix (`application/octet-stream` when unknown)."""
    suffix = posixpath.splitext(path.lower())[1]
    return _TYPES.get(suffix) or mimetypes.types_map.get(suffix) or "application/octet-stream"


def _check(course: package.Course) -> None:
    """What the tables hold that the package format does not bound: refused whole, before any row is written."""
    errors = [f"course.yaml:1: {name} is longer than {limit} characters"
              for name, limit in _LIMITS if len(getattr(course, name)) > limit]
    errors += [f"{name}:0: the path is longer than 255 characters" for name, _ in course.media if len(name) > 255]
    errors += [f"{name}:0: media live under media/" for name, _ in course.media if not name.startswith("media/")]
    held = {name for name, _ in course.media}
    for lesson in content.lessons_of(course):
        texts = [(lesson.file, lesson.text)] + [(f"{lesson.file.removesuffix('.md')}.{t.language}.md", t.text)
                                                for t in lesson.translations]
        for file, text in texts:
            for ref in lessons.references(text):
                path = lessons.media_path(ref.target)
                if path is not None and posixpath.normpath(path) not in held:
                    errors.append(f"{file}:{ref.line}: {ref.target!r} is not in the package; add it under media/")
    if errors:
        raise package.PackageError(errors)


def import_course(session: Session, course: package.Course, *, by: str, now: datetime,
                  publish: bool = True) -> CourseVersion:
    """The course as a new version (number 1 for a new id), with its media; published unless `publish` is false."""
    _check(course)
    row = session.scalar(select(Course).where(Course.slug == course.id))
    if row is None:
        row = Course(slug=course.id, eligible_groups=[], created_at=now, created_by=by)
        session.add(row)
        session.flush()
    number = (session.scalar(select(func.max(CourseVersion.number)).where(CourseVersion.course_id == row.id))
              or 0) + 1
    made = CourseVersion(course_id=row.id, number=number, status=VersionStatus.DRAFT.value, title=course.title,
                         language=course.language, level=course.level, category=course.category,
                         duration_minutes=course.duration_minutes, content=content.to_document(course),
                         created_at=now, created_by=by, published_by="")
    session.add(made)
    session.flush()
    for path, data in course.media:
        session.add(CourseMedia(version_id=made.id, path=path, content_type=content_type(path), data=data))
    session.flush()
    if publish:
        return _publish(session, made, by=by, now=now)
    return made


def _publish(session: Session, chosen: CourseVersion, *, by: str, now: datetime) -> CourseVersion:
    if chosen.status == VersionStatus.PUBLISHED.value:
        return chosen
    current = session.scalar(select(CourseVersion).where(CourseVersion.course_id == chosen.course_id,
                                                         CourseVersion.status == VersionStatus.PUBLISHED.value))
    if current is not None:
        current.status = VersionStatus.RETIRED.value
        session.flush()  # at most one published version per course: the index sees the retirement first
    chosen.status = VersionStatus.PUBLISHED.value
    chosen.published_at = now
    chosen.published_by = by
    session.flush()
    return chosen


def publish(session: Session, version_id: int, *, by: str, now: datetime) -> CourseVersion:
    """Make this version the one new enrolments get; the one published before is retired."""
    return _publish(session, version(session, version_id), by=by, now=now)


def published(session: Session, slug: str) -> CourseVersion:
    found = session.scalar(select(CourseVersion).join(Course).where(
        Course.slug == slug, CourseVersion.status == VersionStatus.PUBLISHED.value))
    if found is None:
        if session.scalar(select(Course.id).where(Course.slug == slug)) is None:
            raise NotFound(f"no course {slug!r}; `gatehouse course list` shows the courses")
        raise NotFound(f"the course {slug!r} has no published version")
    return found


def version(session: Session, version_id: int) -> CourseVersion:
    found = session.get(CourseVersion, version_id)
    if found is None:
        raise NotFound(f"no course version {version_id}")
    return found


def versions(session: Session, slug: str) -> list[CourseVersion]:
    """Every version of a course, oldest first (NotFound for an unknown course)."""
    row = session.scalar(select(Course).where(Course.slug == slug))
    if row is None:
        raise NotFound(f"no course {slug!r}; `gatehouse course list` shows the courses")
    return list(row.versions)


def course_of(version: CourseVersion) -> package.Course:
    """The version's course as the package loader gives it, without the media bytes (see `media`)."""
    return content.from_document(version.content)


def media(session: Session, version_id: int, path: str) -> CourseMedia | None:
    return session.get(CourseMedia, (version_id, path))


def catalogue(session: Session) -> list[CourseVersion]:
    """Every course's published version, by title."""
    return list(session.scalars(select(CourseVersion).where(CourseVersion.status == VersionStatus.PUBLISHED.value)
                                .order_by(CourseVersion.title, CourseVersion.id)))


def every_version(session: Session) -> list[CourseVersion]:
    """Every version of every course, by course id then number (what `gatehouse course list` shows)."""
    return list(session.scalars(select(CourseVersion).join(Course).order_by(Course.slug, CourseVersion.number)))


def _chosen(session: Session, slug: str, number: int | None) -> CourseVersion:
    every = versions(session, slug)
    if number is not None:
        for item in every:
            if item.number == number:
                return item
        numbers = ", ".join(str(v.number) for v in every)
        raise NotFound(f"the course {slug!r} has no version {number} (it has {numbers})")
    live = [v for v in every if v.status == VersionStatus.PUBLISHED.value]
    return live[0] if live else every[-1]


def export_course(session: Session, slug: str, folder: Path, *, version_number: int | None = None) -> CourseVersion:
    """Write a version (default: the published one, else the newest) as a package: a folder, or a zip when
    `folder` ends in .zip. Importing what it writes gives the same course. Refuses to write over anything."""
    folder = Path(folder)
    chosen = _chosen(session, slug, version_number)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(f"{folder} exists and is not an empty folder; choose a new path")
    files = tuple((row.path, row.data) for row in session.scalars(
        select(CourseMedia).where(CourseMedia.version_id == chosen.id).order_by(CourseMedia.path)))
    course = dataclasses.replace(course_of(chosen), media=files)
    if folder.suffix.lower() != ".zip":
        package.write_package(course, folder)
        return chosen
    with tempfile.TemporaryDirectory(prefix="gatehouse-export-") as scratch:
        package.write_package(course, Path(scratch))
        partial = folder.with_name(folder.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(Path(scratch).rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(scratch).as_posix())
        if folder.exists():
            shutil.rmtree(folder)
        partial.replace(folder)
    return chosen
