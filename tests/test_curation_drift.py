"""The second look on drift, over real sockets to a loopback TLS origin, on SQLite and PostgreSQL: the first look after
approval is the baseline; a page that grew a form posting to another host and a password field is flagged with
what is new and recorded once; an unchanged page is not flagged; nothing is looked at again before it is due; a
cleared flag makes the page as cleared the one compared with."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from sqlalchemy import select

from gatehouse.cli.ops import initialise
from gatehouse.curation import asking, drift, proposals
from gatehouse.curation.models import PageCheck
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditRecord
from gatehouse.kernel import Kernel
from gatehouse.staff import add_staff
from tests.conftest import HOSTS, Origin, serve_origin
from tests.helpers import INMATE, populate
from tests.test_cli import gatehouse

TRIGGERS = ("everyone", "group", "course", "passthrough", "methods", "websocket", "ports")
JOBS = "<html><head><title>Jobs</title></head><body><h1>Vacancies</h1>" \
       '<form action="/search"><input name="q"><button>Search</button></form></body></html>'
GROWN = JOBS.replace("</body>", '<form method="post" action="https://collect.example/in">'
                                '<input name="user"><input type="password" name="pw"><button>Log in</button>'
                                "</form></body>")


@dataclass
class Pages(Origin):
    pages: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def site(test_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Pages]:
    result = Pages(pages={"/jobs": JOBS, "/": "<html><title>Library</title><p>Opening hours.</p></html>"})

    async def handler(request: web.Request) -> web.Response:
        result.seen.append((request.method, request.host.split(":")[0], request.path_qs))
        return web.Response(text=result.pages[request.path], content_type="text/html")

    async with serve_origin(result, handler, test_ca, tmp_path):
        yield result


@dataclass
class Place:
    kernel: Kernel
    data_dir: Path


@pytest.fixture
def place(tmp_path: Path, site: Pages, database_url: str) -> Iterator[Place]:
    """A data dir whose gateway (and preview) sends every test host to the origin and trusts its CA; no policy
    files, two staff members."""
    resolve = [f"{h}:443=127.0.0.1:{site.https_port}" for h in HOSTS]
    settings = initialise(tmp_path / "data", {"database.url": database_url, "proxy.resolve": resolve,
                                              "proxy.upstream_ca_file": str(site.ca_file)}, quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        for name, roles in (("eva", ["education"]), ("sam", ["security"])):
            add_staff(session, username=name, roles=roles, password="a long passphrase 1", now=utcnow())
    yield Place(kernel, settings.data_dir)
    kernel.engine.dispose()


def approved(place: Place, url: str, host: str) -> str:
    """A rule for INMATE proposed in answer to their request for `url`, approved by a second person; its id."""
    now = utcnow()
    with place.kernel.factory.begin() as session:
        asked = asking.ask(session, inmate=INMATE, url=url, purpose="jobs", reason="", now=now, limit=3)
        spec, errors = proposals.spec_of(proposals.Draft(hosts=host, scope="inmate", target=INMATE),
                                         today=date.today(), default_days=30)
        assert errors == {}
        made = proposals.propose(session, spec=spec, by="eva", now=now, triggers=TRIGGERS,
                                 request_id=asked.request.id)
        proposals.approve(session, made.id, by="sam", roles=["security"], now=now)
        rule_id = made.rule_id
    assert place.kernel.policies.load()
    return rule_id


def flagged_records(place: Place) -> list[AuditRecord]:
    with place.kernel.factory() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.tag == "curation:page:flagged")))


async def test_a_page_that_grows_a_login_posting_elsewhere_is_flagged_and_an_unchanged_one_is_not(
        place: Place, site: Pages) -> None:
    changing = approved(place, "https://other.test/jobs", "other.test")
    steady = approved(place, "https://www.allowed.test/", "www.allowed.test")
    now = utcnow()

    first = {c.rule_id: c for c in await drift.recheck(place.kernel, now)}
    assert sorted(first) == sorted([changing, steady])
    assert all(c.baseline and not c.flagged for c in first.values())
    assert first[changing].url == "https://other.test/jobs", "the page the inmate asked for"
    assert ("GET", "other.test", "/jobs") in site.seen
    assert await drift.recheck_due(place.kernel, now + timedelta(hours=1)) == 0, "not due before recheck_hours"

    site.pages["/jobs"] = GROWN
    later = now + timedelta(hours=25)
    second = {c.rule_id: c for c in await drift.recheck(place.kernel, later)}
    assert not second[steady].flagged and not second[steady].baseline
    look = second[changing]
    assert look.flagged and look.newly_flagged and not look.baseline
    assert "New on the page: a form that sends what is typed to another site." in look.drift
    assert "New on the page: a password field (a login)." in look.drift
    assert "A new form: POST https://collect.example/in (fields: user, pw)." in look.drift
    with place.kernel.factory() as session:
        rows = {r.rule_id: r for r in session.scalars(select(PageCheck).where(PageCheck.checked_at == later))}
    assert rows[changing].flagged and rows[changing].drift == list(look.drift)
    assert rows[changing].preview["flags"] == ["form-elsewhere", "login", "post"]
    assert not rows[steady].flagged and rows[steady].drift == []
    records = flagged_records(place)
    assert len(records) == 1 and records[0].reason.startswith(f"{changing}: https://other.test/jobs: ")
    assert records[0].host == "other.test" and "a password field" in records[0].reason

    # The same change seen again a day later stays flagged, and is not recorded again.
    third = {c.rule_id: c for c in await drift.recheck(place.kernel, later + timedelta(hours=25))}
    assert third[changing].flagged and not third[changing].newly_flagged
    assert len(flagged_records(place)) == 1

    # Security staff looked at the page and cleared the flag: the page as cleared is the one compared with next.
    with place.kernel.factory.begin() as session:
        latest = session.scalars(select(PageCheck).where(PageCheck.rule_id == changing)
                                 .order_by(PageCheck.id.desc())).first()
        assert latest is not None and latest.flagged
        latest.cleared_by, latest.cleared_at = "sam", utcnow()
    fourth = {c.rule_id: c for c in await drift.recheck(place.kernel, later + timedelta(hours=50))}
    assert not fourth[changing].flagged and len(flagged_records(place)) == 1


async def cli(place: Place, *args: str) -> subprocess.CompletedProcess[str]:
    """`gatehouse curation recheck ...` in a thread: the origin it fetches from runs in this event loop."""
    return await asyncio.to_thread(gatehouse, place.data_dir, "curation", "recheck", *args)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the command's part; the database's is above
async def test_recheck_from_the_command_line_looks_now_and_exits_1_on_a_flag(place: Place, site: Pages) -> None:
    rule_id = approved(place, "https://other.test/jobs", "other.test")
    kept = await cli(place, "--rule", rule_id)
    assert kept.returncode == 0 and "first look kept as the page approved" in kept.stdout, kept.stderr
    site.pages["/jobs"] = GROWN
    nothing = await cli(place)
    assert nothing.returncode == 0 and "nothing is due" in nothing.stdout, nothing.stderr
    looked = await cli(place, "--rule", rule_id)
    assert looked.returncode == 1 and "FLAGGED: " in looked.stdout and "a password field" in looked.stdout
    assert [r.actor for r in flagged_records(place)] == ["curation"]
    unknown = await cli(place, "--rule", "site-nothing-9")
    assert unknown.returncode == 2 and "no enabled, inspected curated rule 'site-nothing-9'" in unknown.stderr
