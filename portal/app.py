"""The portal's app factory."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gatehouse.ca import ca_cert_file
from gatehouse.kernel import Kernel
from portal.auth.views import routes as auth_routes
from portal.keys import KERNEL
from portal.security import audit_middleware, csrf_middleware, headers_middleware

HERE = Path(__file__).parent


async def ca_certificate(request: web.Request) -> web.FileResponse:
    """The facility CA for terminals to trust, so inspected sites open without warnings."""
    path = ca_cert_file(request.app[KERNEL].settings.ca_dir)
    if not path.exists():
        raise web.HTTPNotFound(text="No facility CA yet; run `gatehouse init`.")
    return web.FileResponse(path, headers={
        "Content-Type": "application/x-pem-file",
        "Content-Disposition": 'attachment; filename="gatehouse-ca.pem"'})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(kernel: Kernel) -> web.Application:
    app = web.Application(middlewares=[headers_middleware, audit_middleware, csrf_middleware],
                          client_max_size=1024 * 1024)
    app[KERNEL] = kernel
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    env.globals["portal_name"] = "Gatehouse"
    app.add_routes(auth_routes)
    app.router.add_get("/ca.pem", ca_certificate, name="ca")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_static("/static/", HERE / "static", name="static")
    return app
