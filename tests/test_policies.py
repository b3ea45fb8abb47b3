"""The pure policy core: canonical hosts, the YAML form with located errors, decisions with reasons."""

from __future__ import annotations

import pytest

from policies.decision import ReasonCode, Subject, Verdict, decide_connect, decide_request
from policies.hosts import HostError, canonical_host, split_authority
from policies.rules import Mode, parse_policy
from policies.snapshot import Snapshot

WHO = Subject("A100", frozenset({"learners"}), "cell-1", "cell", "s1")
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
])
def test_decide_connect(snapshot: Snapshot, host: str, verdict: Verdict, code: ReasonCode, rule: str,
                        mode: Mode) -> None:
    decision = decide_connect(host, WHO, snapshot)
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
    assert decide_request(method, host, "/", WHO, snapshot).allowed is allowed


def test_deny_overrides_allow() -> None:
    rules = parse_policy("rules:\n- id: all\n  allow: ['*.example.org']\n- id: stop\n  deny: [x.example.org]\n",
                         "p").rules
    decision = decide_connect("x.example.org", WHO, Snapshot.build(rules))
    assert not decision.allowed and decision.rule_ids == ("stop",)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("rules:\n  - id: a\n    allow: x.org\n  - id: Bad\n    allow: [y.org]\n", 4, "rule id 'Bad' must be"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    colour: red\n", 4, "unknown key 'colour'"),
    ("rules:\n  - id: a\n    allow: [x.org]\n  - id: a\n    deny: [y.org]\n", 4, "already used on line 2"),
    ("rules:\n  - id: a\n    allow: [x.org]\n    deny: [y.org]\n", 2, "exactly one of allow or deny"),
    ("rules:\n  - id: a\n    allow: ['*.org']\n", 3, "whole top-level domain"),
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
