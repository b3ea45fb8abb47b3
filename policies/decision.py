"""Decisions with their reasons: the gateway enforces them, the portal and CLI explain them.

Precedence: a deny rule that applies wins; otherwise an allow rule that applies allows; otherwise deny.
Each decision carries the reasons that produced it and, for `explain`, the rules that were considered and
the condition each one failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from policies.hosts import HostError, canonical_host, is_ip_literal
from policies.paths import canonical_path, path_has_prefix
from policies.rules import Effect, Mode, Rule
from policies.snapshot import Snapshot
from policies.windows import next_start

__all__ = ["Decision", "Mode", "Reason", "ReasonCode", "RequestFacts", "Subject", "UrlDecision", "Verdict",
           "decide_connect", "decide_request", "decide_url", "deny"]


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ReasonCode(enum.StrEnum):
    UNKNOWN_TERMINAL = "unknown-terminal"
    NO_SESSION = "no-session"
    INMATE_NOT_ACTIVE = "inmate-not-active"
    BAD_HOST = "bad-host"
    BAD_REQUEST = "bad-request"
    BAD_PORT = "bad-port"
    IP_LITERAL = "ip-literal"
    RULE_DENY = "rule-deny"
    RULE_ALLOW = "rule-allow"
    NO_MATCH = "no-match"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    PATH_NOT_ALLOWED = "path-not-allowed"
    WEBSOCKET_NOT_ALLOWED = "websocket-not-allowed"
    NOT_IN_SCOPE = "not-in-scope"
    OUTSIDE_WINDOW = "outside-window"
    NOT_VALID_NOW = "not-valid-now"
    TERMINAL_KIND = "terminal-kind"
    TERMINAL_CLOSED = "terminal-closed"
    CONTROL_LOST = "control-lost"
    TERMINAL_OFF = "terminal-off"
    LOCKDOWN = "lockdown"
    QUOTA_EXHAUSTED = "quota-exhausted"
    QUOTA_UNAVAILABLE = "quota-unavailable"
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
    courses: frozenset[str] = frozenset()
    in_visit: bool = False


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What is asked: for a CONNECT, method is CONNECT and path is empty."""

    method: str
    host: str
    port: int
    path: str = ""
    websocket: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    mode: Mode = Mode.INSPECT
    trace: tuple[Reason, ...] = field(default=(), compare=False)
    quota: str = ""
    opens_at: datetime | None = None
    """For a terminal outside its opening hours: when it opens next (facility wall-clock time)."""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def explanation(self) -> str:
        return "; ".join(str(r) for r in self.reasons)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.reasons if r.rule_id)


def deny(code: ReasonCode, detail: str, rule_id: str = "", trace: tuple[Reason, ...] = ()) -> Decision:
    return Decision(Verdict.DENY, (Reason(code, detail, rule_id),), trace=trace)


def _condition_failure(rule: Rule, who: Subject, local: datetime | None) -> Reason | None:
    """Why this rule does not apply to this person here and now, or None when it applies."""
    if (rule.groups or rule.inmates or rule.courses) and who.inmate not in rule.inmates \
            and not (rule.groups & who.groups) and not (rule.courses & who.courses):
        return Reason(ReasonCode.NOT_IN_SCOPE, f"{who.inmate} is not in the rule's groups, inmates or courses",
                      rule.id)
    if rule.visit and not who.in_visit:
        return Reason(ReasonCode.NOT_IN_SCOPE, "only during a video visit", rule.id)
    if rule.terminals and who.terminal_kind not in rule.terminals:
        kinds = " or ".join(sorted(rule.terminals))
        return Reason(ReasonCode.TERMINAL_KIND, f"only on {kinds} terminals, not {who.terminal_kind or 'this one'}",
                      rule.id)
    if local is None:
        return None
    if rule.valid_from and local < rule.valid_from:
        return Reason(ReasonCode.NOT_VALID_NOW, f"valid from {rule.valid_from:%Y-%m-%d %H:%M}", rule.id)
    if rule.valid_until and local >= rule.valid_until:
        return Reason(ReasonCode.NOT_VALID_NOW, f"expired at {rule.valid_until:%Y-%m-%d %H:%M}", rule.id)
    if rule.windows and not any(w.contains(local) for w in rule.windows):
        return Reason(ReasonCode.OUTSIDE_WINDOW,
                      "outside " + ", ".join(w.text for w in rule.windows), rule.id)
    return None


def _closed(who: Subject, policy: Snapshot, now: datetime) -> Decision | None:
    """Outside the opening hours of this kind of terminal nothing is allowed, whatever the rules say."""
    if not policy.hours.restricts:
        return None
    local = policy.local(now)
    if policy.hours.is_open(who.terminal_kind, local):
        return None
    opens = policy.hours.next_opening(who.terminal_kind, local)
    when = f"opens {opens:%a %Y-%m-%d %H:%M}" if opens else "closed for the next days"
    kind = who.terminal_kind or "this"
    return Decision(Verdict.DENY, (Reason(ReasonCode.TERMINAL_CLOSED, f"{kind} terminals are closed now; {when}"),),
                    opens_at=opens)


def _applicable(facts: RequestFacts, who: Subject, policy: Snapshot, now: datetime
                ) -> tuple[str, list[Rule], list[Reason]] | Decision:
    """The canonical host, the rules that apply to it for this subject now, and why others do not."""
    if (closed := _closed(who, policy, now)) is not None:
        return closed
    try:
        host = canonical_host(facts.host)
    except HostError as exc:
        return deny(ReasonCode.BAD_HOST, str(exc))
    local: datetime | None = None
    applying: list[Rule] = []
    trace: list[Reason] = []
    for rule in policy.matching(host):
        if local is None and (rule.windows or rule.valid_from or rule.valid_until):
            local = policy.local(now)  # only rules with time conditions need the facility's wall clock
        if facts.port not in rule.ports:
            trace.append(Reason(ReasonCode.BAD_PORT, f"port {facts.port} is not in the rule's ports", rule.id))
        elif (failure := _condition_failure(rule, who, local)) is not None:
            trace.append(failure)
        else:
            applying.append(rule)
    return host, applying, trace


def _window_opens(host: str, trace: list[Reason], policy: Snapshot, now: datetime) -> datetime | None:
    """When a denial is only a matter of time (the rules are outside their windows), when the first opens."""
    if trace[0].code is not ReasonCode.OUTSIDE_WINDOW:
        return None
    waiting = {r.rule_id for r in trace if r.code is ReasonCode.OUTSIDE_WINDOW}
    windows = [w for rule in policy.matching(host) if rule.id in waiting for w in rule.windows]
    return next_start(windows, policy.local(now))


def _no_allow(host: str, facts: RequestFacts, trace: list[Reason], policy: Snapshot, now: datetime) -> Decision:
    if trace:
        first = trace[0]
        return Decision(Verdict.DENY, (first,), trace=tuple(trace), opens_at=_window_opens(host, trace, policy, now))
    if is_ip_literal(host):
        return deny(ReasonCode.IP_LITERAL, f"no rule names the address {host}")
    return deny(ReasonCode.NO_MATCH, f"no rule allows {host}")


def decide_connect(facts: RequestFacts, who: Subject, policy: Snapshot, *, now: datetime) -> Decision:
    """Decide a tunnel: a host-wide deny wins, no applying allow is deny; passthrough only if every allow says so."""
    found = _applicable(facts, who, policy, now)
    if isinstance(found, Decision):
        return found
    host, rules, trace = found
    denies = [r for r in rules if r.effect is Effect.DENY and not r.paths and r.methods >= {"GET", "HEAD"}]
    if denies:
        return Decision(Verdict.DENY, tuple(Reason(ReasonCode.RULE_DENY, f"{host} is denied", r.id) for r in denies),
                        trace=tuple(trace))
    allows = [r for r in rules if r.effect is Effect.ALLOW]
    if not allows:
        return _no_allow(host, facts, trace, policy, now)
    narrowing = any(r.effect is Effect.DENY for r in rules)
    passthrough = not narrowing and all(r.mode is Mode.PASSTHROUGH for r in allows)
    return Decision(Verdict.ALLOW, tuple(Reason(ReasonCode.RULE_ALLOW, f"{host} is allowed", r.id) for r in allows),
                    Mode.PASSTHROUGH if passthrough else Mode.INSPECT, tuple(trace), allows[0].quota)


def decide_request(facts: RequestFacts, who: Subject, policy: Snapshot, *, now: datetime) -> Decision:
    """Decide one inspected request on method, path and WebSocket, after the host's rules apply."""
    found = _applicable(facts, who, policy, now)
    if isinstance(found, Decision):
        return found
    host, rules, trace = found
    if not rules:
        return _no_allow(host, facts, trace, policy, now)
    method = facts.method.upper()
    path = canonical_path(facts.path) if any(r.paths for r in rules) else facts.path
    denies = [r for r in rules if r.effect is Effect.DENY and method in r.methods
              and (not r.paths or any(path_has_prefix(path, p) for p in r.paths))]
    if denies:
        return Decision(Verdict.DENY, tuple(
            Reason(ReasonCode.RULE_DENY, f"{method} {host}{path} is denied", r.id) for r in denies), trace=tuple(trace))
    allows = [r for r in rules if r.effect is Effect.ALLOW]
    if not allows:
        return _no_allow(host, facts, trace, policy, now)
    failures: list[Reason] = []
    for rule in allows:
        if rule.paths and not any(path_has_prefix(path, p) for p in rule.paths):
            failures.append(Reason(ReasonCode.PATH_NOT_ALLOWED, f"{path} is outside {', '.join(rule.paths)}", rule.id))
        elif method not in rule.methods:
            failures.append(Reason(ReasonCode.METHOD_NOT_ALLOWED, f"{method} is not allowed on {host}", rule.id))
        elif facts.websocket and not rule.websocket:
            failures.append(Reason(ReasonCode.WEBSOCKET_NOT_ALLOWED, f"WebSocket is not allowed on {host}", rule.id))
        else:
            return Decision(Verdict.ALLOW, (Reason(ReasonCode.RULE_ALLOW, f"{method} {host}{path} is allowed",
                                                   rule.id),), Mode.INSPECT, tuple(trace + failures), rule.quota)
    return Decision(Verdict.DENY, (failures[0],), trace=tuple(trace + failures))


@dataclass(frozen=True, slots=True)
class UrlDecision:
    """A URL as a browser would fetch it: the tunnel first for https, then the request if it is inspected."""

    tunnel: Decision | None
    request: Decision | None

    @property
    def final(self) -> Decision:
        if self.request is not None:
            return self.request
        assert self.tunnel is not None
        return self.tunnel


def decide_url(scheme: str, facts: RequestFacts, who: Subject, policy: Snapshot, *, now: datetime) -> UrlDecision:
    tunnel = None
    if scheme == "https":
        tunnel = decide_connect(RequestFacts("CONNECT", facts.host, facts.port), who, policy, now=now)
        if not tunnel.allowed or tunnel.mode is Mode.PASSTHROUGH:
            return UrlDecision(tunnel, None)
    return UrlDecision(tunnel, decide_request(facts, who, policy, now=now))
