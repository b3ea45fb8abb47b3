"""Spending an inmate's minutes: one check-and-mark per inmate, category and minute, remembered by this node.

The first request of a minute asks the store (one Redis script call); every later request of the same minute,
on this node, is answered from memory, so the cost per request is at most one round trip and usually none. A
refusal is remembered for the rest of its minute too (a page retrying cannot flood Redis); a new policy
forgets everything, since budgets may have changed. The store failing refuses (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from gatehouse.quota import QuotaStore, QuotaUnavailable, local_minute
from policies.decision import Decision, Reason, ReasonCode, Subject, Verdict, deny
from policies.snapshot import Snapshot

LAST_MAX = 100_000


class QuotaGate:
    def __init__(self, store: QuotaStore, policy: Callable[[], Snapshot]) -> None:
        self._store = store
        self._policy = policy
        self._seen: dict[tuple[str, str], tuple[date, int, Decision | None]] = {}
        self._last: dict[tuple[str, str], str] = {}
        self._version = ""
        self.asked = 0
        """Calls that reached the store (the benchmark and tests read it)."""

    async def spend(self, who: Subject, category: str, now: datetime) -> Decision | None:
        """None when this minute of `category` may be used (and is now counted); otherwise the refusal."""
        policy = self._policy()
        if policy.version != self._version:
            self._seen.clear()
            self._version = policy.version
        minute = local_minute(now, policy.timezone)
        slot = (who.inmate, category)
        known = self._seen.get(slot)
        if known is not None and known[0] == minute.day and known[1] == minute.index:
            return known[2]
        budget = policy.budgets.budget(who.inmate, who.groups, category)
        self.asked += 1
        try:
            mark = await self._store.check_and_mark(who.inmate, category, minute.day, minute.index, budget)
        except QuotaUnavailable as exc:
            return deny(ReasonCode.QUOTA_UNAVAILABLE, f"{exc}; access is paused until it answers")
        used_up = f"the {budget} minutes of {category} for today are used up" if budget else \
            f"there are no minutes of {category} today"
        refusal = None if mark.allowed else Decision(
            Verdict.DENY, (Reason(ReasonCode.QUOTA_EXHAUSTED, used_up),),
            quota=category, opens_at=datetime.combine(minute.day + timedelta(days=1), datetime.min.time()))
        if self._version == policy.version:  # an answer for budgets that changed meanwhile is not kept
            self._seen[slot] = (minute.day, minute.index, refusal)
        return refusal

    def note(self, inmate: str, host: str, category: str) -> None:
        """The category of the last request allowed to `host`: what the bytes of its open tunnel spend."""
        if len(self._last) >= LAST_MAX:
            self._last.clear()
        self._last[(inmate, host)] = category

    def last_category(self, inmate: str, host: str) -> str:
        return self._last.get((inmate, host), "")

    def forget(self, inmate: str = "") -> None:
        """Ask the store again (after a grant or budget change), for one inmate or everyone."""
        if not inmate:
            self._seen.clear()
            return
        for slot in [s for s in self._seen if s[0] == inmate]:
            del self._seen[slot]
