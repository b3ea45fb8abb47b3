"""Decisions with their reasons: the gateway enforces them, the portal and CLI explain them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from policies.hosts import HostError, canonical_host
from policies.rules import Effect, Mode, Rule

__all__ = ["Decision", "Mode", "Reason", "ReasonCode", "Subject", "Verdict", "decide_connect",
           "decide_request", "deny"]
from policies.snapshot import Snapshot


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ReasonCode(enum.StrEnum):
    UNKNOWN_TERMINAL = "unknown-terminal"
    NO_SESSION = "no-session"
    INMATE_NOT_ACTIVE = "inmate-not-active"
    BAD_HOST = "bad-host"
    RULE_DENY = "rule-deny"
    RULE_ALLOW = "rule-allow"
    NO_MATCH = "no-match"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    GATEWAY_ERROR = "gateway-error"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    detail: str
    rule_id: str = ""

    def __str__(self) -> str:
        return f"{self.code}[{self.rule_id}]: {self.detail}" if self.rule_id else f"{self.code}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking: the inmate bound to the terminal the request came from."""

    inmate: str
    groups: frozenset[str]
    terminal: str
    terminal_kind: str
    session: str


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    mode: Mode = Mode.INSPECT

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def explanation(self) -> str:
        return "; ".join(str(r) for r in self.reasons)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.reasons if r.rule_id)


def deny(code: ReasonCode, detail: str, rule_id: str = "") -> Decision:
    return Decision(Verdict.DENY, (Reason(code, detail, rule_id),))


def _host_rules(host: str, policy: Snapshot) -> tuple[str, tuple[Rule, ...]] | Decision:
    try:
        canonical = canonical_host(host)
    except HostError as exc:
        return deny(ReasonCode.BAD_HOST, str(exc))
    return canonical, policy.matching(canonical)


def _decide_host(host: str, policy: Snapshot) -> tuple[Decision, tuple[Rule, ...]]:
    found = _host_rules(host, policy)
    if isinstance(found, Decision):
        return found, ()
    canonical, rules = found
    denies = [r for r in rules if r.effect is Effect.DENY]
    if denies:
        return Decision(Verdict.DENY, tuple(
            Reason(ReasonCode.RULE_DENY, f"{canonical} is denied", r.id) for r in denies)), ()
    allows = tuple(r for r in rules if r.effect is Effect.ALLOW)
    if not allows:
        return deny(ReasonCode.NO_MATCH, f"no rule allows {canonical}"), ()
    mode = Mode.PASSTHROUGH if all(r.mode is Mode.PASSTHROUGH for r in allows) else Mode.INSPECT
    return Decision(Verdict.ALLOW, tuple(
        Reason(ReasonCode.RULE_ALLOW, f"{canonical} is allowed", r.id) for r in allows), mode), allows


def decide_connect(host: str, who: Subject, policy: Snapshot) -> Decision:
    """Decide a tunnel to `host`: deny rules win, no match is deny, passthrough only if every allow says so."""
    del who  # scopes (groups, inmates, courses) come with the full policy model
    return _decide_host(host, policy)[0]


def decide_request(method: str, host: str, path: str, who: Subject, policy: Snapshot) -> Decision:
    """Decide one inspected request: the host must be allowed and some allowing rule must permit the method."""
    del who, path  # path rules and scopes come with the full policy model
    at_host, allows = _decide_host(host, policy)
    if not at_host.allowed:
        return at_host
    method = method.upper()
    permitting = tuple(
        Reason(ReasonCode.RULE_ALLOW, f"{method} on {host} is allowed", r.id) for r in allows if method in r.methods)
    if not permitting:
        return deny(ReasonCode.METHOD_NOT_ALLOWED, f"{method} is not allowed on {host}",
                    ",".join(r.id for r in allows))
    return Decision(Verdict.ALLOW, permitting, Mode.INSPECT)
