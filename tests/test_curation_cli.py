"""`gatehouse curation ...` run as a person runs it (a subprocess), on the portal's rules: four eyes, the role a
proposal needs, refusals and sending back, each problem of a proposal named by its option, and `policy explain`
agreeing with what was approved."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gatehouse.cli.ops import initialise
from gatehouse.curation import asking
from gatehouse.curation.models import AccessRequest, Proposal
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditRecord, ControlEventRow, PolicyRule
from gatehouse.kernel import Kernel
from gatehouse.staff import add_staff
from tests.helpers import INMATE, populate
from tests.test_cli import gatehouse

URL = "https://jobs.example.org/apply"


@dataclass
class Place:
    data_dir: Path
    kernel: Kernel

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return gatehouse(self.data_dir, *args)

    def records(self, tag: str) -> list[tuple[str, str, str]]:
        with self.kernel.factory() as session:
            return [(r.actor, r.decision, r.reason) for r in session.scalars(
                select(AuditRecord).where(AuditRecord.tag == tag).order_by(AuditRecord.id))]

    def ask(self) -> int:
        with self.kernel.factory.begin() as session:
            return asking.ask(session, inmate=INMATE, url=URL, purpose="jobs", reason="to send my CV", now=utcnow(),
                              limit=3).request.id


@pytest.fixture
def place(tmp_path: Path, database_url: str) -> Iterator[Place]:
    settings = initialise(tmp_path / "data", {"database.url": database_url}, quiet=True)
    populate(settings)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        for name, roles in (("eva", ["education"]), ("ed", ["education"]), ("sam", ["security"]),
                            ("vic", ["supervisor"])):
            add_staff(session, username=name, roles=roles, password="a long passphrase 1", now=utcnow())
    yield Place(settings.data_dir, kernel)
    kernel.engine.dispose()


def proposal_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    match = re.match(r"proposal (\d+): ", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_four_eyes_then_a_second_person_approves_and_explain_allows(place: Place) -> None:
    request = place.ask()
    made = place.run("curation", "propose", "--host", "jobs.example.org", "--paths", "/apply", "--inmate", INMATE,
                     "--request", str(request), "--note", "CV for a job", "--by", "eva")
    number = proposal_id(made)
    assert "needs: education or security staff (not eva)" in made.stdout
    assert f"answers request {request}" in place.run("curation", "list").stdout

    own = place.run("curation", "approve", number, "--by", "eva")
    assert own.returncode == 1 and "four eyes" in own.stderr, (own.stdout, own.stderr)
    assert [(actor, decision) for actor, decision, _ in place.records("curation:proposal:denied")] == [
        ("eva", "deny")]
    with place.kernel.factory() as session:
        assert session.scalar(select(func.count()).select_from(PolicyRule)) == 0

    done = place.run("curation", "approve", number, "--by", "sam")
    assert done.returncode == 0 and "approved: rule site-jobs-example-org-" in done.stdout, done.stderr
    explained = place.run("policy", "explain", "--inmate", INMATE, "--url", URL)
    assert explained.returncode == 0 and "decision: ALLOW" in explained.stdout, explained.stdout
    assert "rule-allow[site-jobs-example-org-" in explained.stdout

    assert [a for a, _, _ in place.records("curation:proposal:made")] == ["eva"]
    assert [a for a, _, _ in place.records("curation:proposal:approved")] == ["sam"]
    (added,) = place.records("curation:rule:added")
    assert added[0] == "sam" and "proposed by eva, approved by sam" in added[2]
    with place.kernel.factory() as session:
        assert session.get(AccessRequest, request).status == "granted"  # type: ignore[union-attr]
        events = list(session.scalars(select(ControlEventRow.payload)))
    assert any('"type":"PolicyChanged"' in e for e in events), "every gateway node reads it from the table"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_roles_refusals_and_sending_back(place: Place) -> None:
    request = place.ask()
    nobody = place.run("curation", "propose", "--host", "jobs.example.org", "--everyone", "--by", "vic")
    assert nobody.returncode == 1 and "only education or security staff" in nobody.stderr
    wide = place.run("curation", "propose", "--host", "jobs.example.org", "--everyone", "--request", str(request),
                     "--by", "eva")
    number = proposal_id(wide)
    assert "needs: security staff (not eva), because it is for everyone" in wide.stdout
    teacher = place.run("curation", "approve", number, "--by", "ed")
    assert teacher.returncode == 1 and "needs security staff's approval (it is for everyone)" in teacher.stderr
    back = place.run("curation", "refuse", number, "--back", "--reason", "only for him, please", "--by", "sam")
    assert back.returncode == 0 and f"proposal {number} sent back to eva: only for him, please" in back.stdout
    again = place.run("curation", "approve", number, "--by", "sam")
    assert again.returncode == 1 and f"proposal {number} is returned already" in again.stderr
    assert [a for a, _, _ in place.records("curation:proposal:denied")] == ["ed", "sam"]
    assert [a for a, _, _ in place.records("curation:proposal:returned")] == ["sam"]
    listed = place.run("curation", "list").stdout
    assert re.search(rf"^{request} +{INMATE} .* open +{URL}$", listed, re.M), "it waits for education staff again"

    narrow = proposal_id(place.run("curation", "propose", "--host", "jobs.example.org", "--inmate", INMATE,
                                   "--request", str(request), "--by", "eva"))
    refused = place.run("curation", "refuse", narrow, "--reason", "the site sells data", "--by", "ed")
    assert refused.returncode == 0 and "refused: the site sells data" in refused.stdout
    with place.kernel.factory() as session:
        assert [p.status for p in session.scalars(select(Proposal).order_by(Proposal.id))] == ["returned", "refused"]
    assert "refused by ed: the site sells data" in place.run("curation", "list", "--all").stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("options", "said"), [
    (["--inmate", INMATE, "--until", "tomorrow"], "--until: 'tomorrow' is not a date (YYYY-MM-DD), or 'never'"),
    (["--inmate", INMATE, "--until", "2020-01-31"], "--until: 2020-01-31 has passed; give today or a later day"),
    (["--inmate", INMATE, "--mode", "tunnel"], "--mode: choose inspect or passthrough"),
    ([], "--inmate/--group/--course/--everyone: say whom the rule is for"),
])
def test_a_bad_proposal_names_the_option_and_proposes_nothing(place: Place, options: list[str], said: str) -> None:
    result = place.run("curation", "propose", "--host", "jobs.example.org", *options, "--by", "eva")
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert "nothing was proposed" in result.stderr
    with place.kernel.factory() as session:
        assert session.scalar(select(func.count()).select_from(Proposal)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_curated_rule_is_changed_and_removed_by_proposals(place: Place) -> None:
    number = proposal_id(place.run("curation", "propose", "--host", "jobs.example.org", "--inmate", INMATE,
                                   "--by", "eva"))
    assert place.run("curation", "approve", number, "--by", "ed").returncode == 0
    with place.kernel.factory() as session:
        rule = session.scalars(select(PolicyRule.rule_id)).one()
    change = place.run("curation", "propose", "--change", rule, "--until", "never", "--by", "eva")
    assert "edit " + rule in change.stdout and "no end" in change.stdout, change.stderr
    assert place.run("curation", "approve", proposal_id(change), "--by", "sam").returncode == 0
    removal = place.run("curation", "propose", "--remove", rule, "--note", "job found", "--by", "ed")
    assert place.run("curation", "approve", proposal_id(removal), "--by", "eva").returncode == 0
    explained = place.run("policy", "explain", "--inmate", INMATE, "--url", URL)
    assert explained.returncode == 1 and "decision: DENY" in explained.stdout, explained.stdout
    changes = [r for _, _, r in place.records("curation:rule:changed")] + [
        r for _, _, r in place.records("curation:rule:removed")]
    assert "after {allow: [jobs.example.org], inmates: [A100]}" in changes[0] and "after -" in changes[1]
