"""The demo's two courses: real packages in four languages, imported and published by `populate`, and the job
course's practice site opened at the gateway to its learners only, by a rule in the demo's policy."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from gatehouse.cli.ops import initialise
from gatehouse.curation import asking
from gatehouse.demo.content import SITES
from gatehouse.demo.run import COURSES, populate
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog, lessons
from gatehouse.learning.models import Enrolment
from gatehouse.learning.package import QUESTION_TYPES, Course, load_package
from gatehouse.resources import jobs, plans
from gatehouse.resources.search import search
from gatehouse.settings import load_settings
from policies.decision import RequestFacts, Subject, Verdict, decide_request
from policies.rules import parse_policy
from policies.snapshot import Snapshot

LANGUAGES = {"job-application": ("en", {"nl", "fr", "de"}), "digital-basics": ("en", {"nl", "fr", "de"})}
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def course(name: str) -> Course:
    return load_package(COURSES / name)


def test_the_demo_ships_exactly_the_two_courses() -> None:
    assert sorted(p.name for p in COURSES.iterdir() if (p / "course.yaml").is_file()) == sorted(LANGUAGES)


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_each_package_loads_in_the_languages_promised(name: str) -> None:
    loaded = course(name)  # raises PackageError, naming every problem, if the package is broken
    language, translations = LANGUAGES[name]
    assert loaded.id == name and loaded.language == language and set(loaded.translations) == translations
    every = [lesson for module in loaded.modules for lesson in module.lessons]
    for lesson in every:
        titles = {lesson.title, *(t.title for t in lesson.translations)}
        assert len(titles) == 1 + len(translations), f"{lesson.file}: a translation has the English title"
        assert {t.language for t in lesson.translations} == translations


def test_the_job_course_has_a_practice_exercise_and_a_final_quiz_of_every_type() -> None:
    loaded = course("job-application")
    assert len(loaded.modules) == 2 and 4 <= sum(len(m.lessons) for m in loaded.modules) <= 5
    practice, final = (m.quiz for m in loaded.modules)
    assert practice is not None and practice.mastery is not None
    assert (practice.mastery.kind, practice.mastery.n) == ("in_a_row", 3)
    assert final is not None and final.mastery is None
    assert (final.pass_mark, final.attempts, final.feedback) == (70, 3, "at-end")
    assert {q.type for q in final.questions} == set(QUESTION_TYPES)


def test_digital_basics_gives_feedback_after_each_answer() -> None:
    loaded = course("digital-basics")
    assert loaded.completion == "all-lessons-and-quiz" and loaded.sites == ()
    assert [len(m.lessons) for m in loaded.modules] == [3]
    quizzes = [m.quiz for m in loaded.modules if m.quiz is not None]
    assert len(quizzes) == 1 and quizzes[0].feedback == "after-each"


def test_a_lesson_shows_a_real_png_from_the_package() -> None:
    loaded = course("job-application")
    media = dict(loaded.media)
    named = {lessons.media_path(ref.target) for m in loaded.modules for lesson in m.lessons
             for ref in lessons.references(lesson.text)}
    pngs = [path for path in named if path and path.endswith(".png")]
    assert pngs, "no lesson shows an image"
    for path in pngs:
        data = media[path]
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert catalog.content_type(path) == "image/png"
        end = data.index(b"IDAT") - 4
        size = int.from_bytes(data[end:end + 4], "big")
        assert zlib.decompress(data[end + 8:end + 8 + size])  # the pixels are there and unpack


def who(courses: frozenset[str] = frozenset()) -> Subject:
    return Subject("A1003", frozenset(), "cell-a1", "cell", "s1", courses)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    populate(initialise(data_dir, {"facility.name": "Demo Facility"}, quiet=True))
    return data_dir


def test_populate_publishes_both_courses_and_enrols_only_the_demo_inmate(demo_dir: Path) -> None:
    kernel = Kernel.open(load_settings(demo_dir))
    try:
        with kernel.factory() as session:
            shown = {(v.course.slug, v.number, v.status, v.created_by) for v in catalog.catalogue(session)}
            taken = {(e.inmate.number, e.course.slug, e.status, e.created_by)
                     for e in session.scalars(select(Enrolment))}
    finally:
        kernel.engine.dispose()
    assert shown == {("job-application", 1, "published", "demo"), ("digital-basics", 1, "published", "demo")}
    assert taken == {("A1001", "digital-basics", "active", "eva")}


def test_the_job_site_opens_to_the_course_learners_only(demo_dir: Path) -> None:
    site = course("job-application").sites[0]
    assert site.host in SITES, "the demo's content server does not answer this host"
    policy = load_settings(demo_dir).policy_dir / "demo.yaml"
    result = parse_policy(policy.read_text(encoding="utf-8"), policy.name)
    assert not result.errors
    snapshot = Snapshot.build(result.rules)
    for path in site.paths:
        for method in site.methods:
            facts = RequestFacts(method, site.host, 443, path + "/kitchen-help")
            assert decide_request(facts, who(), snapshot, now=NOW).verdict is Verdict.DENY
            opened = decide_request(facts, who(frozenset({"job-application"})), snapshot, now=NOW)
            assert opened.verdict is Verdict.ALLOW and opened.rule_ids == ("demo-course-job-application",)
    learner = who(frozenset({"job-application"}))
    assert decide_request(RequestFacts("POST", site.host, 443, site.paths[0]), learner, snapshot,
                          now=NOW).verdict is Verdict.DENY
    assert decide_request(RequestFacts("GET", site.host, 443, "/"), learner, snapshot, now=NOW).verdict \
        is Verdict.DENY


def test_a_site_request_waits_for_review_and_its_host_may_be_previewed(demo_dir: Path) -> None:
    """The demo's queue is not empty, and the asked host is one a rule names exactly (the preview may reach the
    demo's loopback content server) while the inmate is refused it at a cell."""
    kernel = Kernel.open(load_settings(demo_dir))
    try:
        with kernel.factory() as session:
            waiting = [(r.inmate.number, r.url, r.status) for r in asking.queue(session)]
    finally:
        kernel.engine.dispose()
    assert waiting == [("A1003", "https://library.demo.test/", "open")]
    policy = load_settings(demo_dir).policy_dir / "demo.yaml"
    snapshot = Snapshot.build(parse_policy(policy.read_text(encoding="utf-8"), policy.name).rules)
    assert "library.demo.test" in SITES and "library.demo.test" in snapshot.exact
    asked = RequestFacts("GET", "library.demo.test", 443, "/")
    assert decide_request(asked, who(), snapshot, now=NOW).verdict is Verdict.DENY


def test_the_demo_directory_is_imported_and_two_of_its_sites_are_demo_sites(demo_dir: Path) -> None:
    """The demo's release services are in the directory, searchable, and the two that point at demo sites are ones
    the demo policy already allows (so an inmate can follow them without the internet)."""
    kernel = Kernel.open(load_settings(demo_dir))
    try:
        with kernel.factory() as session:
            found = {s.id: s.url for s in search(session, "", "en")}
            housing = [s.id for s in search(session, "logement", "fr")]
    finally:
        kernel.engine.dispose()
    assert len(found) == 6 and "svc-logement-accueil" in housing
    hosts = {urlsplit(url).hostname for url in found.values()} & set(SITES)
    assert hosts == {"housing.demo.test", "jobs.demo.test"}
    policy = load_settings(demo_dir).policy_dir / "demo.yaml"
    snapshot = Snapshot.build(parse_policy(policy.read_text(encoding="utf-8"), policy.name).rules)
    for host in hosts:
        assert decide_request(RequestFacts("GET", host, 443, "/"), who(), snapshot, now=NOW).verdict is Verdict.ALLOW


def test_the_demo_posts_open_job_offers_and_supports_one_release(demo_dir: Path) -> None:
    kernel = Kernel.open(load_settings(demo_dir))
    try:
        with kernel.factory() as session:
            offers = jobs.open_offers(session, datetime.now(UTC).date(), jobs.JobFilters())
            fair = jobs.open_offers(session, datetime.now(UTC).date(), jobs.JobFilters(fair_chance=True))
            supported = [i.number for i in plans.supported_by(session, "eva")]
    finally:
        kernel.engine.dispose()
    assert len(offers) == 3 and {o.language for o in offers} == {"nl", "fr", "de"}
    assert len(fair) == 2
    assert supported == ["A1002"]
