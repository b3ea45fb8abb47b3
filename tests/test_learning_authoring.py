"""Authoring a draft, on SQLite and PostgreSQL: a copy of the published version, edited file by file with the
package's own checks, lessons reordered, published while learners stay on the version they enrolled in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.kernel import Kernel
from gatehouse.learning import authoring, catalog, content, enrolment, study
from gatehouse.learning.package import PackageError, load_package
from tests.helpers import INMATE, OTHER_INMATE, populate
from tests.test_course_package import GOOD, build

NOW = utcnow()


@pytest.fixture
def factory(tmp_path: Path, database_url: str) -> Iterator[sessionmaker[Session]]:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0, "database.url": database_url},
                          quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        catalog.import_course(session, load_package(build(tmp_path / "pkg", GOOD)), by="teacher", now=NOW)
    yield kernel.factory
    kernel.engine.dispose()


def test_a_draft_copies_the_published_version_with_its_media(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        made = authoring.draft(session, "job-letters", by="teacher", now=NOW)
        assert (made.number, made.status) == (2, "draft")
        again = authoring.draft(session, "job-letters", by="teacher", now=NOW)
        assert again.id == made.id  # one draft at a time
        assert catalog.course_of(made) == catalog.course_of(catalog.published(session, "job-letters"))
        assert catalog.media(session, made.id, "media/letter.png") is not None
        files = authoring.files_of(session, made)
        assert {"course.yaml", "lessons/intro.md", "lessons/intro.nl.md", "quizzes/letter.yaml"} <= set(files)
        assert files["lessons/intro.md"].startswith("# Introduction")


def test_an_edit_is_checked_whole_and_a_broken_one_changes_nothing(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        draft_id = authoring.draft(session, "job-letters", by="teacher", now=NOW).id
    with factory.begin() as session:
        authoring.edit(session, draft_id, "lessons/intro.md", "# Welcome\r\n\r\nRead this first.\r\n")
    with factory.begin() as session:
        lesson = content.lessons_of(catalog.course_of(catalog.version(session, draft_id)))[0]
        assert (lesson.title, lesson.text) == ("Welcome", "# Welcome\n\nRead this first.\n")
        with pytest.raises(PackageError) as broken:
            authoring.edit(session, draft_id, "lessons/tone.md", "no heading\n\n![x](media/gone.png)\n")
        assert sorted(broken.value.errors) == [
            "lessons/tone.md:1: no title; start the lesson with a first-level heading (# Title)",
            "lessons/tone.md:3: 'media/gone.png' is not in the package; add it under media/"]
        with pytest.raises(PackageError) as quiz:
            authoring.edit(session, draft_id, "quizzes/letter.yaml", "questions: []\npass_mark: 150\n")
        assert all(e.startswith("quizzes/letter.yaml:") for e in quiz.value.errors) and quiz.value.errors
        with pytest.raises(PackageError, match="keeps its id"):
            text = authoring.files_of(session, catalog.version(session, draft_id))["course.yaml"]
            authoring.edit(session, draft_id, "course.yaml", text.replace("id: job-letters", "id: other-course"))
        with pytest.raises(NotFound):
            authoring.edit(session, draft_id, "lessons/new.md", "# New\n")
        with pytest.raises(InvalidInput):
            authoring.edit(session, draft_id, "media/letter.png", "not an image")
    with factory() as session:
        kept = catalog.course_of(catalog.version(session, draft_id))
        assert content.lessons_of(kept)[1].title == "Tone"  # the refused edits changed nothing


def test_published_versions_are_never_edited_and_learners_keep_theirs(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        first = catalog.published(session, "job-letters")
        enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=NOW)
        with pytest.raises(Conflict, match="never changed"):
            authoring.edit(session, first.id, "lessons/intro.md", "# Changed\n")
        draft_id = authoring.draft(session, "job-letters", by="teacher", now=NOW).id
        authoring.edit(session, draft_id, "lessons/intro.md", "# Introduction, second edition\n")
        authoring.move_lesson(session, draft_id, 1, +1)
        authoring.move_lesson(session, draft_id, 2, +1)  # across the module's edge
        with pytest.raises(InvalidInput):
            authoring.move_lesson(session, draft_id, 1, -1)
        order = [(m.title, [lesson.file for lesson in m.lessons])
                 for m in catalog.course_of(catalog.version(session, draft_id)).modules]
        assert order == [("Before you write", ["lessons/tone.md", "lessons/letter.md"]),
                         ("The letter", ["lessons/intro.md"])]
        catalog.publish(session, draft_id, by="teacher", now=NOW)
        enrolment.enrol(session, course="job-letters", inmate=OTHER_INMATE, by="teacher", now=NOW)
        with pytest.raises(Conflict):
            authoring.move_lesson(session, draft_id, 1, +1)  # published now
    with factory() as session:
        mine = study.enrolment_of(session, _id(session, INMATE), "job-letters")
        theirs = study.enrolment_of(session, _id(session, OTHER_INMATE), "job-letters")
        assert study.lesson_at(study.course_of(mine), 1).title == "Introduction"
        assert study.lesson_at(study.course_of(theirs), 3).title == "Introduction, second edition"


def test_a_draft_is_discarded_but_never_the_only_version(factory: sessionmaker[Session], tmp_path: Path) -> None:
    with factory.begin() as session:
        made = authoring.draft(session, "job-letters", by="teacher", now=NOW)
        assert authoring.discard(session, made.id) == "draft version 2 of job-letters discarded"
        assert [v.number for v in catalog.versions(session, "job-letters")] == [1]
        only = catalog.import_course(session, load_package(build(tmp_path / "two", {
            **GOOD, "course.yaml": str(GOOD["course.yaml"]).replace("id: job-letters", "id: lonely")})),
            by="teacher", now=NOW, publish=False)
        with pytest.raises(Conflict, match="only version"):
            authoring.discard(session, only.id)


def _id(session: Session, number: str) -> int:
    from gatehouse.inmates import find_inmate

    return find_inmate(session, number).id
