"""The pure policy core: canonical hosts, the YAML form with located errors, decisions with reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from policies.decision import Decision, ReasonCode, RequestFacts, Subject, Verdict, decide_connect, decide_request
from policies.hosts import HostError, canonical_host, split_authority
from policies.rules import Mode, parse_policy
from policies.snapshot import Snapshot

WHO = Subject("A100", frozenset({"learners"}), "cell-1", "cell", "s1")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def connect(host: str, policy: Snapshot, who: Subject = WHO, port: int = 443, now: datetime = NOW) -> Decision:
    return decide_connect(RequestFacts("CONNECT", host, port), who, policy, now=now)


def request(method: str, url_host: str, path: str, policy: Snapshot, who: Subject = WHO, now: datetime = NOW,
            websocket: bool = False) -> Decision:
    return decide_request(RequestFacts(method, url_host, 443, path, websocket), who, policy, now=now)
POLICY = """\
rules:
  - id: khan-academy
    allow: [www.khanacademy.org, "*.kastatic.org"]
  - id: no-mail
    deny: [mail.example.org]
  - id: example
    allow: ["*.example.org", example.org]
    methods: [GET, POST]
  - id: bank
    mode: passthrough
    allow: [bank.example.net]
"""


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    result = parse_policy(POLICY, "p.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules)


@pytest.mark.parametrize(("raw", "canonical"), [
    ("WWW.Example.ORG.", "www.example.org"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("0x7f.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("0x.1", "0.0.0.1"),
    ("[::ffff:127.0.0.1]", "127.0.0.1"),
    ("[2001:DB8::1]", "2001:db8::1"),
])
def test_canonical_host(raw: str, canonical: str) -> None:
    assert canonical_host(raw) == canonical


@pytest.mark.parametrize("raw", ["", "a..b", "exa mple.com", "256.1.1.1", "1.2.3.4.5", "0x7g.1", "[::1"])
def test_bad_hosts_are_refused(raw: str) -> None:
    with pytest.raises(HostError):
        split_authority(raw, 443) if raw.startswith("[") else canonical_host(raw)


@pytest.mark.parametrize(("authority", "expected"), [
    ("Example.org:443", ("example.org", 443)),
    ("example.org", ("example.org", 443)),
    ("[::1]:8443", ("::1", 8443)),
])
def test_split_authority(authority: str, expected: tuple[str, int]) -> None:
    assert split_authority(authority, 443) == expected


@pytest.mark.parametrize(("host", "verdict", "code", "rule", "mode"), [
    ("www.khanacademy.org", Verdict.ALLOW, ReasonCode.RULE_ALLOW, "khan-academy", Mode.INSPECT),
    ("WWW.KhanAcademy.org.", Verdict.ALLOW, ReasonCode.RULE_ALLOW, "khan-academy", Mode.INSPECT),
    ("cdn.kastatic.org", Verdict.ALLOW, ReasonCode.RULE_ALLOW, "khan-academy", Mode.INSPECT),
    ("kastatic.org", Verdict.DENY, ReasonCode.NO_MATCH, "", Mode.INSPECT),
    ("khanacademy.org", Verdict.DENY, ReasonCode.NO_MATCH, "", Mode.INSPECT),
    ("mail.example.org", Verdict.DENY, ReasonCode.RULE_DENY, "no-mail", Mode.INSPECT),
    ("MAIL.example.org.", Verdict.DENY, ReasonCode.RULE_DENY, "no-mail", Mode.INSPECT),
    ("jobs.example.org", Verdict.ALLOW, ReasonCode.RULE_ALLOW, "example", Mode.INSPECT),
    ("bank.example.net", Verdict.ALLOW, ReasonCode.RULE_ALLOW, "bank", Mode.PASSTHROUGH),
    ("evil.com", Verdict.DENY, ReasonCode.NO_MATCH, "", Mode.INSPECT),
    ("a..b", Verdict.DENY, ReasonCode.BAD_HOST, "", Mode.INSPECT),
    ("127.0.0.1", Verdict.DENY, ReasonCode.IP_LITERAL, "", Mode.INSPECT),
])
def test_decide_connect(snapshot: Snapshot, host: str, verdict: Verdict, code: ReasonCode, rule: str,
                        mode: Mode) -> None:
    decision = connect(host, snapshot)
    assert decision.verdict is verdict
    assert decision.reasons[0].code is code
    assert decision.reasons[0].rule_id == rule
    assert decision.mode is mode


@pytest.mark.parametrize(("method", "host", "allowed"), [
    ("GET", "www.khanacademy.org", True),
    ("HEAD", "www.khanacademy.org", True),
    ("POST", "www.khanacademy.org", False),
    ("post", "jobs.example.org", True),
    ("DELETE", "jobs.example.org", False),
    ("GET", "mail.example.org", False),
])
def test_decide_request_methods(snapshot: Snapshot, method: str, host: str, allowed: bool) -> None:
    assert request(method, host, "/", snapshot).allowed is allowed


def test_deny_overrides_allow() -> None:
    rules = parse_policy("rules:\n- id: all\n  allow: ['*.example.org']\n- id: stop\n  deny: [x.example.org]\n",
                         "p").rules
    decision = connect("x.example.org", Snapshot.build(rules))
    assert not decision.allowed and decision.rule_ids == ("stop",)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("rules:\n  - id: a\n    allow: x.org\n  - id: Bad\n    allow: [y.org]\n", 4, "rule id 'Bad' must be"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    colour: red\n", 4, "unknown key 'colour'"),
    ("rules:\n  - id: a\n    allow: [x.org]\n  - id: a\n    deny: [y.org]\n", 4, "already used on line 2"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    deny: [y.org]\n", 2, "exactly one of allow or deny"),
    ("rules:\n  - id: a\n    allow: ['*.org']\n", 3, "whole public suffix"),
    ("rules:\n  - id: a\n    allow: ['ex ample.org']\n", 3, "not a host"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    mode: tunnel\n", 4, "mode must be inspect or passthrough"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    methods: [GET, FETCH]\n", 4, "unknown method FETCH"),
    ("rules: [\n  {id: a, allow: [x]\n", 3, "YAML syntax"),
    ("allow: [x.org]\n", 1, "unknown top-level key 'allow'"),
    ("rules: {}\n", 1, "rules must be a list"),
])
def test_policy_errors_name_the_line(text: str, line: int, message: str) -> None:
    errors = parse_policy(text, "p.yaml").errors
    assert errors, "expected an error"
    assert errors[0].line == line and message in errors[0].message, errors
    assert str(errors[0]).startswith(f"p.yaml:{line}: ")


def test_all_errors_are_reported_at_once() -> None:
    text = "rules:\n  - id: A\n    allow: [x.org]\n  - id: ok\n    allow: [y.org]\n  - id: b\n    allow: ['*.com']\n"
    result = parse_policy(text, "p.yaml")
    assert [e.line for e in result.errors] == [2, 7]
    assert [r.id for r in result.rules] == ["ok"]


def test_lookup_cost_follows_labels_not_rules() -> None:
    many = "rules:\n" + "".join(f"  - id: r{i}\n    allow: [site{i}.example.org]\n" for i in range(2000))
    snapshot = Snapshot.build(parse_policy(many, "p").rules)
    assert len(snapshot.exact) == 2000
    assert [r.id for r in snapshot.matching("site1999.example.org")] == ["r1999"]
    assert snapshot.matching("nothing.example.org") == ()


@pytest.mark.parametrize("name", ["example.org", "a-b.c-d.example", "x1.y2.z3", "Mixed.Case.Org", "a" * 63 + ".org"])
def test_plain_ascii_fast_path_agrees_with_idna(name: str) -> None:
    import idna

    assert canonical_host(name) == idna.encode(name, uts46=True, std3_rules=True).decode()


@pytest.mark.parametrize("name", ["-a.org", "a-.org", "a_b.org", "a" * 64 + ".org", "xn--zz.org"])
def test_names_the_fast_path_leaves_to_idna_are_refused(name: str) -> None:
    with pytest.raises(HostError):
        canonical_host(name)


SCOPED = """\
rules:
  - id: school
    allow: [learn.example.org]
    groups: [learners]
    terminals: [classroom]
    windows: ["mon-fri 08:00-16:00"]
  - id: one-inmate
    allow: [lawyer.example.org]
    inmates: [b200]
  - id: xmas
    allow: [family.example.org]
    valid_from: 2026-12-24
    valid_until: 2026-12-27
  - id: courses
    allow: [lms.example.org]
    paths: [/courses, /static/]
    methods: [GET, POST]
  - id: lms-no-forum
    deny: [lms.example.org]
    paths: [/courses/forum]
  - id: chat
    allow: [chat.example.org]
    websocket: true
  - id: alt-port
    allow: [media.example.org]
    ports: [8443]
  - id: course-site
    allow: [cooking.example.org]
    courses: [cook-101]
  - id: video
    allow: [meet.example.org]
    visit: true
"""
TZ = ZoneInfo("Europe/Brussels")
LEARNER_IN_CLASS = Subject("A100", frozenset({"learners"}), "class-1", "classroom", "s")
LEARNER_IN_CELL = Subject("A100", frozenset({"learners"}), "cell-1", "cell", "s")
OTHER = Subject("B200", frozenset(), "cell-2", "cell", "s")
ENROLLED = Subject("C300", frozenset(), "cell-3", "cell", "s", courses=frozenset({"cook-101"}))
IN_VISIT = Subject("D400", frozenset(), "booth-1", "booth", "s", in_visit=True)


@pytest.fixture(scope="module")
def scoped() -> Snapshot:
    result = parse_policy(SCOPED, "scoped.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules, timezone=TZ)


def at(text: str) -> datetime:
    """A wall-clock time in Brussels, as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.mark.parametrize(("host", "who", "when", "allowed", "code"), [
    ("learn.example.org", LEARNER_IN_CLASS, "2026-11-23T09:00", True, ReasonCode.RULE_ALLOW),
    ("learn.example.org", LEARNER_IN_CELL, "2026-11-23T09:00", False, ReasonCode.TERMINAL_KIND),
    ("learn.example.org", OTHER, "2026-11-23T09:00", False, ReasonCode.NOT_IN_SCOPE),
    ("learn.example.org", LEARNER_IN_CLASS, "2026-11-23T16:00", False, ReasonCode.OUTSIDE_WINDOW),
    ("learn.example.org", LEARNER_IN_CLASS, "2026-11-22T09:00", False, ReasonCode.OUTSIDE_WINDOW),  # Sunday
    ("lawyer.example.org", OTHER, "2026-11-23T22:00", True, ReasonCode.RULE_ALLOW),
    ("lawyer.example.org", LEARNER_IN_CELL, "2026-11-23T22:00", False, ReasonCode.NOT_IN_SCOPE),
    ("family.example.org", OTHER, "2026-12-23T23:59", False, ReasonCode.NOT_VALID_NOW),
    ("family.example.org", OTHER, "2026-12-24T00:00", True, ReasonCode.RULE_ALLOW),
    ("family.example.org", OTHER, "2026-12-27T00:00", False, ReasonCode.NOT_VALID_NOW),
    ("cooking.example.org", ENROLLED, "2026-11-23T22:00", True, ReasonCode.RULE_ALLOW),
    ("cooking.example.org", OTHER, "2026-11-23T22:00", False, ReasonCode.NOT_IN_SCOPE),
    ("meet.example.org", IN_VISIT, "2026-11-23T15:00", True, ReasonCode.RULE_ALLOW),
    ("meet.example.org", OTHER, "2026-11-23T15:00", False, ReasonCode.NOT_IN_SCOPE),
])
def test_scopes_and_conditions(scoped: Snapshot, host: str, who: Subject, when: str, allowed: bool,
                               code: ReasonCode) -> None:
    decision = connect(host, scoped, who, now=at(when))
    assert decision.allowed is allowed
    assert decision.reasons[0].code is code


@pytest.mark.parametrize(("utc", "allowed"), [
    # 29 March 2026: Brussels moves from UTC+1 to UTC+2. The window is 08:00-16:00 local on both sides.
    ("2026-03-27T06:59", False), ("2026-03-27T07:00", True), ("2026-03-27T14:59", True), ("2026-03-27T15:00", False),
    ("2026-03-30T05:59", False), ("2026-03-30T06:00", True), ("2026-03-30T13:59", True), ("2026-03-30T14:00", False),
    # 25 October 2026: back to UTC+1.
    ("2026-10-26T06:59", False), ("2026-10-26T07:00", True), ("2026-10-26T15:00", False),
])
def test_windows_follow_local_time_across_daylight_saving(scoped: Snapshot, utc: str, allowed: bool) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert connect("learn.example.org", scoped, LEARNER_IN_CLASS, now=now).allowed is allowed


@pytest.mark.parametrize(("method", "path", "allowed", "code"), [
    ("GET", "/courses", True, ReasonCode.RULE_ALLOW),
    ("GET", "/courses/math/1", True, ReasonCode.RULE_ALLOW),
    ("POST", "/courses/math/answer", True, ReasonCode.RULE_ALLOW),
    ("GET", "/static/app.css", True, ReasonCode.RULE_ALLOW),
    ("GET", "/static", False, ReasonCode.PATH_NOT_ALLOWED),
    ("GET", "/courses-admin", False, ReasonCode.PATH_NOT_ALLOWED),
    ("GET", "/admin", False, ReasonCode.PATH_NOT_ALLOWED),
    ("GET", "/courses/../admin", False, ReasonCode.PATH_NOT_ALLOWED),
    ("GET", "/courses%2F..%2Fadmin", False, ReasonCode.PATH_NOT_ALLOWED),
    ("GET", "/%63ourses/forum/post", False, ReasonCode.RULE_DENY),
    ("GET", "/courses//forum", False, ReasonCode.RULE_DENY),
    ("GET", "/courses;x=1/forum", False, ReasonCode.RULE_DENY),
    ("GET", "/courses\\forum", False, ReasonCode.RULE_DENY),
    ("DELETE", "/courses/1", False, ReasonCode.METHOD_NOT_ALLOWED),
])
def test_paths_and_methods(scoped: Snapshot, method: str, path: str, allowed: bool, code: ReasonCode) -> None:
    decision = request(method, "lms.example.org", path, scoped)
    assert (decision.allowed, decision.reasons[0].code) == (allowed, code), decision.explanation


def test_a_path_deny_does_not_deny_the_tunnel(scoped: Snapshot) -> None:
    decision = connect("lms.example.org", scoped)
    assert decision.allowed and decision.mode is Mode.INSPECT


def test_websocket_only_where_a_rule_allows_it(scoped: Snapshot) -> None:
    assert request("GET", "chat.example.org", "/ws", scoped, websocket=True).allowed
    refused = request("GET", "lms.example.org", "/courses/ws", scoped, websocket=True)
    assert refused.reasons[0].code is ReasonCode.WEBSOCKET_NOT_ALLOWED


@pytest.mark.parametrize(("host", "port", "allowed"), [
    ("media.example.org", 8443, True), ("media.example.org", 443, False), ("lms.example.org", 8443, False),
    ("lms.example.org", 80, True),
])
def test_ports(scoped: Snapshot, host: str, port: int, allowed: bool) -> None:
    assert connect(host, scoped, port=port).allowed is allowed


def test_the_trace_names_every_rule_that_did_not_apply(scoped: Snapshot) -> None:
    decision = connect("learn.example.org", scoped, OTHER, now=at("2026-11-23T20:00"))
    assert [r.rule_id for r in decision.trace] == ["school"]
    assert decision.trace[0].code is ReasonCode.NOT_IN_SCOPE


@pytest.mark.parametrize(("pattern", "ok"), [
    ("*.example.org", True), ("*.co.uk", False), ("*.com", False), ("*.github.io", False), ("*.be", False),
    ("*.bbc.co.uk", True),
])
def test_wildcards_over_a_public_suffix_are_refused(pattern: str, ok: bool) -> None:
    errors = parse_policy(f"rules:\n  - id: w\n    allow: ['{pattern}']\n", "p").errors
    assert (errors == []) is ok, errors


def test_unicode_rules_are_stored_in_canonical_form() -> None:
    rules = parse_policy("rules:\n  - id: u\n    allow: [Bücher.DE.]\n", "p").rules
    assert str(rules[0].hosts[0]) == "xn--bcher-kva.de"
    assert connect("xn--bcher-kva.de", Snapshot.build(rules)).allowed
    assert connect("BÜCHER.de", Snapshot.build(rules)).allowed


def test_the_readme_example_policy_is_valid() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    result = parse_policy(block, "README.md")
    assert result.errors == []
    assert len(result.rules) >= 8
