"""The sites an inmate may open now, for the home page: each allow rule's hosts, asked of the policy itself.

A host is listed only if the gateway would let this inmate's tunnel to it through now (the same decision, so
deny rules, opening hours, windows, validity, terminal kinds and scope all count). A `*.domain` pattern has no
page to link to; it is listed as text when a name under it would be allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from policies.decision import RequestFacts, Subject, decide_connect
from policies.rules import Effect, HostPattern, Rule
from policies.snapshot import Snapshot

PROBE = "www"
"""The label put before a `*.domain` pattern to ask whether names under it are open (the pattern itself is not
a host the gateway is ever asked about)."""


@dataclass(frozen=True, slots=True)
class Site:
    shown: str
    """`jobs.example` or `*.example.org`."""
    url: str
    """Where the link goes; empty for a `*.domain` pattern or a host open only on other ports than 80 and 443,
    which are shown as text."""
    description: str
    category: str
    pattern: bool = False
    """`*.domain`: every name below the domain."""
    courses: tuple[str, ...] = ()
    """The courses whose enrolment opens it (the rule's `courses:` scope), if that is why it is open."""


def _url(rule: Rule, pattern: HostPattern) -> str:
    if pattern.wildcard:
        return ""
    scheme = "https" if 443 in rule.ports else "http" if 80 in rule.ports else ""
    if not scheme:
        return ""  # only odd ports: nothing a kiosk browser opens by a plain link
    return f"{scheme}://{pattern.host}{rule.paths[0] if rule.paths else '/'}"


def open_now(policy: Snapshot, who: Subject, now: datetime) -> list[Site]:
    """Every host of an allow rule that this subject's tunnel would be allowed to now, once, under the first rule
    the decision names (its description and quota category), in the order of the rules."""
    seen: set[str] = set()
    sites: list[Site] = []
    by_id = {rule.id: rule for rule in policy.rules}
    for rule in policy.rules:
        if rule.effect is not Effect.ALLOW:
            continue
        for pattern in rule.hosts:
            shown = str(pattern)
            if shown in seen:
                continue
            host = f"{PROBE}.{pattern.host}" if pattern.wildcard else pattern.host
            port = 443 if 443 in rule.ports else min(rule.ports)
            decision = decide_connect(RequestFacts("CONNECT", host, port), who, policy, now=now)
            if not decision.allowed:
                continue
            first = by_id.get(decision.rule_ids[0], rule) if decision.rule_ids else rule
            if pattern.wildcard and rule.id not in decision.rule_ids:
                continue  # the probe was allowed by another rule's exact name, not by this pattern
            seen.add(shown)
            owner = rule if pattern.wildcard else first
            sites.append(Site(shown, _url(owner, pattern), owner.description, owner.quota, pattern.wildcard,
                              tuple(sorted(owner.courses))))
    return sites


def by_category(sites: list[Site]) -> list[tuple[str, list[Site]]]:
    """Sites under their quota category (the minutes they draw on), categories in name order."""
    groups: dict[str, list[Site]] = {}
    for site in sites:
        groups.setdefault(site.category, []).append(site)
    return sorted(groups.items())
