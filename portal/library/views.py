"""The offline libraries for readers (inmates, and staff looking at what inmates read): the catalogue grouped by
language, articles and images from the ZIM file, the archive's own search.

An article is served as the ZIM has it, rebuilt by `gatehouse.library.pages` (nothing of it runs, links out of
the archive are plain text) with the portal's bar on top, under a Content-Security-Policy that allows only the
portal's own address and no script. Hidden articles and libraries kept to other groups answer 404.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp_jinja2
from aiohttp import web
from babel import Locale, UnknownLocaleError

from gatehouse.audit import Tag
from gatehouse.db.engine import utcnow
from gatehouse.library import pages, zim
from gatehouse.library.shelf import Shelved, hidden_by
from gatehouse.quota import QuotaUnavailable
from portal import i18n
from portal.access import client_address, reader, reader_of
from portal.i18n import _
from portal.keys import KERNEL, VIEWER
from portal.layout import render
from portal.library import services

routes = web.RouteTableDef()
HTML = ("text/html", "application/xhtml+xml")


def _groups(request: web.Request) -> Iterable[str] | None:
    """An inmate's groups; None for staff, who see every library."""
    viewer = request[VIEWER]
    if viewer.inmate is not None and viewer.staff is None:
        return viewer.inmate.subject.groups
    return None


def language_name(code: str) -> str:
    """A ZIM language code as the reader's language names it."""
    tag = pages.html_language(code)
    if not tag:
        return _("Other languages")
    try:
        return Locale.parse(tag).get_display_name(i18n.current()) or tag
    except (UnknownLocaleError, ValueError):
        return tag


def _gone(request: web.Request) -> web.Response:
    return render(request, "library/missing.html", {
        "title": _("Not in the library"),
        "message": _("There is no such library or page, or it is not open to you.")}, status=404)


async def _metered(request: web.Request) -> web.Response | None:
    """For an inmate: this minute of reading spent, or the page that says why reading stops."""
    active = request[VIEWER].inmate
    if active is None or request[VIEWER].staff is not None:
        return None
    try:
        allowed = await services.spend(request.app[KERNEL], active, utcnow())
    except QuotaUnavailable:
        return render(request, "library/missing.html", {
            "title": _("The library is paused"),
            "message": _("Reading time cannot be counted just now, so the library is closed for a moment. Try "
                         "again in a few minutes.")}, status=503)
    if allowed:
        return None
    return render(request, "library/missing.html", {
        "title": _("Your library time for today is used up"),
        "message": _("You have read for all the minutes you have today. The library opens again tomorrow.")},
        status=403)


@routes.get("/library", name="library")
@reader
async def catalogue(request: web.Request) -> web.Response:
    found = await services.visible(request.app[KERNEL], _groups(request))
    shelves: dict[str, list[Shelved]] = {}
    for one in found:
        shelves.setdefault(language_name(one.language), []).append(one)
    return render(request, "library/catalogue.html", {
        "title": _("Library"), "shelves": sorted(shelves.items())})


@routes.get("/library/{name}", name="library-main")
@reader
async def main_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    shelved = await services.opened(request.app[KERNEL], name, _groups(request))
    if shelved is None:
        return _gone(request)
    main = await services.main_path(shelved)
    raise web.HTTPFound(f"/library/{name}/{main}" if main else f"/library/{name}/search")


@routes.get("/library/{name}/search", name="library-search")
@reader
async def search(request: web.Request) -> web.Response:
    kernel = request.app[KERNEL]
    shelved = await services.opened(kernel, request.match_info["name"], _groups(request))
    if shelved is None:
        return _gone(request)
    query = " ".join(request.query.get("q", "").split())[:200]
    full: list[zim.Page] = []
    titles: list[zim.Page] = []
    if query:
        refused = await _metered(request)
        if refused is not None:
            return refused
        full, titles = await services.search(shelved, query)
        actor, terminal = reader_of(request)
        await services.note(kernel, Tag.LIBRARY_SEARCH, actor=actor, terminal=terminal,
                            address=client_address(request), path=f"/library/{shelved.name}/search",
                            reason=f"{shelved.name}: {query} ({len(full)} found, {len(titles)} titles)")
    return render(request, "library/search.html", {
        "title": _("Search in %(library)s") % {"library": shelved.title}, "library": shelved, "query": query,
        "full": full, "titles": titles})


@routes.get("/library/{name}/{path:.+}", name="library-entry")
@reader
async def article(request: web.Request) -> web.StreamResponse:
    kernel = request.app[KERNEL]
    name, path = request.match_info["name"], request.match_info["path"]
    shelved = await services.opened(kernel, name, _groups(request))
    if shelved is None:
        return _gone(request)
    if hidden_by(shelved.hidden, path) is not None:
        return _hidden(request, shelved)
    bar = aiohttp_jinja2.render_string("library/_bar.html", request, {"library": shelved, "lang": i18n.current()})

    def rewritten(entry: zim.Entry) -> str | None:
        """The page as served, made in the same thread as the read (one hop off the loop, not two)."""
        if entry.path != path or _kind(entry) not in HTML:
            return None
        return pages.rewrite(entry.content.decode("utf-8", "replace"), bar=bar, root=f"/library/{name}/",
                             language=shelved.language)

    found, body = await services.entry_and(shelved, path, rewritten)
    if found is None:
        return _gone(request)
    if found.path != path:  # a redirect entry: show the article at its own address, so its links resolve
        if hidden_by(shelved.hidden, found.path) is not None:
            return _hidden(request, shelved)
        raise web.HTTPFound(f"/library/{name}/{found.path}")
    headers = {"Content-Security-Policy": pages.CSP, "X-Frame-Options": "DENY", "Cache-Control": "private, no-store"}
    if body is None:
        return web.Response(body=found.content, content_type=_kind(found) or "application/octet-stream",
                            headers=headers)
    refused = await _metered(request)
    if refused is not None:
        return refused
    actor, terminal = reader_of(request)
    await services.note(kernel, Tag.LIBRARY_ARTICLE_OPENED, actor=actor, terminal=terminal,
                        address=client_address(request), path=f"/library/{name}/{path}",
                        reason=f"{name}: {path} ({found.title})")
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)


def _kind(entry: zim.Entry) -> str:
    return entry.mimetype.split(";")[0].strip().lower()


def _hidden(request: web.Request, shelved: Shelved) -> web.Response:
    return render(request, "library/missing.html", {
        "title": _("This page was hidden by the facility"),
        "message": _("The facility chose not to show this page of %(library)s.") % {"library": shelved.title},
        "library": shelved}, status=404)
