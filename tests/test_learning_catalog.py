"""Storing courses: import as numbered versions, publish, read back, export; on SQLite and PostgreSQL, and from
the command line as an education officer runs it."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gatehouse import staff
from gatehouse.cli import main
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import make_engine, session_factory, upgrade, utcnow
from gatehouse.db.models import AuditRecord
from gatehouse.errors import Conflict, NotFound
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog
from gatehouse.learning.models import Course, CourseMedia, CourseVersion
from gatehouse.learning.package import PackageError, load_package
from gatehouse.settings import load_settings
from tests.helpers import populate
from tests.test_course_package import GOOD, build

NOW = utcnow()
PASSWORD = "a long and private passphrase"


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def counts(session: Session) -> tuple[int, int, int]:
    return (session.scalar(select(func.count()).select_from(Course)) or 0,
            session.scalar(select(func.count()).select_from(CourseVersion)) or 0,
            session.scalar(select(func.count()).select_from(CourseMedia)) or 0)


def test_import_publish_and_read_back(factory: sessionmaker[Session], tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    with factory.begin() as session:
        first = catalog.import_course(session, course, by="teacher", now=NOW)
        assert (first.number, first.status, first.published_by) == (1, "published", "teacher")
        first_id = first.id
    with factory.begin() as session:
        assert counts(session) == (1, 1, 3)
        live = catalog.published(session, "job-letters")
        assert live.id == first_id and live.title == "Writing a job letter" and live.level == "A2"
        assert catalog.course_of(live) == dataclasses.replace(course, media=())
        png = catalog.media(session, first_id, "media/letter.png")
        assert png is not None and png.content_type == "image/png" and png.data == b"\x89PNG\r\n\x1a\n"
        pdf = catalog.media(session, first_id, "media/example.pdf")
        assert pdf is not None and pdf.content_type == "application/pdf"
        assert catalog.media(session, first_id, "media/nothing.png") is None
        assert [v.id for v in catalog.catalogue(session)] == [first_id]


def test_versions_draft_publish_and_retire(factory: sessionmaker[Session], tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    later = dataclasses.replace(course, title="Writing a job letter (2nd edition)")
    with factory.begin() as session:
        one = catalog.import_course(session, course, by="teacher", now=NOW)
        two = catalog.import_course(session, later, by="teacher", now=NOW + timedelta(minutes=1), publish=False)
        assert (one.status, two.number, two.status) == ("published", 2, "draft")
        ids = one.id, two.id
    with factory.begin() as session:
        assert catalog.published(session, "job-letters").id == ids[0]
        catalog.publish(session, ids[1], by="head", now=NOW + timedelta(minutes=2))
    with factory.begin() as session:
        assert [(v.number, v.status) for v in catalog.versions(session, "job-letters")] == \
            [(1, "retired"), (2, "published")]
        assert catalog.published(session, "job-letters").published_by == "head"
        assert [v.title for v in catalog.catalogue(session)] == ["Writing a job letter (2nd edition)"]
        three = catalog.import_course(session, course, by="teacher", now=NOW + timedelta(minutes=3))
        assert three.number == 3
    with factory.begin() as session:
        assert [(v.number, v.status) for v in catalog.versions(session, "job-letters")] == \
            [(1, "retired"), (2, "retired"), (3, "published")]
        catalog.publish(session, ids[0], by="head", now=NOW)  # a retired version may come back
        assert [v.status for v in catalog.versions(session, "job-letters")] == ["published", "retired", "retired"]
        assert counts(session) == (1, 3, 9)


def test_unknown_course_and_version(factory: sessionmaker[Session], tmp_path: Path) -> None:
    with factory.begin() as session:
        with pytest.raises(NotFound, match="no course 'nope'"):
            catalog.published(session, "nope")
        with pytest.raises(NotFound, match="no course version 999"):
            catalog.version(session, 999)
        version = catalog.import_course(session, load_package(build(tmp_path / "pkg", GOOD)), by="t", now=NOW,
                                        publish=False)
        with pytest.raises(NotFound, match="no published version"):
            catalog.published(session, "job-letters")
        with pytest.raises(NotFound, match="has no version 7"):
            catalog.export_course(session, "job-letters", tmp_path / "out", version_number=7)
        assert catalog.catalogue(session) == []
        assert catalog.version(session, version.id).number == 1


def test_a_course_the_tables_cannot_hold_imports_nothing(factory: sessionmaker[Session], tmp_path: Path) -> None:
    course = load_package(build(tmp_path / "pkg", GOOD))
    bad = dataclasses.replace(course, title="x" * 300, category="c" * 65,
                              media=course.media + (("media/" + "n" * 260 + ".png", b""),))
    with factory.begin() as session:
        with pytest.raises(PackageError) as info:
            catalog.import_course(session, bad, by="t", now=NOW)
        assert counts(session) == (0, 0, 0)
    assert info.value.errors[:2] == ["course.yaml:1: title is longer than 255 characters",
                                     "course.yaml:1: category is longer than 64 characters"]
    assert info.value.errors[2].endswith(":0: the path is longer than 255 characters")
    with factory.begin() as session:  # a lesson naming a file the course does not carry
        with pytest.raises(PackageError) as info:
            catalog.import_course(session, dataclasses.replace(course, media=course.media[1:]), by="t", now=NOW)
        assert counts(session) == (0, 0, 0)
    assert info.value.errors == ["lessons/letter.md:3: 'media/example.pdf' is not in the package; add it under media/",
                                 "lessons/letter.nl.md:3: 'media/example.pdf' is not in the package; "
                                 "add it under media/"]


def test_export_round_trip_equals_the_source(factory: sessionmaker[Session], tmp_path: Path) -> None:
    source = build(tmp_path / "pkg", GOOD)
    course = load_package(source)
    with factory.begin() as session:
        catalog.import_course(session, course, by="t", now=NOW)
        catalog.import_course(session, dataclasses.replace(course, title="Second"), by="t", now=NOW,
                              publish=False)
    with factory.begin() as session:
        assert catalog.export_course(session, "job-letters", tmp_path / "out").number == 1
        assert catalog.export_course(session, "job-letters", tmp_path / "v2", version_number=2).number == 2
        catalog.export_course(session, "job-letters", tmp_path / "out.zip")
        with pytest.raises(Conflict, match="not an empty folder"):
            catalog.export_course(session, "job-letters", tmp_path / "out")
    assert load_package(tmp_path / "out") == course
    assert load_package(tmp_path / "out.zip") == course
    assert load_package(tmp_path / "v2") == dataclasses.replace(course, title="Second")
    for name, data in GOOD.items():  # lessons and media byte for byte; the YAML files as the same data
        if not name.endswith(".yaml"):
            assert (tmp_path / "out" / name).read_bytes() == (data if isinstance(data, bytes) else data.encode())
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()) \
        == sorted(GOOD)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert sorted(archive.namelist()) == sorted(GOOD)


# -- the command line ---------------------------------------------------------------------------------------

Run = Callable[..., tuple[int, str, str]]


def learning_data_dir(path: Path) -> Path:
    """A data dir with the test inmates, an education account `teacher` and a security account `guard`."""
    settings = initialise(path, {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            staff.add_staff(session, username="teacher", roles=["education"], password=PASSWORD, now=NOW)
            staff.add_staff(session, username="guard", roles=["security"], password=PASSWORD, now=NOW)
    finally:
        kernel.engine.dispose()
    return path


def in_process(data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """`gatehouse ...` in this process, quicker than a new interpreter: (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("GATEHOUSE_")]:
        monkeypatch.delenv(name)

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([*argv, "--data-dir", str(data_dir)])
        except SystemExit as exc:  # argparse refuses before any handler runs
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return learning_data_dir(tmp_path_factory.mktemp("courses-cli") / "data")


@pytest.fixture
def cli(cli_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    return in_process(cli_dir, capsys, monkeypatch)


def audit_tags(data_dir: Path) -> list[tuple[str, str, str]]:
    kernel = Kernel.open(load_settings(data_dir))
    try:
        with kernel.factory() as session:
            return [(r.tag, r.actor, r.reason) for r in session.scalars(select(AuditRecord).order_by(AuditRecord.id))
                    if r.tag.startswith("learning:")]
    finally:
        kernel.engine.dispose()


def test_cli_import_list_export_publish(cli: Run, cli_dir: Path, tmp_path: Path) -> None:
    source = build(tmp_path / "pkg", GOOD)
    assert cli("course", "list") == (0, "no courses; `gatehouse course import PATH --by USER` adds one\n", "")
    code, out, err = cli("course", "import", str(source), "--by", "teacher")
    assert (code, err) == (0, "")
    assert out == "course job-letters version 1 (published): 3 lessons, 1 quizzes, 3 media files\n"
    code, out, _ = cli("course", "import", str(source), "--by", "teacher", "--draft")
    assert code == 0 and "version 2 (draft)" in out
    code, out, _ = cli("course", "list")
    assert code == 0 and out.splitlines() == [
        "ID           VERSION  STATUS     LANG  TITLE",
        "job-letters  1        published  en    Writing a job letter",
        "job-letters  2        draft      en    Writing a job letter"]
    assert cli("course", "export", "job-letters", "--out", str(tmp_path / "out"), "--by", "teacher")[:2] == \
        (0, f"course job-letters version 1 written to {tmp_path / 'out'}\n")
    assert load_package(tmp_path / "out") == load_package(source)
    code, _, err = cli("course", "export", "job-letters", "--out", str(tmp_path / "out"), "--by", "teacher")
    assert code == 2 and "not an empty folder" in err
    assert cli("course", "publish", "job-letters", "--version", "2", "--by", "teacher")[0] == 0
    assert "job-letters  2        published" in cli("course", "list")[1]
    code, _, _ = cli("course", "export", "job-letters", "--out", str(tmp_path / "v2.zip"), "--by", "teacher")
    assert code == 0 and load_package(tmp_path / "v2.zip") == load_package(source)
    tags = audit_tags(cli_dir)
    assert [t[:2] for t in tags[-5:]] == [("learning:course:imported", "teacher"),
                                          ("learning:course:imported", "teacher"),
                                          ("learning:course:exported", "teacher"),
                                          ("learning:course:published", "teacher"),
                                          ("learning:course:exported", "teacher")]
    assert "version 2 (draft)" in tags[-4][2] and "from pkg" in tags[-4][2]


def test_cli_broken_package_names_every_problem_and_imports_nothing(cli: Run, cli_dir: Path, tmp_path: Path) -> None:
    files = dict(GOOD)
    files["course.yaml"] = str(GOOD["course.yaml"]).replace("id: job-letters", "id: broken-course") \
        .replace("duration_minutes: 90", "duration_minutes: ninety")
    files["quizzes/letter.yaml"] = str(GOOD["quizzes/letter.yaml"]).replace("answer: a\n", "answer: z\n")
    del files["media/tone.mp3"]
    before = audit_tags(cli_dir)
    code, out, err = cli("course", "import", str(build(tmp_path / "pkg", files)), "--by", "teacher")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "course.yaml:6: duration_minutes must be a whole number, not 'ninety'",
        "lessons/tone.md:3: 'media/tone.mp3' is not in the package; add it under media/",
        "lessons/tone.nl.md:3: 'media/tone.mp3' is not in the package; add it under media/",
        "quizzes/letter.yaml:6: answer 'z' is not an option (a, b)",
        f"gatehouse: 4 problems in {tmp_path / 'pkg'}; nothing was imported"]
    assert "broken-course" not in cli("course", "list")[1]
    assert audit_tags(cli_dir) == before


@pytest.mark.parametrize(("by", "message"), [
    ("guard", "the staff account 'guard' does not have the education role"),
    ("nobody", "no staff account 'nobody'"),
])
def test_cli_acts_only_as_an_education_account(cli: Run, tmp_path: Path, by: str, message: str) -> None:
    files = {**GOOD, "course.yaml": str(GOOD["course.yaml"]).replace("id: job-letters", "id: refused-course")}
    code, out, err = cli("course", "import", str(build(tmp_path / "pkg", files)), "--by", by)
    assert (code, out, err) == (2, "", f"gatehouse: {message}\n")
    assert "refused-course" not in cli("course", "list")[1]
    code, _, err = cli("course", "import", str(tmp_path / "pkg"))
    assert code == 2 and "the following arguments are required: --by" in err
