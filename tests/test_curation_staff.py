"""Curation for staff in a real browser: an inmate's request in the queue, a server-side preview, a proposal with
what it changes, four eyes enforced by the server (a crafted approval refused and recorded), approval opening the
site on the gateway within a second, twenty approvals at once making one rule, removal closing it again, pages
that changed flagged until security clears them, and axe-core on every curation page.

One platform (portal and gateway, SQLite), one loopback origin and one Chromium serve the module; the staff are
eva (education), ed (education) and sam (security), each logged in once with their app's code.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pyotp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from playwright.async_api import Browser, Page, expect
from sqlalchemy import func, select

from gatehouse.cli.serve import running
from gatehouse.curation import asking, proposals
from gatehouse.curation.models import PageCheck
from gatehouse.db.engine import utcnow
from gatehouse.db.models import PolicyRule
from gatehouse.staff import add_staff
from tests.conftest import Origin, platform_settings, serve_origin
from tests.helpers import CELL, INMATE, NEEDS_CHROMIUM, OTHER_INMATE, Platform, curl
from tests.test_browser_portal import AXE_OPTIONS, browser, opened

__all__ = ["browser"]  # the shared Chromium, as a fixture of this module
pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]

PASSWORD = "a long and private passphrase"
JOBS = """<!doctype html><html><head><title>Jobs at Other</title></head><body>
<h1>Vacancies</h1><p>Warehouse work, kitchen work.</p><a href="/jobs/list">All vacancies</a>
<form method="post" action="https://collect.example/in"><input name="user"><input type="password" name="pw">
<button>Log in</button></form></body></html>"""
FILE_RULES = """\
rules:
  - id: other-for-b
    allow: [other.test]
    inmates: [B200]
"""
"""A rule that names other.test exactly (so the gateway and the preview may reach the loopback origin) for
another inmate than the one who asks."""
SITE = "https://other.test/jobs"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory, test_ca: trustme.CA) -> AsyncIterator[Platform]:
    folder = tmp_path_factory.mktemp("curation")
    origin = Origin()

    async def handler(request: web.Request) -> web.Response:
        origin.seen.append((request.method, request.host.split(":")[0], request.path_qs))
        if request.path == "/jobs":
            return web.Response(text=JOBS, content_type="text/html")
        return web.Response(text=f"origin {request.host.split(':')[0]} {request.method} {request.path_qs}")

    async with serve_origin(origin, handler, test_ca, folder):
        settings = platform_settings(folder / "data", origin)
        (settings.policy_dir / "curation.yaml").write_text(FILE_RULES, encoding="utf-8")
        async with running(settings.replace(login__attempts_per_address=1000)) as up:
            yield Platform(up, origin, settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def staff(site: Platform, browser: Browser) -> dict[str, Any]:
    """The browser state of eva (education), ed (education) and sam (security), each enrolled at a first login."""
    states: dict[str, Any] = {}
    for name, role in (("eva", "education"), ("ed", "education"), ("sam", "security")):
        with site.up.kernel.factory.begin() as db:
            secret = add_staff(db, username=name, roles=[role], password=PASSWORD, now=utcnow()).totp_secret
        async with opened(browser) as page:
            await page.goto(f"{site.portal}/staff/login")
            await page.locator("#username").fill(name)
            await page.locator("#password").fill(PASSWORD)
            await page.locator('form[action="/staff/login"] button[type=submit]').click()
            await page.wait_for_url(f"{site.portal}/staff/enrol")
            await page.locator("#code").fill(pyotp.TOTP(secret).now())
            await page.locator('form[action="/staff/enrol"] button[type=submit]').click()
            await expect(page.get_by_test_id("recovery-codes")).to_be_visible()
            states[name] = await page.context.storage_state()
    return states


def as_(browser: Browser, staff: dict[str, Any], name: str, axe: bool = False) -> Any:
    return opened(browser, axe=axe, storage_state=staff[name])


def ask(site: Platform, url: str, inmate: str = INMATE, reason: str = "to apply for a job") -> int:
    with site.up.kernel.factory.begin() as db:
        return asking.ask(db, inmate=inmate, url=url, purpose="jobs", reason=reason, now=utcnow(),
                          limit=20).request.id


def propose(site: Platform, by: str, **form: str) -> int:
    """A proposal made as the portal's form makes it, straight through the domain."""
    spec, errors = proposals.spec_of(proposals.Draft.of(form), today=utcnow().date(), default_days=30)
    assert errors == {}, errors
    with site.up.kernel.factory.begin() as db:
        return proposals.propose(db, spec=spec, by=by, now=utcnow(),
                                 triggers=site.settings["curation.security_approves"]).id


async def csrf_of(page: Page) -> str:
    return next(c["value"] for c in await page.context.cookies() if c["name"] == "gh_csrf")


async def until_status(site: Platform, url: str, status: int, within: float) -> float:
    """How long after now `url` answered `status` through the gateway, as the inmate at the cell terminal."""
    started = time.monotonic()
    while True:
        got = await curl(site, url)
        if got.status == status:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{url}: {got.status} {got.body[:200]}"
        await asyncio.sleep(0.05)


def reasons(site: Platform, tag: str) -> list[tuple[str, str, str]]:
    return [(r.actor, r.decision, r.reason) for r in site.records(tag=tag)]


async def test_a_request_is_answered_with_a_rule_that_two_people_make_and_then_remove(
        site: Platform, browser: Browser, staff: dict[str, Any]) -> None:
    request_id = ask(site, SITE)
    async with site.client(CELL) as inmate:
        await site.login(inmate)
        assert (await curl(site, SITE)).status == 403
        site.records()  # the gateway's refusal shipped to the database, where the reviewer's context reads it

        async with as_(browser, staff, "eva") as eva:
            await eva.goto(f"{site.portal}/curation")
            row = eva.locator(f'[data-testid=queue] tr[data-request="{request_id}"]')
            await expect(row).to_contain_text(f"{INMATE} Jan Peeters")
            await expect(row).to_contain_text(SITE)
            await expect(row).to_contain_text("Jobs")
            await expect(row).to_contain_text("to apply for a job")
            await row.get_by_role("link", name=SITE).click()
            await expect(eva.get_by_test_id("url")).to_have_text(SITE)
            await expect(eva.get_by_test_id("denials")).to_contain_text("GET /jobs")

            await eva.get_by_role("button", name="Preview the page").click()
            await expect(eva.get_by_test_id("preview-title")).to_have_text("Jobs at Other")
            await expect(eva.get_by_test_id("preview-excerpt")).to_contain_text("Warehouse work")
            flags = eva.get_by_test_id("preview-flags")
            await expect(flags.locator('[data-flag="form-elsewhere"]')).to_have_count(1)
            await expect(flags.locator('[data-flag="login"]')).to_have_count(1)
            await expect(eva.get_by_test_id("preview-forms").locator('li[data-elsewhere="yes"]')).to_contain_text(
                "POST https://collect.example/in")
            await expect(eva.get_by_test_id("preview-links")).to_contain_text("https://other.test/jobs/list")
            assert ("GET", "other.test", "/jobs") in site.origin.seen  # fetched by the server, not the browser
            fetched = reasons(site, "curation:preview:fetched")
            assert fetched[-1][:2] == ("eva", "allow") and fetched[-1][2].startswith(f"{SITE}: 200 text/html")

            await eva.get_by_test_id("propose").click()
            await expect(eva.locator("#hosts")).to_have_value("other.test")
            await expect(eva.locator("#paths")).to_have_value("/jobs")
            await expect(eva.locator("#scope")).to_have_value("inmate")
            await expect(eva.locator("#target")).to_have_value(INMATE)
            today = site.up.kernel.policies.snapshot.local(utcnow()).date()
            await expect(eva.locator("#until")).to_have_value((today + timedelta(days=29)).isoformat())
            await expect(eva.get_by_test_id("propose")).to_have_count(0)  # first see what it changes
            await eva.locator("#note").fill("He applies for warehouse work")
            await eva.get_by_role("button", name="Show what changes").click()
            await expect(eva.get_by_test_id("gain").locator("li")).to_have_count(1)
            await expect(eva.get_by_test_id("gain")).to_contain_text(f"{INMATE} Jan Peeters")
            await expect(eva.get_by_test_id("explain-before")).to_contain_text("decision: DENY")
            await expect(eva.get_by_test_id("explain-after")).to_contain_text("decision: ALLOW")
            await expect(eva.get_by_test_id("needs")).to_have_attribute("data-role", "education")
            await eva.get_by_test_id("propose").click()
            await eva.wait_for_url(re.compile(r"/curation/proposals/\d+\?done=proposed$"))
            proposal_id = int(eva.url.split("/")[-1].split("?")[0])
            await expect(eva.get_by_role("status")).to_contain_text("Proposed")
            await expect(eva.get_by_test_id("approve")).to_have_count(0)
            await expect(eva.get_by_test_id("own")).to_be_visible()

            crafted = await eva.request.post(f"{site.portal}/curation/proposals/{proposal_id}/approve",
                                             form={"csrf_token": await csrf_of(eva)}, max_redirects=0)
            assert crafted.status == 403 and "four eyes" in await crafted.text()
        denied = reasons(site, "curation:proposal:denied")
        assert [(a, d) for a, d, _ in denied] == [("eva", "deny")] and "four eyes" in denied[0][2]
        made = reasons(site, "curation:proposal:made")
        assert made[-1][0] == "eva" and f"proposal {proposal_id} (add site-other-test-{proposal_id})" in made[-1][2]
        assert "allow: [other.test]" in made[-1][2] and f"inmates: [{INMATE}]" in made[-1][2]
        assert (await curl(site, SITE)).status == 403

        async with as_(browser, staff, "sam") as sam:
            await sam.goto(f"{site.portal}/curation/proposals")
            await expect(sam.locator(f'tr[data-proposal="{proposal_id}"]')).to_contain_text("eva")
            await sam.goto(f"{site.portal}/curation/proposals/{proposal_id}")
            await expect(sam.get_by_test_id("gain")).to_contain_text(INMATE)
            await sam.get_by_test_id("approve").click()
            await expect(sam.get_by_role("status")).to_contain_text("Approved")
            assert await until_status(site, SITE, 200, 1.0) < 1.0
            await expect(sam.get_by_test_id("proposal")).to_have_attribute("data-status", "approved")
        opened_page = await curl(site, SITE)
        assert "Jobs at Other" in opened_page.body
        rule_id = f"site-other-test-{proposal_id}"
        assert [(a, d) for a, d, _ in reasons(site, "curation:proposal:approved")][-1] == ("sam", "allow")
        added = reasons(site, "curation:rule:added")[-1]
        assert added[0] == "sam" and added[2].startswith(f"{rule_id}: before -; after {{allow: [other.test]")
        assert "proposed by eva, approved by sam" in added[2]

        async with as_(browser, staff, "eva") as eva:
            await eva.goto(f"{site.portal}/curation/rules")
            file_rule = eva.locator('[data-testid=rules] tr[data-rule="other-for-b"]')
            await expect(file_rule.get_by_test_id("where")).to_have_text("curation.yaml:2")
            await expect(file_rule.get_by_role("link", name="Change")).to_have_count(0)
            curated = eva.locator(f'[data-testid=rules] tr[data-rule="{rule_id}"]')
            await expect(curated.get_by_test_id("where")).to_contain_text("proposed by eva, approved by sam")
            await expect(curated).to_contain_text("/jobs")
            await curated.locator("input[name=note]").fill("He has the job")
            await curated.get_by_role("button", name=f"Remove {rule_id}").click()
            await eva.wait_for_url(re.compile(r"/curation/proposals/\d+\?done=proposed$"))
            removal = int(eva.url.split("/")[-1].split("?")[0])
            await expect(eva.get_by_test_id("before")).to_contain_text("allow: [other.test]")
        async with as_(browser, staff, "sam") as sam:
            await sam.goto(f"{site.portal}/curation/proposals/{removal}")
            await expect(sam.get_by_test_id("lose")).to_contain_text(INMATE)
            await sam.get_by_test_id("approve").click()
            await expect(sam.get_by_role("status")).to_contain_text("Approved")
            assert await until_status(site, SITE, 403, 1.0) < 1.0
        removed = reasons(site, "curation:rule:removed")[-1]
        assert removed[2].startswith(f"{rule_id}: before {{allow: [other.test]") and "after -" in removed[2]


async def test_twenty_approvals_at_once_make_one_rule(site: Platform, staff: dict[str, Any]) -> None:
    proposal_id = propose(site, "eva", hosts="twenty.example.org", scope="inmate", target=OTHER_INMATE)
    cookies = {c["name"]: c["value"] for c in staff["sam"]["cookies"]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CELL, 0)),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True), cookies=cookies) as sam:
        async def approve() -> int:
            async with sam.post(f"{site.portal}/curation/proposals/{proposal_id}/approve",
                                data={"csrf_token": cookies["gh_csrf"]}, allow_redirects=False) as resp:
                body = await resp.text()
                assert resp.status in (303, 409), (resp.status, body[:300])
                assert resp.status == 303 or "Too late: sam approved this proposal already." in body
                return resp.status
        statuses = await asyncio.gather(*(approve() for _ in range(20)))
    assert sorted(statuses) == [303] + [409] * 19
    with site.up.kernel.factory() as db:
        rules = db.scalar(select(func.count()).select_from(PolicyRule).where(
            PolicyRule.rule_id == f"site-twenty-example-org-{proposal_id}"))
    assert rules == 1
    approved = [r for r in reasons(site, "curation:proposal:approved") if f"proposal {proposal_id} " in r[2]]
    assert len(approved) == 1


async def test_a_group_proposal_needs_security_staff(site: Platform, browser: Browser,
                                                    staff: dict[str, Any]) -> None:
    proposal_id = propose(site, "eva", hosts="groups.example.org", scope="group", target="learners")
    async with as_(browser, staff, "ed") as ed:
        await ed.goto(f"{site.portal}/curation/proposals/{proposal_id}")
        await expect(ed.get_by_test_id("needs")).to_have_attribute("data-role", "security")
        await expect(ed.get_by_test_id("needs")).to_contain_text("it is for a group")
        await expect(ed.get_by_test_id("approve")).to_have_count(0)
        await expect(ed.get_by_test_id("cannot")).to_be_visible()
        crafted = await ed.request.post(f"{site.portal}/curation/proposals/{proposal_id}/approve",
                                        form={"csrf_token": await csrf_of(ed)}, max_redirects=0)
        assert crafted.status == 403 and "security staff" in await crafted.text()
        back = await ed.request.post(f"{site.portal}/curation/proposals/{proposal_id}/return",
                                     form={"csrf_token": await csrf_of(ed), "return_reason": "narrower"},
                                     max_redirects=0)
        assert back.status == 403
    assert any(actor == "ed" and f"proposal {proposal_id}: approve not allowed" in said
               for actor, _, said in reasons(site, "curation:proposal:denied"))
    with site.up.kernel.factory() as db:
        assert proposals.get(db, proposal_id).status == "pending"
        assert db.scalar(select(func.count()).select_from(PolicyRule).where(
            PolicyRule.rule_id == f"site-groups-example-org-{proposal_id}")) == 0


async def test_a_page_that_changed_is_flagged_until_security_clears_it(site: Platform, browser: Browser,
                                                                      staff: dict[str, Any]) -> None:
    proposal_id = propose(site, "ed", hosts="drift.example.org", scope="inmate", target=INMATE)
    with site.up.kernel.factory.begin() as db:
        rule_id = proposals.approve(db, proposal_id, by="eva", roles=["education"], now=utcnow()).proposal.rule_id
        check = PageCheck(rule_id=rule_id, url="https://drift.example.org/", checked_at=utcnow(), preview={},
                          drift=["New on the page: a password field (a login)."], flagged=True)
        db.add(check)
        db.flush()
        check_id = check.id
    site.up.kernel.policies.load()  # as the gateway does on hearing the change
    async with as_(browser, staff, "eva") as eva:
        await eva.goto(f"{site.portal}/curation/proposals")
        flag = eva.locator(f'[data-testid=flags] [data-flag="{check_id}"]')
        await expect(flag).to_contain_text("a password field (a login)")
        await expect(flag.get_by_role("button", name="Clear")).to_have_count(0)  # for security staff
        await eva.goto(f"{site.portal}/curation/rules?q=drift")
        await expect(eva.locator(f'tr[data-rule="{rule_id}"] [data-testid=flag]')).to_contain_text("a login")
        crafted = await eva.request.post(f"{site.portal}/curation/checks/{check_id}/clear",
                                         form={"csrf_token": await csrf_of(eva)}, max_redirects=0)
        assert crafted.status == 403
    async with as_(browser, staff, "sam") as sam:
        await sam.goto(f"{site.portal}/curation/rules?q=drift")
        row = sam.locator(f'tr[data-rule="{rule_id}"]')
        await row.get_by_role("button", name=f"Clear the flag on {rule_id}").click()
        await expect(sam.get_by_role("status")).to_have_text("The flag was cleared.")
        await expect(sam.locator(f'[data-flag="{check_id}"]')).to_have_count(0)
    with site.up.kernel.factory() as db:
        cleared = db.get(PageCheck, check_id)
        assert cleared is not None and cleared.cleared_by == "sam" and cleared.cleared_at is not None
    assert any(actor == "sam" and rule_id in said for actor, _, said in reasons(site, "curation:page:cleared"))


async def test_a_request_is_refused_with_a_reason_the_inmate_reads(site: Platform, browser: Browser,
                                                                   staff: dict[str, Any]) -> None:
    request_id = ask(site, "https://games.example.org/", reason="bored")
    async with as_(browser, staff, "eva") as eva:
        await eva.goto(f"{site.portal}/curation/requests/{request_id}")
        await eva.get_by_role("button", name="Refuse").click()
        await expect(eva.locator("#reason-error")).to_be_visible()
        await expect(eva.locator("#reason")).to_have_attribute("aria-invalid", "true")
        await eva.locator("#reason").fill("Games are not allowed")
        await eva.get_by_role("button", name="Refuse").click()
        await eva.wait_for_url(f"{site.portal}/curation?done=refused")
        await expect(eva.get_by_role("status")).to_contain_text("The request was refused")
        await expect(eva.locator(f'tr[data-request="{request_id}"]')).to_have_count(0)
    with site.up.kernel.factory() as db:
        mine = [r for r in asking.requests_of(db, INMATE) if r.id == request_id]
        assert [(r.status, r.answer, r.decided_by) for r in mine] == [("refused", "Games are not allowed", "eva")]
    refused = reasons(site, "curation:request:refused")
    assert refused[-1][0] == "eva" and "Games are not allowed" in refused[-1][2]


async def test_a_change_is_sent_back_changed_and_proposed_again(site: Platform, browser: Browser,
                                                               staff: dict[str, Any]) -> None:
    first = propose(site, "ed", hosts="edit.example.org", scope="inmate", target=INMATE)
    with site.up.kernel.factory.begin() as db:
        rule_id = proposals.approve(db, first, by="eva", roles=["education"], now=utcnow()).proposal.rule_id
    site.up.kernel.policies.load()
    async with as_(browser, staff, "eva") as eva:
        await eva.goto(f"{site.portal}/curation/rules?q={rule_id}")
        await eva.locator(f'tr[data-rule="{rule_id}"]').get_by_role("link", name="Change").click()
        await expect(eva.locator("#hosts")).to_have_value("edit.example.org")
        await expect(eva.locator("#target")).to_have_value(INMATE)
        await eva.locator("#scope").select_option("group")
        await eva.locator("#target").fill("learners")
        await eva.get_by_role("button", name="Show what changes").click()
        await expect(eva.get_by_test_id("needs")).to_have_attribute("data-role", "security")
        await eva.get_by_test_id("propose").click()
        await eva.wait_for_url(re.compile(r"/curation/proposals/\d+\?done=proposed$"))
        change = int(eva.url.split("/")[-1].split("?")[0])
        await expect(eva.get_by_test_id("before")).to_contain_text(f"inmates: [{INMATE}]")
        await expect(eva.get_by_test_id("after")).to_contain_text("groups: [learners]")
    async with as_(browser, staff, "sam") as sam:
        await sam.goto(f"{site.portal}/curation/proposals/{change}")
        await sam.get_by_role("button", name="Send back").click()
        await expect(sam.locator("#return_reason-error")).to_be_visible()
        await sam.locator("#return_reason").fill("Only for the two who need it")
        await sam.get_by_role("button", name="Send back").click()
        await expect(sam.get_by_role("status")).to_contain_text("sent back")
        await expect(sam.get_by_test_id("proposal")).to_have_attribute("data-status", "returned")
    assert reasons(site, "curation:proposal:returned")[-1][0] == "sam"
    async with as_(browser, staff, "eva") as eva:
        await eva.goto(f"{site.portal}/curation/proposals")
        await expect(eva.locator(f'[data-testid=returned] [data-proposal="{change}"]')).to_contain_text(
            "Only for the two who need it")
        await eva.goto(f"{site.portal}/curation/proposals/{change}")
        await eva.get_by_test_id("again").click()
        await expect(eva.locator("#target")).to_have_value("learners")
        await eva.locator("#scope").select_option("inmate")
        await eva.locator("#target").fill(f"{INMATE} {OTHER_INMATE}")
        await eva.get_by_role("button", name="Show what changes").click()
        await expect(eva.get_by_test_id("gain")).to_contain_text(OTHER_INMATE)
        await eva.get_by_test_id("propose").click()
        await eva.wait_for_url(re.compile(r"/curation/proposals/\d+\?done=proposed$"))
        await expect(eva.get_by_test_id("proposal")).to_have_attribute("data-status", "pending")
        await expect(eva.get_by_test_id("after")).to_contain_text(f"inmates: [{INMATE}, {OTHER_INMATE}]")


async def test_the_rules_filters(site: Platform, browser: Browser, staff: dict[str, Any]) -> None:
    soon = (utcnow().date() + timedelta(days=2)).isoformat()
    proposal_id = propose(site, "ed", hosts="soon.example.org", scope="inmate", target=INMATE, until=soon)
    with site.up.kernel.factory.begin() as db:
        rule_id = proposals.approve(db, proposal_id, by="eva", roles=["education"], now=utcnow()).proposal.rule_id
    site.up.kernel.policies.load()
    async with as_(browser, staff, "eva") as eva:
        await eva.goto(f"{site.portal}/curation/rules")
        await expect(eva.get_by_test_id("ending-soon").locator(f'li[data-rule="{rule_id}"]')).to_contain_text(soon)
        await eva.get_by_label("Only rules ending soon").check()
        await eva.get_by_role("button", name="Show", exact=True).click()
        ids = await eva.locator("[data-testid=rules] tbody tr").evaluate_all("rows => rows.map(r => r.dataset.rule)")
        assert ids == [rule_id] and "ending=1" in eva.url
        await eva.goto(f"{site.portal}/curation/rules?source=file")
        ids = await eva.locator("[data-testid=rules] tbody tr").evaluate_all("rows => rows.map(r => r.dataset.rule)")
        assert "other-for-b" in ids and "allowed" in ids and not any(i.startswith("site-") for i in ids)
        await eva.locator("#q").fill("OTHER.test")
        await eva.get_by_role("button", name="Show", exact=True).click()
        await expect(eva.locator("[data-testid=rules] tbody tr")).to_have_count(1)
        await eva.goto(f"{site.portal}/curation/rules?scope=inmate&source=file")
        await expect(eva.locator("[data-testid=rules] tbody tr")).to_have_count(1)
        await expect(eva.locator("#scope")).to_have_value("inmate")


async def axe(page: Page, where: str) -> list[str]:
    result = await page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    return [f"{where}: {v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'])}"
            for v in result["violations"]]


async def test_every_curation_page_passes_axe(site: Platform, browser: Browser, staff: dict[str, Any]) -> None:
    request_id = ask(site, "https://other.test/jobs?for=axe", inmate=OTHER_INMATE, reason="a second look")
    proposal_id = propose(site, "ed", hosts="axe.example.org", scope="group", target="learners")
    problems: list[str] = []
    async with as_(browser, staff, "eva", axe=True) as eva:
        await eva.goto(f"{site.portal}/curation")
        problems += await axe(eva, "queue")
        await eva.goto(f"{site.portal}/curation/requests/{request_id}")
        await eva.get_by_role("button", name="Preview the page").click()
        await expect(eva.get_by_test_id("preview-title")).to_have_text("Jobs at Other")
        problems += await axe(eva, "request with a preview")
        await eva.goto(f"{site.portal}/curation/requests/{request_id}/propose")
        await eva.locator("#hosts").fill("*.com")
        await eva.get_by_role("button", name="Show what changes").click()
        await expect(eva.locator("#hosts-error")).to_be_visible()
        await expect(eva.locator("#hosts")).to_have_value("*.com")
        await expect(eva.locator("#hosts")).to_have_attribute("aria-invalid", "true")
        await expect(eva.locator("#note")).to_have_value("")
        problems += await axe(eva, "proposal form with errors")
        await eva.locator("#hosts").fill("other.test")
        await eva.locator("#scope").select_option("group")
        await eva.locator("#target").fill("learners")
        await eva.locator("#note").fill("the whole class")
        await eva.get_by_role("button", name="Show what changes").click()
        await expect(eva.get_by_test_id("needs")).to_have_attribute("data-role", "security")
        await expect(eva.locator("#note")).to_have_value("the whole class")
        problems += await axe(eva, "proposal form with what it changes")
        await eva.goto(f"{site.portal}/curation/proposals")
        problems += await axe(eva, "proposals")
        await eva.goto(f"{site.portal}/curation/proposals/{proposal_id}")
        problems += await axe(eva, "proposal")
        await eva.goto(f"{site.portal}/curation/rules")
        problems += await axe(eva, "rules")
    async with as_(browser, staff, "sam", axe=True) as sam:
        await sam.goto(f"{site.portal}/curation/proposals/{proposal_id}")
        await sam.locator('form[action$="/refuse"] button[type=submit]').click()
        await expect(sam.locator("#refuse_reason-error")).to_be_visible()
        problems += await axe(sam, "proposal with a missing reason")
    assert not problems, "\n".join(problems)
