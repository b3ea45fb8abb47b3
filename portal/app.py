"""The portal's app factory: middlewares, templates with gettext, every domain's routes, each with its rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gatehouse.ca import ca_cert_file
from gatehouse.kernel import Kernel
from gatehouse.staff import StaffSessionPolicy
from portal import i18n
from portal.access import check_routes, public, session_middleware
from portal.admin.views import routes as admin_routes
from portal.auth.views import routes as auth_routes
from portal.control.views import routes as control_routes
from portal.curation.inmate import routes as curation_inmate_routes
from portal.curation.staff import routes as curation_staff_routes
from portal.errors import errors_middleware
from portal.keys import KERNEL, STAFF_POLICY
from portal.learning import services as learning
from portal.learning.teaching import routes as teaching_routes
from portal.learning.views import routes as learning_routes
from portal.review import services as review
from portal.review.views import routes as review_routes
from portal.security import audit_middleware, csrf_middleware, headers_middleware
from portal.staff.views import routes as staff_routes
from portal.tasks import repeat

HERE = Path(__file__).parent
DOMAINS = ("auth", "staff", "admin", "review", "control", "learning", "curation")


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
    whose last day passed marked ended every minute (the gateway closed their sites at that date already)."""
    kernel, stop = app[KERNEL], asyncio.Event()
    tasks = [asyncio.create_task(review.scan_forever(kernel, stop)),
             asyncio.create_task(repeat(stop, learning.SWEEP_SECONDS, lambda: learning.sweep_ended(kernel),
                                        "learning: ending enrolments past their last day"))]
    yield
    stop.set()
    await asyncio.gather(*tasks)


def templates() -> jinja2.BaseLoader:
    """Shared layout and partials in templates/, each domain's screens in its own templates/<domain>/."""
    return jinja2.FileSystemLoader([HERE / "templates"] + [HERE / d / "templates" for d in DOMAINS])


def create_app(kernel: Kernel) -> web.Application:
    app = web.Application(
        middlewares=[headers_middleware, audit_middleware, errors_middleware, session_middleware, csrf_middleware],
        client_max_size=8 * 1024 * 1024)
    app[KERNEL] = kernel
    settings = kernel.settings
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
    app.router.add_get("/ca.pem", ca_certificate, name="ca")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_static("/static/", HERE / "static", name="static")
    app.cleanup_ctx.append(rounds)
    check_routes(app)
    return app
