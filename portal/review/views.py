"""Audit review screens, for security staff only: search, an inmate's timeline, charts, alerts, exports."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from aiohttp import web

from gatehouse.audit.alerts import Rule
from gatehouse.audit.review import Filters
from gatehouse.db.models import StaffRole
from gatehouse.inmates import NUMBER
from portal.access import acting, staff
from portal.i18n import N_, _, ngettext
from portal.keys import KERNEL
from portal.layout import render
from portal.review import charts as draw
from portal.review import services
from portal.review.forms import FORMATS, TAG_CHOICES, SearchForm

routes = web.RouteTableDef()
security = staff(StaffRole.SECURITY)
RULE_LABELS = {Rule.DENIED_BURST: N_("Burst of denied attempts"), Rule.DAILY_USAGE: N_("Daily use over the limit"),
               Rule.BYPASS: N_("Attempt at a known bypass")}
PERIODS = (1, 7, 30)


def _form(request: web.Request) -> SearchForm:
    return SearchForm.parse(request.query, services.zone_of(request.app[KERNEL]))


def _choices() -> dict[str, Any]:
    return {"tag_choices": [(t, t) for t in TAG_CHOICES],
            "decision_choices": [("allow", _("Allowed")), ("deny", _("Denied"))],
            "formats": FORMATS}


@routes.get("/audit", name="audit-search")
@security
async def search(request: web.Request) -> web.Response:
    form = _form(request)
    if form.errors:
        return render(request, "review/search.html", {"form": form, "page": None, **_choices()}, status=400)
    page = await services.search(request.app[KERNEL], form.filters, request.query.get("after", ""),
                                 *acting(request))
    return render(request, "review/search.html", {"form": form, "page": page, "query": form.query(),
                                                   "request_after": request.query.get("after", ""), **_choices()})


@routes.get("/audit/inmates/{number}", name="audit-timeline")
@security
async def timeline(request: web.Request) -> web.Response:
    """Everything one inmate did, newest first, under a heading per day."""
    number = request.match_info["number"].strip().upper()
    if not NUMBER.match(number):
        raise web.HTTPNotFound(text=_("There is no inmate with this number."))
    page = await services.search(request.app[KERNEL], Filters(actor=number), request.query.get("after", ""),
                                 *acting(request), what="timeline")
    days = [(day, list(rows)) for day, rows in groupby(page.rows, key=lambda r: r.day)]
    return render(request, "review/timeline.html", {"number": number, "days": days, "next": page.next})


@routes.get("/audit/charts", name="audit-charts")
@security
async def charts(request: web.Request) -> web.Response:
    form = _form(request)
    days = int(request.query.get("days", "1")) if request.query.get("days", "1") in {"1", "7", "30"} else 1
    if form.errors:
        return render(request, "review/charts.html", {"form": form, "days": days, "periods": PERIODS,
                                                       "svgs": [], **_choices()}, status=400)
    data, _since = await services.charts(request.app[KERNEL], form.filters, days, *acting(request))
    allowed, denied = _("allowed"), _("denied")
    every = {1: 3, 7: 24, 30: 120}[days]
    columns = [draw.Column(label, a, d) for label, a, d in services.labelled(request.app[KERNEL], data.hours, days)]
    total_allowed = sum(c.allowed for c in columns)
    total_denied = sum(c.denied for c in columns)
    svgs = [
        (_("Requests per hour"), draw.stacked_columns(
            "hours", columns, title=_("Requests per hour"), every=every, allowed_label=allowed, denied_label=denied,
            description=_("In the period shown. Allowed: %(allowed)d. Denied: %(denied)d.") % {
                "allowed": total_allowed, "denied": total_denied}),
         [(c.label, c.allowed, c.denied) for c in columns if c.allowed or c.denied]),
        (_("Denials by reason"), draw.horizontal_bars(
            "reasons", [(code, 0, n) for code, n in data.reasons], title=_("Denials by reason"),
            description=_("The reasons the gateway gave most often for a denial."), allowed_label=allowed,
            denied_label=denied), [(code, 0, n) for code, n in data.reasons]),
        (_("Busiest sites"), draw.horizontal_bars(
            "hosts", data.hosts, title=_("Busiest sites"), allowed_label=allowed, denied_label=denied,
            description=_("The sites with the most requests, allowed and denied.")), data.hosts),
    ]
    return render(request, "review/charts.html", {"form": form, "days": days, "periods": PERIODS, "svgs": svgs,
                                                   "background": data.background, "query": form.query(),
                                                   **_choices()})


@routes.get("/audit/alerts", name="audit-alerts")
@security
async def alerts(request: web.Request) -> web.Response:
    rule = request.query.get("rule", "")
    rule = rule if rule in {r.value for r in Rule} else ""
    days = int(request.query.get("days", "7")) if request.query.get("days", "7") in {"1", "7", "30"} else 7
    rows = await services.alert_rows(request.app[KERNEL], days, rule, *acting(request))
    return render(request, "review/alerts.html", {
        "rows": rows, "rule": rule, "days": days,
        "period_choices": [(str(n), ngettext("Last %(num)d day", "Last %(num)d days", n) % {"num": n})
                           for n in PERIODS],
        "rule_choices": [(r.value, _(label)) for r, label in RULE_LABELS.items()],
        "rule_label": {r.value: _(label) for r, label in RULE_LABELS.items()}})


@routes.get("/audit/export", name="audit-export")
@security
async def export(request: web.Request) -> web.StreamResponse:
    """The records matching the search, as a file in the chosen format; the export is recorded first."""
    fmt = request.query.get("format", "")
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(text=_("Choose one of the formats: %(formats)s.") % {"formats": ", ".join(FORMATS)})
    form = _form(request)
    if form.errors:
        raise web.HTTPBadRequest(text="; ".join(form.errors.values()))
    data, count = await services.export(request.app[KERNEL], form.filters, fmt, *acting(request))
    suffix = {"jsonl": "jsonl", "csv": "csv", "squid": "log", "ecs": "ecs.jsonl"}[fmt]
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "text/plain; charset=utf-8",
        "Content-Disposition": f'attachment; filename="gatehouse-audit.{suffix}"',
        "X-Record-Count": str(count)})
    await response.prepare(request)
    with data:
        while chunk := data.read(256 * 1024):
            await response.write(chunk)
    await response.write_eof()
    return response

