"""A course's site on two gateway processes sharing one PostgreSQL and one Redis, as a facility runs them.

Blocked on both nodes before enrolment; open on both within a second of `gatehouse course enrol`; closed on both
within a second of `gatehouse course withdraw`; and closed on both by the end date itself, with no sweep run and no
event sent, because each node reads the dates at every identity lookup (`gatehouse/learning/grants.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gatehouse.ca import ca_cert_file
from gatehouse.cli.control import announce
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.learning import catalog, enrolment
from gatehouse.learning.package import load_package
from gatehouse.staff import add_staff
from gateway.identity import CACHE_S
from tests.conftest import HOSTS, POLICY, Origin
from tests.helpers import CELL, INMATE, PIN, curl, free_port, populate, start_redis
from tests.test_course_package import GOOD, build
from tests.test_learning_gateway import COURSE_RULE, SITE, cli, until_status
from tests.test_multinode import Facility, Node, _start, _until_status, login_at

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
END_IN_S = 3.0
"""How far ahead the end date is set: time to see the site open on both nodes first."""
END_SLACK_S = 1.5
"""A node may answer from an identity it looked up up to CACHE_S (1 s) before the end date, and the probe adds its
poll interval and a curl round trip: about 1.1 s at worst by design, so 1 s would be too tight."""


@pytest.fixture
async def facility(tmp_path: Path, origin: Origin, postgres_url: str) -> AsyncIterator[Facility]:
    """A portal process and gateway processes gwa and gwb as in `test_multinode`, with the job-letters course
    imported and the rule that opens other.test/jobs to it (and no 1-minute budget: INMATE browses from CELL)."""
    redis_port = free_port()
    redis = await start_redis(redis_port)
    starting: list[asyncio.Task[tuple[asyncio.subprocess.Process, str]]] = []
    try:
        settings = initialise(tmp_path / "data", {
            "database.url": postgres_url, "redis.url": f"redis://127.0.0.1:{redis_port}/0",
            "proxy.upstream_ca_file": str(origin.ca_file)}, quiet=True)
        (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
        (settings.policy_dir / "test.yaml").write_text(POLICY, encoding="utf-8")
        (settings.policy_dir / "course.yaml").write_text(COURSE_RULE, encoding="utf-8")
        populate(settings)
        kernel = Kernel.open(settings)
        try:
            with kernel.factory.begin() as session:
                add_staff(session, username="teacher", roles=["education"],
                          password="a long and private passphrase", now=utcnow())
                catalog.import_course(session, load_package(build(tmp_path / "package", GOOD)), by="teacher",
                                      now=utcnow())
        finally:
            kernel.engine.dispose()
        portal_port = free_port()
        resolve = [arg for h in HOSTS for arg in ("--resolve", f"{h}:80=127.0.0.1:{origin.http_port}",
                                                  "--resolve", f"{h}:443=127.0.0.1:{origin.https_port}")]
        public = f"http://127.0.0.1:{portal_port}"
        starting = [asyncio.create_task(start) for start in (
            _start(settings, "portal1", "--only", "portal", "--portal-port", str(portal_port), portal=public),
            _start(settings, "gwa", "--only", "gateway", "--proxy-port", str(free_port()), *resolve, portal=public),
            _start(settings, "gwb", "--only", "gateway", "--proxy-port", str(free_port()), *resolve, portal=public))]
        await asyncio.wait(starting)
        (portal, _), (node_a, proxy_a), (node_b, proxy_b) = [task.result() for task in starting]  # the first error
        ca = str(ca_cert_file(settings.ca_dir))
        yield Facility(settings, public, Node(proxy_a, ca, origin), Node(proxy_b, ca, origin), redis,
                       [portal, node_a, node_b])
    finally:  # also when one process did not start: the others stop rather than outlive the test
        started = [task.result()[0] for task in starting if task.done() and task.exception() is None]
        for proc in started:
            if proc.returncode is None:
                proc.terminate()
        for proc in started:
            await asyncio.wait_for(proc.wait(), 20)
        redis.kill()
        await redis.wait()


async def on_both(facility: Facility, status: int, within: float) -> tuple[float, float]:
    """How long after now SITE answered `status` on node A and on node B, both probed at once."""
    a, b = await asyncio.gather(until_status(facility.a, SITE, status, within),  # type: ignore[arg-type]
                                until_status(facility.b, SITE, status, within))  # type: ignore[arg-type]
    return a, b


async def test_enrolment_opens_and_withdrawal_and_the_end_date_close_the_site_on_both_nodes(
        facility: Facility) -> None:
    browser = await login_at(facility.portal, CELL, INMATE, PIN)
    try:
        for node in (facility.a, facility.b):
            await _until_status(node, "http://allowed.test/ready", CELL, 200, 10)  # both see the session
            refused = await curl(node, SITE)  # type: ignore[arg-type]
            assert refused.status == 403 and "code: not-in-scope" in refused.body, (node.proxy, refused.body[:300])

        code, said, err = await cli(facility, "course", "enrol", "--course", "job-letters",  # type: ignore[arg-type]
                                    "--inmate", INMATE, "--by", "teacher")
        assert code == 0 and said == f"{INMATE} enrolled in job-letters", err
        opened = await on_both(facility, 200, 1.0)
        assert max(opened) < 1.0, f"open on A after {opened[0]:.3f} s, on B after {opened[1]:.3f} s"
        assert facility.a.origin.saw("GET", "other.test", "/jobs/list")

        code, said, err = await cli(facility, "course", "withdraw", "--course", "job-letters",  # type: ignore[arg-type]
                                    "--inmate", INMATE, "--reason", "moved to the evening class", "--by", "teacher")
        assert code == 0 and said == f"{INMATE} withdrawn from job-letters", err
        withdrawn = await on_both(facility, 403, 1.0)
        assert max(withdrawn) < 1.0, f"closed on A after {withdrawn[0]:.3f} s, on B after {withdrawn[1]:.3f} s"

        # Enrolled again until END_IN_S from now by the domain function, in a transaction of our own; its event is
        # announced on the bus as the CLI does, so opening takes milliseconds. Closing has no event at all.
        kernel = Kernel.open(facility.settings)
        try:
            with kernel.factory.begin() as session:
                ends_at = utcnow() + timedelta(seconds=END_IN_S)
                outcome = enrolment.enrol(session, course="job-letters", inmate=INMATE, by="teacher", now=utcnow(),
                                          ends_at=ends_at)
            ends = time.monotonic() + (ends_at - utcnow()).total_seconds()
            await asyncio.to_thread(announce, kernel, outcome.events)
            reopened = await on_both(facility, 200, 1.0)
            assert max(reopened) < 1.0, f"open on A after {reopened[0]:.3f} s, on B after {reopened[1]:.3f} s"
            await asyncio.sleep(ends - time.monotonic() - 2 * CACHE_S)
            started = time.monotonic()
            ended = [started + took - ends for took in await on_both(facility, 403, ends - started + END_SLACK_S)]
            assert min(ended) >= 0, f"closed before the end date: A {ended[0]:+.3f} s, B {ended[1]:+.3f} s"
            assert max(ended) < END_SLACK_S, f"closed after the end date: A {ended[0]:.3f} s, B {ended[1]:.3f} s"
            with kernel.factory() as session:  # nobody swept: the nodes read the end date themselves
                assert sorted(e.status for e in enrolment.enrolments_of(session, INMATE)) == ["active", "withdrawn"]
        finally:
            kernel.engine.dispose()
        print(f"\ndelays (s): enrol A {opened[0]:.3f} B {opened[1]:.3f}; withdraw A {withdrawn[0]:.3f} "
              f"B {withdrawn[1]:.3f}; re-enrol A {reopened[0]:.3f} B {reopened[1]:.3f}; "
              f"after the end date A {ended[0]:.3f} B {ended[1]:.3f}")
    finally:
        await browser.close()
