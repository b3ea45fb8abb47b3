"""A curated rule reaches every node: two gateway processes and a portal process of its own on one PostgreSQL and one
Redis, as a facility runs them, and one process with both planes.

An approval (`gatehouse curation approve`) opens the site on both nodes, and on the portal's home page, within a
second of the command's exit; a removal cuts the tunnels open under the rule on both nodes within a second, and a
rule's last moment cuts them at the next minute's look (`gateway/front.py`, `review_tunnels`).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import select

from gatehouse.ca import ca_cert_file
from gatehouse.cli.ops import initialise
from gatehouse.curation import proposals
from gatehouse.db.engine import utcnow
from gatehouse.db.models import ControlEventRow
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings
from gatehouse.staff import add_staff
from gateway.http1 import IDLE_TIMEOUT_S
from tests.conftest import HOSTS, POLICY, Origin
from tests.helpers import CELL, INMATE, PIN, Platform, connect_tunnel, curl, free_port, get_over, start_redis
from tests.test_cli import gatehouse
from tests.test_learning_gateway import until_status
from tests.test_multinode import Facility, Node, _eof, _start, _until_status, login_at

HOST = "other.test"
PAGE = f"https://{HOST}/jobs/open"
LISTED = f'href="https://{HOST}/jobs">{HOST}</a>'
"""How the inmate's home page lists the site when the portal's own policy has the rule."""
WITHIN_S = 1.0
EXPIRY_SLACK_S = 0.5
"""Open tunnels are looked at every second (REVIEW_S) and decided again at the first look in a new minute, so a cut
comes up to 1 s after the rule's last moment, plus that look's own work: 1 s exactly would fail under load."""
WRITE_SLACK_S = 0.5
"""Between the approval's clock and its announcement the command commits and writes its audit records (fsync and
a signed checkpoint each): up to half a second on a loaded machine (0.1-0.7 s measured)."""
TRIGGERS = ("everyone", "group", "course", "passthrough", "methods", "websocket", "ports")


def staffed(settings: Settings) -> None:
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            for name, roles in (("eva", ["education"]), ("sam", ["security"])):
                add_staff(session, username=name, roles=roles, password="a long passphrase 1", now=utcnow())
    finally:
        kernel.engine.dispose()


async def private_redis() -> tuple[asyncio.subprocess.Process, int]:
    """A redis-server of this test's own (a port another test took in between is tried again elsewhere)."""
    for attempt in range(3):
        port = free_port()
        try:
            return await start_redis(port), port
        except AssertionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
async def facility(tmp_path: Path, origin: Origin, postgres_url: str) -> AsyncIterator[Facility]:
    """The portal alone in its process, then gateways gwa and gwb, each on a port the system picked (port 0)."""
    from tests.helpers import populate

    redis, redis_port = await private_redis()
    started: list[asyncio.subprocess.Process] = []
    try:
        settings = initialise(tmp_path / "data", {
            "database.url": postgres_url, "redis.url": f"redis://127.0.0.1:{redis_port}/0",
            "proxy.upstream_ca_file": str(origin.ca_file)}, quiet=True)
        (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
        (settings.policy_dir / "test.yaml").write_text(POLICY, encoding="utf-8")
        populate(settings)
        staffed(settings)
        portal, address = await _start(settings, "portal1", "--only", "portal", "--portal-port", "0", portal="")
        started.append(portal)
        public = f"http://{address}"
        resolve = [arg for h in HOSTS for arg in ("--resolve", f"{h}:80=127.0.0.1:{origin.http_port}",
                                                  "--resolve", f"{h}:443=127.0.0.1:{origin.https_port}")]
        nodes = [asyncio.create_task(_start(settings, name, "--only", "gateway", "--proxy-port", "0", *resolve,
                                            portal=public)) for name in ("gwa", "gwb")]
        await asyncio.wait(nodes)
        started += [task.result()[0] for task in nodes if task.exception() is None]
        (node_a, proxy_a), (node_b, proxy_b) = [task.result() for task in nodes]  # the first error, if any
        ca = str(ca_cert_file(settings.ca_dir))
        yield Facility(settings, public, Node(proxy_a, ca, origin), Node(proxy_b, ca, origin), redis,
                       [portal, node_a, node_b])
    finally:  # also when one process did not start: the others stop rather than outlive the test
        for proc in started:
            if proc.returncode is None:
                proc.terminate()
        for proc in started:
            await asyncio.wait_for(proc.wait(), 20)
        redis.kill()
        await redis.wait()


async def cli(data_dir: Path, *args: str) -> tuple[str, float]:
    """Run `gatehouse ARGS`; its output and the moment it exited (monotonic clock)."""
    result = await asyncio.to_thread(gatehouse, data_dir, *args)
    exited = time.monotonic()
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout, exited


def number_of(said: str) -> str:
    match = re.match(r"proposal (\d+): \w+ (\S+):", said)
    assert match, said
    return match.group(1)


async def inspected_tunnel(node: Node | Platform) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel to HOST through `node`, with TLS inside it to the gateway's inspector (the facility CA), held
    open as a browser holds it, after one request has gone through it."""
    reader, writer = await connect_tunnel(node, HOST, CELL)
    await writer.start_tls(ssl.create_default_context(cafile=str(node.ca_file)), server_hostname=HOST)
    assert (await get_over(reader, writer, HOST, "/jobs/held")).startswith(b"origin other.test GET /jobs/held")
    return reader, writer


async def closed(reader: asyncio.StreamReader, timeout: float) -> float:
    """When the gateway closed the tunnel (monotonic clock); a TLS close without its alert counts."""
    try:
        return await _eof(reader, timeout)
    except ssl.SSLError:
        return time.monotonic()


async def home_until(browser: aiohttp.ClientSession, portal: str, listed: bool, within: float) -> float:
    """How long after now the inmate's home page (the portal process's policy) listed HOST, or stopped listing it."""
    started = time.monotonic()
    while True:
        async with browser.get(f"{portal}/home") as page:
            body = await page.text()
        if (LISTED in body) == listed:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"the home page {'lacks' if listed else 'still lists'} {HOST}"
        await asyncio.sleep(0.05)


async def on_both(facility: Facility, status: int, within: float) -> tuple[float, float]:
    a, b = await asyncio.gather(until_status(facility.a, PAGE, status, within),  # type: ignore[arg-type]
                                until_status(facility.b, PAGE, status, within))  # type: ignore[arg-type]
    return a, b


def written_at(settings: Settings) -> float:
    """When the last control event was written (the approval's own clock, before its commit), on the monotonic
    clock: a stricter start than the command's exit, which comes a second or so after it has announced the event."""
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            at = session.scalar(select(ControlEventRow.at).order_by(ControlEventRow.id.desc()).limit(1))
    finally:
        kernel.engine.dispose()
    assert at is not None
    return time.monotonic() - (time.time() - at.replace(tzinfo=UTC).timestamp())


def approve_now(settings: Settings, spec: dict[str, object]) -> str:
    """A proposal made by the domain function (a CLI option cannot give a time of day); its number."""
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            return str(proposals.propose(session, spec=dict(spec), by="eva", now=utcnow(), triggers=TRIGGERS).id)
    finally:
        kernel.engine.dispose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_approved_rule_opens_and_its_removal_and_its_end_cut_on_both_nodes_and_the_portal(
        facility: Facility) -> None:
    data = facility.settings.data_dir
    browser = await login_at(facility.portal, CELL, INMATE, PIN)
    try:
        for node in (facility.a, facility.b):
            await _until_status(node, "http://allowed.test/ready", CELL, 200, 10)  # both see the session
            refused = await curl(node, PAGE)  # type: ignore[arg-type]
            assert refused.status == 403, (node.proxy, refused.body[:300])
        await home_until(browser, facility.portal, False, 0)

        said, _ = await cli(data, "curation", "propose", "--host", HOST, "--paths", "/jobs", "--inmate", INMATE,
                            "--note", "vacancies", "--by", "eva")
        _, approved = await cli(data, "curation", "approve", number_of(said), "--by", "sam")
        probing = time.monotonic() - approved
        a, b, home = await asyncio.gather(until_status(facility.a, PAGE, 200, 5),  # type: ignore[arg-type]
                                          until_status(facility.b, PAGE, 200, 5),  # type: ignore[arg-type]
                                          home_until(browser, facility.portal, True, 5))
        opened = [probing + t for t in (a, b, home)]
        rule = re.search(r"add (site-\S+):", said).group(1)  # type: ignore[union-attr]

        tunnels = [await inspected_tunnel(node) for node in (facility.a, facility.b)]
        waiting = [asyncio.create_task(closed(reader, 30)) for reader, _ in tunnels]
        said, _ = await cli(data, "curation", "propose", "--remove", rule, "--note", "job found", "--by", "eva")
        _, removed = await cli(data, "curation", "approve", number_of(said), "--by", "sam")
        cut_at = await asyncio.gather(*waiting)
        cut = [at - removed for at in cut_at]
        written = await asyncio.to_thread(written_at, facility.settings)
        since_written = [at - written for at in cut_at]
        for _, writer in tunnels:
            writer.close()
        refused_a, refused_b = await on_both(facility, 403, WITHIN_S)
        gone = await home_until(browser, facility.portal, False, WITHIN_S)
        assert max(cut) < WITHIN_S, f"tunnels cut {cut[0]:.3f} s (A), {cut[1]:.3f} s (B) after the removal"
        assert max(since_written) < WITHIN_S + WRITE_SLACK_S, f"cut {since_written} s after the removal was written"

        # A rule whose last moment is the next minute boundary (at least 12 s away, to see it open first).
        zone = ZoneInfo(facility.settings["facility.timezone"])
        local = datetime.now(zone)
        ends = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
        if (ends - local).total_seconds() < 12:
            ends += timedelta(minutes=1)
        number = await asyncio.to_thread(approve_now, facility.settings, {
            "allow": [HOST], "paths": ["/jobs"], "inmates": [INMATE], "valid_until": ends.strftime("%Y-%m-%dT%H:%M")})
        _, approved_again = await cli(data, "curation", "approve", number, "--by", "sam")
        await on_both(facility, 200, WITHIN_S)
        reopened = time.monotonic() - approved_again
        # Opened well within the gateway's idle timeout before the end: an idle connection closed after
        # IDLE_TIMEOUT_S would look like a cut before the end.
        if (until_end := (ends - datetime.now(zone)).total_seconds()) > IDLE_TIMEOUT_S - 20:
            await asyncio.sleep(until_end - (IDLE_TIMEOUT_S - 20))
        tunnels = [await inspected_tunnel(node) for node in (facility.a, facility.b)]
        boundary = time.monotonic() + (ends - datetime.now(zone)).total_seconds()
        waiting = [asyncio.create_task(closed(reader, boundary - time.monotonic() + 10)) for reader, _ in tunnels]
        expired = [at - boundary for at in await asyncio.gather(*waiting)]
        for _, writer in tunnels:
            writer.close()
        for node in (facility.a, facility.b):
            refused = await curl(node, PAGE)  # type: ignore[arg-type]
            assert refused.status == 403 and "code: not-valid-now" in refused.body, refused.body[:300]
        assert min(expired) > -0.05, f"cut before the rule ended: A {expired[0]:+.3f} s, B {expired[1]:+.3f} s"
        assert max(expired) < 1.0 + EXPIRY_SLACK_S, f"cut after the end: A {expired[0]:.3f} s, B {expired[1]:.3f} s"

        assert max(opened) < WITHIN_S, f"open on A after {opened[0]:.3f} s, B {opened[1]:.3f} s, " \
                                       f"the portal {opened[2]:.3f} s"
        print(f"\nafter the CLI exited (s): approval open A {opened[0]:.3f} B {opened[1]:.3f} portal {opened[2]:.3f}; "
              f"removal cut A {cut[0]:.3f} B {cut[1]:.3f} (after it was written: A {since_written[0]:.3f} "
              f"B {since_written[1]:.3f}), refused A {refused_a:.3f} B {refused_b:.3f}, portal "
              f"{gone:.3f}; approval again open on both {reopened:.3f}; after the end cut A {expired[0]:+.3f} "
              f"B {expired[1]:+.3f}; median of the cuts since written {statistics.median(since_written):.3f}")
    finally:
        await browser.close()


async def test_in_one_process_the_gateway_reloads_records_the_change_and_cuts(platform: Platform) -> None:
    """With both planes in one process (SQLite, no Redis: the gateway reads `control_events`), the portal leaves the
    reload to the gateway, so the gateway sees the change, records it and cuts the tunnel the removal ended."""
    staffed(platform.settings)
    data = platform.settings.data_dir
    async with platform.client(CELL) as browser:
        assert (await platform.login(browser)).status == 200
        said, _ = await cli(data, "curation", "propose", "--host", HOST, "--paths", "/jobs", "--inmate", INMATE,
                            "--by", "eva")
        rule = re.search(r"add (site-\S+):", said).group(1)  # type: ignore[union-attr]
        await cli(data, "curation", "approve", number_of(said), "--by", "sam")
        await until_status(platform, PAGE, 200, WITHIN_S)
        reader, writer = await inspected_tunnel(platform)
        waiting = asyncio.create_task(closed(reader, 30))
        said, _ = await cli(data, "curation", "propose", "--remove", rule, "--by", "eva")
        _, removed = await cli(data, "curation", "approve", number_of(said), "--by", "sam")
        cut = await waiting - removed
        writer.close()
        assert cut < WITHIN_S, f"the tunnel was cut {cut:.3f} s after the removal"
    changes = [r.reason for r in platform.records(tag="policy:snapshot:changed")]
    assert any(f"added {rule}" in r for r in changes) and any(f"removed {rule}" in r for r in changes), changes
    cuts = platform.records(tag="gateway:tunnel:cut", host=HOST)
    assert len(cuts) == 1, [c.reason for c in cuts]
