"""The review search form: times typed in the facility's zone, everything checked and kept as typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from gatehouse.audit import Tag
from gatehouse.audit.review import Filters
from portal.i18n import _

FORMATS = ("jsonl", "csv", "squid", "ecs")
DECISIONS = ("allow", "deny")
TAG_CHOICES = sorted({t.value.rsplit(":", 1)[0] for t in Tag} | {t.value for t in Tag})
"""Whole tags and their `plane:subject` families (a family matches every action under it)."""


def _when(text: str, zone: ZoneInfo) -> datetime:
    """`2026-11-24T08:30` (what a datetime-local field sends) in the facility's zone, as naive UTC."""
    local = datetime.strptime(text.strip().replace(" ", "T")[:16], "%Y-%m-%dT%H:%M")
    return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


@dataclass(slots=True)
class SearchForm:
    values: dict[str, str] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, str], zone: ZoneInfo) -> SearchForm:
        names = ("since", "until", "actor", "terminal", "host", "tag", "decision")
        form = cls({n: query.get(n, "").strip()[:255] for n in names})
        v, times = form.values, {}
        for name in ("since", "until"):
            if v[name]:
                try:
                    times[name] = _when(v[name], zone)
                except ValueError:
                    form.errors[name] = _("Enter a date and time like 2026-11-24 08:30.")
        if times.get("since") and times.get("until") and times["since"] >= times["until"]:
            form.errors["until"] = _("The end must be after the start.")
        if v["tag"] and v["tag"] not in TAG_CHOICES:
            form.errors["tag"] = _("Choose a kind of record from the list.")
        if v["decision"] and v["decision"] not in DECISIONS:
            form.errors["decision"] = _("Choose a decision from the list.")
        if not form.errors:
            form.filters = Filters(times.get("since"), times.get("until"), v["actor"], v["terminal"], v["host"],
                                   v["tag"], v["decision"])
        return form

    def query(self) -> str:
        """The filters as a query string, for the next page and the export links."""
        return urlencode({k: val for k, val in self.values.items() if val})
