"""`policy explain`: the decision for one inmate, URL, terminal and time, with every rule's part in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.db.models import Terminal
from gatehouse.errors import InvalidInput, NotFound
from gatehouse.inmates import find_inmate
from policies.decision import Decision, RequestFacts, Subject, UrlDecision, decide_url
from policies.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Explanation:
    subject: Subject
    facts: RequestFacts
    local: datetime
    decided: UrlDecision

    @property
    def final(self) -> Decision:
        return self.decided.final

    def lines(self) -> list[str]:
        final = self.final
        out = [
            f"inmate {self.subject.inmate} (groups: {', '.join(sorted(self.subject.groups)) or 'none'}) "
            f"at {self.subject.terminal or 'no terminal'} ({self.subject.terminal_kind or 'any kind'}), "
            f"{self.local:%a %Y-%m-%d %H:%M} facility time",
            f"{self.facts.method} {self.facts.host}:{self.facts.port}{self.facts.path}",
            f"decision: {final.verdict.upper()}" + (f" ({final.mode})" if final.allowed else ""),
        ]
        for step, decision in (("tunnel", self.decided.tunnel), ("request", self.decided.request)):
            if decision is None:
                continue
            out.append(f"{step}: {decision.verdict}")
            out += [f"  because {reason}" for reason in decision.reasons]
            out += [f"  considered {reason}" for reason in decision.trace if reason not in decision.reasons]
        return out


def parse_url(url: str, method: str) -> tuple[str, RequestFacts]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"--url {url!r} must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidInput(f"--url {url!r}: {exc}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, RequestFacts(method.upper(), parts.hostname, port, path)


def explain(session: Session, policy: Snapshot, *, inmate: str, url: str, terminal: str | None, at: datetime,
            method: str = "GET") -> Explanation:
    person = find_inmate(session, inmate)
    kind = name = ""
    if terminal:
        row = session.scalar(select(Terminal).where(Terminal.name == terminal))
        if row is None:
            raise NotFound(f"no terminal named {terminal!r}")
        kind, name = row.kind, row.name
    who = Subject(person.number, frozenset(person.group_names), name, kind, "")
    scheme, facts = parse_url(url, method)
    if at.tzinfo is None:
        at = at.replace(tzinfo=policy.timezone if isinstance(policy.timezone, ZoneInfo) else None)
    return Explanation(who, facts, policy.local(at), decide_url(scheme, facts, who, policy, now=at))
