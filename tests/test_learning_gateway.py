"""Enrolment opens exactly the sites a course needs, through the gateway, and only while the inmate is enrolled:
blocked before, allowed (its paths and methods only) after `gatehouse course enrol`, blocked again after
withdrawal, completion and the end date; each grant opened and closed is in the audit log."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog, enrolment
from gatehouse.learning.models import Enrolment
from gatehouse.learning.package import load_package
from gatehouse.staff import add_staff
from tests.conftest import Origin, platform_settings
from tests.helpers import CELL, INMATE, OTHER_INMATE, Platform, curl
from tests.test_cli import gatehouse
from tests.test_course_package import GOOD, build

COURSE_RULE = """\
rules:
  - id: letters-site
    allow: [other.test]
    paths: [/jobs]
    methods: [GET, POST]
    courses: [job-letters]
"""
SITE = "http://other.test/jobs/list"


@pytest.fixture
async def platform(tmp_path: Path, origin: Origin) -> AsyncIterator[Platform]:
    """The usual platform, with a rule that opens other.test/jobs to the job-letters course and the course in it."""
    from gatehouse.cli.serve import running

    settings = platform_settings(tmp_path / "data", origin)
    (settings.policy_dir / "course.yaml").write_text(COURSE_RULE, encoding="utf-8")
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            add_staff(session, username="teacher", roles=["education"], password="a long and private passphrase",
                      now=utcnow())
            add_staff(session, username="guard", roles=["security"], password="a long and private passphrase",
                      now=utcnow())
            # The package asks for werk.nl/vacatures (no rule opens it) and other.test/jobs (the rule above does).
            course = str(GOOD["course.yaml"]).replace("sites:\n", "sites:\n  - host: other.test\n    paths: [/jobs]\n")
            catalog.import_course(session, load_package(build(tmp_path / "package", {**GOOD, "course.yaml": course})),
                                  by="teacher", now=utcnow())
    finally:
        kernel.engine.dispose()
    async with running(settings) as up:
        yield Platform(up, origin, settings)


async def cli(platform: Platform, *args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(gatehouse, platform.settings.data_dir, *args)
    return result.returncode, result.stdout.strip(), result.stderr.strip()


async def until_status(platform: Platform, url: str, status: int, within: float, method: str = "GET") -> float:
    """How long after now `url` answered `status` through the gateway (fails after `within` seconds)."""
    started = time.monotonic()
    while True:
        got = await curl(platform, url, method=method)
        if got.status == status:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{url}: {got.status} {got.body[:200]}"
        await asyncio.sleep(0.05)


def grants(platform: Platform) -> list[tuple[str, str]]:
    return [(r.tag, r.reason) for r in platform.records() if r.tag.startswith("learning:grant:")]


async def test_enrolment_opens_the_course_site_within_a_second_and_withdrawal_closes_it(platform: Platform) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        refused = await curl(platform, SITE)
        assert refused.status == 403 and "courses" in refused.body  # not in scope: the rule is for a course
        code, said, err = await cli(platform, "course", "enrol", "--course", "job-letters", "--inmate", INMATE,
                                    "--by", "teacher")
        assert code == 0 and said == f"{INMATE} enrolled in job-letters", err
        assert await until_status(platform, SITE, 200, 1.0) < 1.0
        assert platform.origin.saw("GET", "other.test", "/jobs/list")
        assert (await curl(platform, "http://other.test/jobs/apply", method="POST", data="x=1")).status == 200
        assert (await curl(platform, "http://other.test/admin")).status == 403  # only the rule's paths
        assert (await curl(platform, SITE, method="DELETE")).status == 403  # and methods
        async with browser.get(f"{platform.portal}/home") as home:  # the home page says what the course opens
            page = await home.text()
        assert "other.test" in page and "Open while you take the course Writing a job letter." in page
        async with browser.get(f"{platform.portal}/learning/job-letters") as course:
            shown = await course.text()  # what the package asks for, and whether a rule opens it
        assert re.search(r'data-open="yes"><code>other\.test</code>', shown)
        assert re.search(r'data-open="no"><code>werk\.nl</code>', shown)
        code, said, err = await cli(platform, "course", "withdraw", "--course", "job-letters", "--inmate", INMATE,
                                    "--reason", "moved to the evening class", "--by", "teacher")
        assert code == 0 and said == f"{INMATE} withdrawn from job-letters", err
        assert await until_status(platform, SITE, 403, 1.0) < 1.0
        async with browser.get(f"{platform.portal}/home") as home:
            assert "Open while you take the course" not in await home.text()
    opened, closed = grants(platform)[:2]
    assert opened == ("learning:grant:opened", f"{INMATE}: the sites of course job-letters open")
    assert closed == ("learning:grant:closed", f"{INMATE}: the sites of course job-letters close")
    added = platform.records(tag="learning:enrolment:added")
    assert added[0].actor == "teacher"


async def test_the_end_date_and_completion_close_the_site(platform: Platform) -> None:
    kernel = Kernel.open(platform.settings)
    try:
        with kernel.factory.begin() as session:
            enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow(),
                            ends_at=utcnow() + timedelta(seconds=1.5))
        async with platform.client(CELL) as browser:
            await platform.login(browser)
            assert await until_status(platform, SITE, 200, 1.0) < 1.0
            assert await until_status(platform, SITE, 403, 3.0) < 3.0  # the gateway reads the date itself
            with kernel.factory.begin() as session:
                ended = enrolment.sweep_ended(session, utcnow())
            assert [e.inmate for e in ended.events] == [INMATE] and not ended.events[0].enrolled
            with kernel.factory.begin() as session:
                enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow())
            assert await until_status(platform, SITE, 200, 1.0) < 1.0
            with kernel.factory.begin() as session:
                row = session.scalars(select(Enrolment).where(Enrolment.status == "active")).one()
                enrolment.complete(session, row, utcnow())
            assert await until_status(platform, SITE, 403, 1.0) < 1.0
        with kernel.factory() as session:
            statuses = sorted(e.status for e in enrolment.enrolments_of(session, INMATE))
        assert statuses == ["completed", "ended"]
    finally:
        kernel.engine.dispose()


async def test_refusals_say_why(platform: Platform, tmp_path: Path) -> None:
    code, _said, err = await cli(platform, "course", "enrol", "--course", "job-letters", "--inmate", INMATE,
                                 "--by", "guard")
    assert code == 2 and "does not have the education role" in err
    code, _said, err = await cli(platform, "course", "enrol", "--course", "nope", "--inmate", INMATE, "--by", "teacher")
    assert code == 2 and "no course 'nope'" in err
    code, _said, err = await cli(platform, "course", "enrol", "--course", "job-letters", "--inmate", INMATE,
                                 "--until", "31/12/2026", "--by", "teacher")
    assert code == 2 and "--until: '31/12/2026' is not a date; write YYYY-MM-DD" in err
    code, _said, err = await cli(platform, "course", "withdraw", "--course", "job-letters", "--inmate", INMATE,
                                 "--reason", "x", "--by", "teacher")
    assert code == 2 and f"{INMATE} is not enrolled in job-letters" in err
    kernel = Kernel.open(platform.settings)
    try:
        with kernel.factory.begin() as session:
            enrolment.set_eligible_groups(session, course="job-letters", groups=["learners"])
            enrolment.exclude(session, course="job-letters", inmate=OTHER_INMATE, reason="court order 12/2026",
                              by="teacher", now=utcnow())
        with kernel.factory() as session:
            verdict = enrolment.eligibility(session, "job-letters", OTHER_INMATE)
        assert not verdict.ok and verdict.reasons[-1] == "excluded from this course: court order 12/2026"
        with kernel.factory.begin() as session, pytest.raises(Conflict, match="open to the groups learners only"):
            enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow())
        with kernel.factory.begin() as session:
            enrolment.set_eligible_groups(session, course="job-letters", groups=[])
        with kernel.factory.begin() as session, pytest.raises(InvalidInput, match="end date has passed"):
            enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow(),
                            starts_at=utcnow() - timedelta(days=2), ends_at=utcnow() - timedelta(days=1))
        with kernel.factory.begin() as session, pytest.raises(InvalidInput, match="after the start date"):
            enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow(),
                            ends_at=utcnow() - timedelta(days=1))
    finally:
        kernel.engine.dispose()
    code, _said, err = await cli(platform, "course", "enrol", "--course", "job-letters", "--group", "nobody-here",
                                 "--by", "teacher")
    assert code == 2 and "nobody is in the group 'nobody-here'" in err
