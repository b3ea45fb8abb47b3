"""The portal's app factory: middlewares, templates with gettext, every domain's routes, each with its rule."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gatehouse.bus import ControlEvent, GrantChanged, PolicyChanged
from gatehouse.ca import ca_cert_file
from gatehouse.control import follow_events
from gatehouse.curation import drift
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.library import zim
from gatehouse.policy_store import follow_files
from gatehouse.resources import links
from gatehouse.staff import StaffSessionPolicy
from portal import i18n
from portal.access import check_routes, public, session_middleware
from portal.admin.views import routes as admin_routes
from portal.auth.services import forget_sessions
from portal.auth.views import routes as auth_routes
from portal.control.views import routes as control_routes
from portal.curation.inmate import routes as curation_inmate_routes
from portal.curation.staff import routes as curation_staff_routes
from portal.errors import errors_middleware
from portal.keys import KERNEL, STAFF_POLICY
from portal.learning import services as learning
from portal.learning.teaching import routes as teaching_routes
from portal.learning.views import routes as learning_routes
from portal.library.staff import routes as library_staff_routes
from portal.library.views import routes as library_routes
from portal.resources.jobs import routes as jobs_routes
from portal.resources.plan import routes as plan_routes
from portal.resources.staff import routes as resources_staff_routes
from portal.resources.views import routes as resources_routes
from portal.review import services as review
from portal.review.views import routes as review_routes
from portal.security import audit_middleware, csrf_middleware, headers_middleware
from portal.staff.views import routes as staff_routes
from portal.tasks import repeat
from portal.visits import mailing
from portal.visits.calls import Calls, use_calls
from portal.visits.join import routes as visits_join_routes
from portal.visits.verify import routes as visitors_verify_routes

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
EVENTS_POLL_S = 0.5
FILES_POLL_S = 2.0
DOMAINS = ("auth", "staff", "admin", "review", "control", "learning", "curation", "library", "resources", "visits")


@public
async def ca_certificate(request: web.Request) -> web.FileResponse:
    """The facility CA for terminals to trust, so inspected sites open without warnings."""
    path = ca_cert_file(request.app[KERNEL].settings.ca_dir)
    if not path.exists():
        raise web.HTTPNotFound(text="No facility CA yet; run `gatehouse init`.")
    return web.FileResponse(path, headers={
        "Content-Type": "application/x-pem-file",
        "Content-Disposition": 'attachment; filename="gatehouse-ca.pem"'})


@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def rounds(app: web.Application) -> AsyncIterator[None]:
    """What the portal does by itself: rules over the audit log every `audit.alert_scan_seconds`, and enrolments
    whose last day passed marked ended every minute (the gateway closed their sites at that date already), and
    the pages of curated rules looked at again when due (`curation.recheck_hours`; asked every few minutes), and
    the directory's websites visited when due (`resources.check_links_hours`; first asked minutes after start)."""
    kernel, stop = app[KERNEL], asyncio.Event()
    tasks = [asyncio.create_task(review.scan_forever(kernel, stop)),
             asyncio.create_task(repeat(stop, learning.SWEEP_SECONDS, lambda: learning.sweep_ended(kernel),
                                        "learning: ending enrolments past their last day")),
             asyncio.create_task(repeat(stop, drift.ROUND_SECONDS, lambda: drift.recheck_due(kernel, utcnow()),
                                        "curation: the second look at approved pages")),
             asyncio.create_task(repeat(stop, links.ROUND_SECONDS, lambda: links.check_due(kernel, utcnow()),
                                        "resources: the directory's link check", first_after=links.ROUND_SECONDS)),
             asyncio.create_task(repeat(stop, mailing.ROUND_SECONDS, lambda: mailing.deliver_due(kernel, utcnow()),
                                        "visits: sending mail"))]
    yield
    stop.set()
    await asyncio.gather(*tasks)


async def following_policy(app: web.Application) -> AsyncIterator[None]:
    """A portal with no gateway in its process keeps its policy current itself (open sites on the home page,
    hours, budgets): on `PolicyChanged` or `GrantChanged` heard on the bus or read from `control_events` (written
    by any process; read every half second, so Redis is not needed), and when a policy file changes.

    Only there: beside a gateway the gateway reloads, records the change and cuts the tunnels it no longer allows;
    had the portal reloaded first, the gateway would see no change and cut nothing. Reloads run one at a time, so
    an older read never replaces a newer one."""
    kernel = app[KERNEL]
    one_at_a_time = asyncio.Lock()

    async def reload() -> None:
        async with one_at_a_time:
            try:
                await asyncio.to_thread(kernel.policies.load)  # a broken file keeps the policy in force
            except SQLAlchemyError as exc:
                log.warning("policy: cannot read the rules in the database (%s); the policy in force stays", exc)

    async def heard(event: ControlEvent) -> None:
        if isinstance(event, PolicyChanged | GrantChanged):
            await reload()

    async def back(healthy: bool) -> None:
        if healthy:  # what changed while the bus was away
            await reload()

    kernel.bus.subscribe(heard)
    kernel.bus.on_health(back)
    tasks = [asyncio.create_task(follow_events(kernel.factory, heard, EVENTS_POLL_S), name="policy-events"),
             asyncio.create_task(follow_files(kernel.policies.folder, reload, FILES_POLL_S), name="policy-files")]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def forgetting_sessions(app: web.Application) -> None:
    """Whatever the control bus carries (a session ended, a suspension, a grant) may change what an inmate's page
    shows: the sessions this portal reuses between pages are looked up again."""
    async def heard(event: ControlEvent) -> None:
        forget_sessions()

    app[KERNEL].bus.subscribe(heard)


def templates() -> jinja2.BaseLoader:
    """Shared layout and partials in templates/, each domain's screens in its own templates/<domain>/."""
    return jinja2.FileSystemLoader([HERE / "templates"] + [HERE / d / "templates" for d in DOMAINS])


def create_app(kernel: Kernel, *, alone: bool = False, calls: Calls | None = None) -> web.Application:
    """`alone`: no gateway runs in this process, so the portal follows policy changes itself. `calls`: the video
    visits' hub, shared with the visitors' listener when both run in this process."""
    app = web.Application(
        middlewares=[headers_middleware, audit_middleware, errors_middleware, session_middleware, csrf_middleware],
        client_max_size=8 * 1024 * 1024)
    app[KERNEL] = kernel
    settings = kernel.settings
    zim.use_cache(settings["library.cache_mb"])
    app[STAFF_POLICY] = StaffSessionPolicy(timedelta(minutes=settings["staff.idle_minutes"]),
                                           timedelta(hours=settings["staff.max_hours"]))
    env = aiohttp_jinja2.setup(app, loader=templates(), autoescape=True, undefined=jinja2.StrictUndefined,
                               extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["portal_name"] = "Gatehouse"
    app.add_routes(auth_routes)
    app.add_routes(staff_routes)
    app.add_routes(admin_routes)
    app.add_routes(review_routes)
    app.add_routes(control_routes)
    app.add_routes(learning_routes)
    app.add_routes(teaching_routes)
    app.add_routes(curation_inmate_routes)
    app.add_routes(curation_staff_routes)
    app.add_routes(library_staff_routes)
    app.add_routes(library_routes)
    app.add_routes(resources_staff_routes)
    app.add_routes(resources_routes)
    app.add_routes(jobs_routes)
    app.add_routes(plan_routes)
    app.add_routes(visitors_verify_routes)
    app.add_routes(visits_join_routes)
    app.router.add_get("/ca.pem", ca_certificate, name="ca")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_static("/static/", HERE / "static", name="static")
    app.cleanup_ctx.append(rounds)
    use_calls(app, calls or Calls(kernel))
    app.on_startup.append(forgetting_sessions)
    if alone:
        app.cleanup_ctx.append(following_policy)
    check_routes(app)
    return app
