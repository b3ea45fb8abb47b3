"""Error pages in the portal's frame and the reader's language, instead of a bare line of text."""

from __future__ import annotations

from aiohttp import web

from portal.access import Handler
from portal.i18n import _
from portal.keys import VIEWER
from portal.layout import render


def _title(status: int) -> str:
    titles = {400: _("The request could not be understood"), 403: _("You cannot open this page"),
              404: _("This page does not exist"), 405: _("This page cannot be used this way"),
              413: _("This is too large")}
    return titles.get(status, _("Something went wrong"))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A 4xx raised with plain text (a handler's own message, a CSRF refusal, aiohttp's 404 and 405) becomes a
    page; its text stays as the message. Redirects and pages already rendered pass untouched."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500 or exc.content_type != "text/plain" or VIEWER not in request:
            raise
        text = exc.text or ""
        plain = f"{exc.status}: {exc.reason}"
        message = _("Check the address, or start again from the start page.") if text.strip() == plain else text
        page = render(request, "errors/error.html", {"title": _title(exc.status), "message": message},
                      status=exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                page.headers[name] = exc.headers[name]
        return page
