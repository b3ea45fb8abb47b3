"""Curation's rules on SQLite and PostgreSQL: asking (limits, the same URL once), proposing with the parser's
errors by field, who must approve, four eyes, one rule from twenty approvals at once, and what a change does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gatehouse.cli.ops import initialise
from gatehouse.curation import asking, proposals, ruleset
from gatehouse.curation.models import AccessRequest, Proposal, ProposalKind, RequestStatus
from gatehouse.db.engine import utcnow
from gatehouse.db.models import ControlEventRow, PolicyRule
from gatehouse.errors import Conflict, InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings
from gatehouse.staff import add_staff
from tests.helpers import INMATE, OTHER_INMATE, populate

TRIGGERS = ("everyone", "group", "course", "passthrough", "methods", "websocket", "ports")
TODAY = date(2026, 12, 3)


@dataclass
class Place:
    settings: Settings
    kernel: Kernel


@pytest.fixture
def place(tmp_path: Path, database_url: str) -> Iterator[Place]:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0, "database.url": database_url},
                          quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        for name, roles in (("eva", ["education"]), ("ed", ["education"]), ("sam", ["security"]),
                            ("both", ["education", "security"])):
            add_staff(session, username=name, roles=roles, password="a long passphrase 1", now=utcnow())
    yield Place(settings, kernel)
    kernel.engine.dispose()


def _spec(**form: str) -> dict[str, object]:
    spec, errors = proposals.spec_of(proposals.Draft.of(form), today=TODAY, default_days=30)
    assert errors == {}, errors
    return spec


def test_asking_keeps_one_request_per_url_and_a_few_at_once(place: Place) -> None:
    now = utcnow()
    with place.kernel.factory.begin() as s:
        first = asking.ask(s, inmate=INMATE, url="HTTPS://Jobs.Example.org/apply#top", purpose="jobs",
                           reason="  vacancies  ", now=now, limit=2)
        again = asking.ask(s, inmate=INMATE, url="https://jobs.example.org/apply", purpose="jobs",
                           reason="to apply", now=now, limit=2)
        assert first.new and not again.new and again.request.id == first.request.id
        assert again.request.url == "https://jobs.example.org/apply" and again.request.reason == "to apply"
        asking.ask(s, inmate=INMATE, url="housing.example.org", purpose="housing", reason="", now=now, limit=2)
    with place.kernel.factory.begin() as s, pytest.raises(Conflict, match="at most 2"):
        asking.ask(s, inmate=INMATE, url="https://third.example.org/", purpose="other", reason="", now=now, limit=2)
    for url, message in (("ftp://x.example.org/", "not web sites"), ("https://user:pw@x.example.org/", "user name"),
                         ("", "give the address")):
        with place.kernel.factory.begin() as s, pytest.raises(InvalidInput, match=message):
            asking.ask(s, inmate=OTHER_INMATE, url=url, purpose="jobs", reason="", now=now, limit=2)
    with place.kernel.factory.begin() as s, pytest.raises(InvalidInput, match="purpose"):
        asking.ask(s, inmate=OTHER_INMATE, url="a.example.org", purpose="fun", reason="", now=now, limit=2)


def test_a_draft_is_checked_by_the_policy_parser_and_errors_name_the_field() -> None:
    ok = _spec(hosts="jobs.example.org", scope="inmate", target=INMATE)
    assert ok["inmates"] == [INMATE] and ok["valid_until"] == (TODAY + timedelta(days=30)).isoformat()
    cases = [({"hosts": "", "scope": "everyone"}, "hosts"), ({"hosts": "a.example.org", "scope": "group"}, "target"),
             ({"hosts": "a.example.org", "scope": "everyone", "until": "2020-01-01"}, "until"),
             ({"hosts": "a.example.org", "scope": "everyone", "windows": "someday 9-5"}, "windows"),
             ({"hosts": "*.com", "scope": "everyone"}, "hosts"),
             ({"hosts": "a.example.org", "scope": "everyone", "ports": "https"}, "ports")]
    for form, field_name in cases:
        _unused, errors = proposals.spec_of(proposals.Draft.of(form), today=TODAY, default_days=30)
        assert field_name in errors, (form, errors)


def test_who_must_approve() -> None:
    narrow = _spec(hosts="jobs.example.org", scope="inmate", target=INMATE)
    assert proposals.needs(narrow, TRIGGERS) == ("education", [])
    for form, why in (({"scope": "everyone"}, "everyone"), ({"scope": "group", "target": "learners"}, "a group"),
                      ({"scope": "inmate", "target": INMATE, "mode": "passthrough"}, "passthrough"),
                      ({"scope": "inmate", "target": INMATE, "methods": "GET POST"}, "methods"),
                      ({"scope": "inmate", "target": INMATE, "ports": "8443"}, "ports")):
        role, reasons = proposals.needs(_spec(hosts="jobs.example.org", **form), TRIGGERS)
        assert role == "security" and any(why in r for r in reasons), (form, reasons)
    assert proposals.needs(_spec(hosts="a.example.org", scope="everyone"), ("passthrough",))[0] == "education"


def _propose(place: Place, by: str = "eva", **form: str) -> int:
    with place.kernel.factory.begin() as s:
        return proposals.propose(s, spec=_spec(**form), by=by, now=utcnow(), triggers=TRIGGERS).id


def test_four_eyes_and_roles(place: Place) -> None:
    narrow = _propose(place, hosts="jobs.example.org", scope="inmate", target=INMATE)
    wide = _propose(place, hosts="news.example.org", scope="everyone")
    with place.kernel.factory.begin() as s:
        assert "four eyes" in proposals.may_approve(proposals.get(s, narrow), "eva", ["education"])
        assert proposals.may_approve(proposals.get(s, narrow), "ed", ["education"]) == ""
        assert "security" in proposals.may_approve(proposals.get(s, wide), "ed", ["education"])
    for by, roles in (("eva", ["education", "security"]), ("ed", ["education"])):
        with place.kernel.factory.begin() as s, pytest.raises(proposals.Refused):
            proposals.approve(s, wide, by=by, roles=roles, now=utcnow())
    own = _propose(place, by="both", hosts="x.example.org", scope="inmate", target=INMATE)
    with place.kernel.factory.begin() as s, pytest.raises(proposals.Refused, match="four eyes"):
        proposals.approve(s, own, by="both", roles=["education", "security"], now=utcnow())
    with place.kernel.factory.begin() as s:
        done = proposals.approve(s, wide, by="sam", roles=["security"], now=utcnow())
        records = done.records()
    assert [r[0] for r in records] == ["curation:proposal:approved", "curation:rule:added"]
    assert "before -; after {allow: [news.example.org]" in records[1][2] and "approved by sam" in records[1][2]
    with place.kernel.factory() as s:
        rule = s.scalar(select(PolicyRule).where(PolicyRule.rule_id == f"site-news-example-org-{wide}"))
        assert rule is not None and rule.created_by == "eva" and rule.approved_by == "sam"
        events = s.scalar(select(func.count()).select_from(ControlEventRow))
        assert events == 1


def test_twenty_approvals_at_once_give_one_rule(place: Place) -> None:
    pid = _propose(place, hosts="jobs.example.org", scope="inmate", target=INMATE)
    start = threading.Barrier(20)
    won: list[int] = []
    refused: list[str] = []

    def approve(i: int) -> None:
        start.wait()
        try:
            with place.kernel.factory.begin() as s:
                proposals.approve(s, pid, by="sam" if i % 2 else "ed", roles=["security", "education"], now=utcnow())
            won.append(i)
        except proposals.Refused as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 19, (won, refused)
    assert all("approved already" in r for r in refused)
    with place.kernel.factory() as s:
        assert s.scalar(select(func.count()).select_from(PolicyRule)) == 1


def test_a_request_follows_its_proposal_and_a_change_shows_who_gains(place: Place) -> None:
    now = utcnow()
    with place.kernel.factory.begin() as s:
        request = asking.ask(s, inmate=INMATE, url="https://jobs.example.org/apply", purpose="jobs", reason="cv",
                             now=now, limit=3).request.id
        pid = proposals.propose(s, spec=_spec(hosts="jobs.example.org", scope="inmate", target=INMATE), by="eva",
                                now=now, triggers=TRIGGERS, request_id=request).id
        assert s.get(AccessRequest, request).status == RequestStatus.PROPOSED.value  # type: ignore[union-attr]
    with place.kernel.factory() as s:
        proposal = proposals.get(s, pid)
        before = place.kernel.policies.snapshot
        change = ruleset.impact(s, before, ruleset.after_proposal(before, proposal), "https://jobs.example.org/apply",
                                now, requester=INMATE)
    assert change.gain == ((INMATE, "Jan Peeters"),) and change.lose == ()
    assert any("DENY" in line for line in change.before) and any("ALLOW" in line for line in change.after)
    with place.kernel.factory.begin() as s:
        done = proposals.refuse(s, pid, reason="send it for the course group", by="sam", roles=["security"], now=now,
                                back=True)
        assert done.proposal.status == "returned" and s.get(AccessRequest, request).status == "open"  # type: ignore[union-attr]
        asking.refuse(s, request, reason="use the job centre's site instead", by="eva", now=now)
    with place.kernel.factory() as s:
        mine = asking.requests_of(s, INMATE)
        assert [(r.status, r.answer) for r in mine] == [("refused", "use the job centre's site instead")]


def test_a_curated_rule_is_changed_and_removed_through_proposals(place: Place) -> None:
    pid = _propose(place, hosts="jobs.example.org", scope="inmate", target=INMATE)
    with place.kernel.factory.begin() as s:
        rule_id = proposals.approve(s, pid, by="ed", roles=["education"], now=utcnow()).proposal.rule_id
    place.kernel.policies.load()
    assert any(r.id == rule_id for r in place.kernel.policies.snapshot.rules)
    with place.kernel.factory.begin() as s:
        edit = proposals.propose(s, spec=_spec(hosts="jobs.example.org", scope="group", target="learners"), by="ed",
                                 now=utcnow(), triggers=TRIGGERS, kind=ProposalKind.EDIT, rule_id=rule_id)
        assert edit.needs == "security"
        with pytest.raises(Conflict, match="waits for approval"):
            proposals.propose(s, spec={}, by="eva", now=utcnow(), triggers=TRIGGERS, kind=ProposalKind.REMOVE,
                              rule_id=rule_id)
        proposals.approve(s, edit.id, by="sam", roles=["security"], now=utcnow())
        gone = proposals.propose(s, spec={}, by="eva", now=utcnow(), triggers=TRIGGERS, kind=ProposalKind.REMOVE,
                                 rule_id=rule_id)
        done = proposals.approve(s, gone.id, by="ed", roles=["education"], now=utcnow())
        assert done.records()[1][0] == "curation:rule:removed" and "after -" in done.records()[1][2]
    place.kernel.policies.load()
    assert not any(r.id == rule_id for r in place.kernel.policies.snapshot.rules)
    with place.kernel.factory() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 3
