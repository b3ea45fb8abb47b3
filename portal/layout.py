"""What every page's frame shows: language, navigation by role, the CSRF token, the language switch.

Templates receive these values ready to print; which links a role sees is decided here, not in templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from gatehouse.db.models import StaffRole
from portal import i18n
from portal.i18n import N_, _
from portal.keys import KERNEL, VIEWER
from portal.security import csrf_token


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    label: str
    current: bool


# (path, label, roles that see it; empty = any staff member). Labels are translated when the page renders.
STAFF_LINKS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/staff", N_("Overview"), frozenset()),
    ("/admin/staff", N_("Staff accounts"), frozenset({StaffRole.ADMIN})),
    ("/admin/terminals", N_("Terminals"), frozenset({StaffRole.ADMIN})),
    ("/admin/inmates", N_("Inmates"), frozenset({StaffRole.ADMIN})),
    ("/admin/facility", N_("Facility and units"), frozenset({StaffRole.ADMIN})),
    ("/audit", N_("Audit log"), frozenset({StaffRole.SECURITY})),
    ("/audit/charts", N_("Charts"), frozenset({StaffRole.SECURITY})),
    ("/audit/alerts", N_("Alerts"), frozenset({StaffRole.SECURITY})),
    ("/control", N_("Live control"), frozenset({StaffRole.SECURITY})),
    ("/teach", N_("Courses"), frozenset({StaffRole.EDUCATION})),
    ("/teach/requests", N_("Requests to join"), frozenset({StaffRole.EDUCATION})),
    ("/curation", N_("Site requests"), frozenset({StaffRole.EDUCATION, StaffRole.SECURITY})),
    ("/curation/proposals", N_("Proposals"), frozenset({StaffRole.EDUCATION, StaffRole.SECURITY})),
    ("/curation/rules", N_("Rules"), frozenset({StaffRole.EDUCATION, StaffRole.SECURITY})),
    ("/library-admin", N_("Libraries"), frozenset({StaffRole.EDUCATION})),
    ("/resources-admin", N_("Directory of services"), frozenset({StaffRole.EDUCATION})),
    ("/resources-admin/jobs", N_("Job offers"), frozenset({StaffRole.EDUCATION})),
    ("/resources-admin/plans", N_("Release plans"), frozenset({StaffRole.EDUCATION})),
    ("/staff/account", N_("My account"), frozenset()),
)
INMATE_LINKS: tuple[tuple[str, str], ...] = (("/home", N_("Home")), ("/learning", N_("My learning")),
                                             ("/courses", N_("Courses")), ("/library", N_("Library")),
                                             ("/resources", N_("Services for release")), ("/jobs", N_("Jobs")),
                                             ("/plan", N_("My release plan")), ("/requests", N_("Site requests")))


def navigation(request: web.Request) -> list[Link]:
    viewer = request.get(VIEWER)
    if viewer is None:
        return []
    if viewer.kind == "staff":
        links = [(href, label) for href, label, roles in STAFF_LINKS if not roles or viewer.has(*roles)]
    elif viewer.kind == "inmate":
        links = list(INMATE_LINKS)
    else:
        return []
    # The page is under the longest link it starts with: /audit/charts is Charts, not Audit log.
    path = request.path
    under = [href for href, _label in links if path == href or path.startswith(href + "/")]
    current = max(under, key=len, default="")
    return [Link(href, _(label), href == current) for href, label in links]


def facility_zone(request: web.Request) -> ZoneInfo:
    return ZoneInfo(request.app[KERNEL].settings["facility.timezone"])


def facility_today(request: web.Request) -> date:
    """The facility's day now: what closing days, due dates and "checked 3 weeks ago" count from."""
    return datetime.now(facility_zone(request)).date()


def safe_next(value: str, default: str = "/") -> str:
    """A local path to go back to; anything else (another site, `//host`) becomes the default."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 512:
        return value
    return default


def _takes_get(app: web.Application, path: str) -> bool:
    for resource in app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        found = pattern.fullmatch(path) is not None if pattern is not None else info.get("path") == path
        if found and any(route.method in ("GET", "*") for route in resource):
            return True
    return False


def here(request: web.Request) -> str:
    """Where the language switch leads back to: this page, or for the answer to a form sent to an address that
    takes only POST (`/staff/account/password`), the nearest page above it (`/staff/account`)."""
    if request.method in ("GET", "HEAD"):
        return request.path_qs
    path = request.path.rstrip("/")
    while path and not _takes_get(request.app, path):
        path = path.rpartition("/")[0]
    return path or "/"


def page_context(request: web.Request) -> dict[str, Any]:
    viewer = request.get(VIEWER)
    return {
        "lang": i18n.current(),
        "languages": [(code, name) for code, name in i18n.NAMES.items()],
        "nav": navigation(request),
        "viewer_kind": viewer.kind if viewer is not None else "anonymous",
        "viewer_name": (viewer.staff.display_name if viewer is not None and viewer.staff is not None else
                        viewer.inmate.inmate_name if viewer is not None and viewer.inmate is not None else ""),
        "csrf_token": csrf_token(request),
        "here": here(request),
        "facility": request.app[KERNEL].settings["facility.name"],
    }


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           status: int = 200) -> web.Response:
    """A page in the frame every page shares; the screen's own context wins over the frame's."""
    return aiohttp_jinja2.render_template(template, request, {**page_context(request), **(context or {})},
                                          status=status)
