"""Library management for education staff: which groups see each library, and the articles (or whole path
prefixes) the facility hides from reading and search. Every change is on the audit record."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from gatehouse.audit import Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.library import shelf
from portal.access import acting, staff
from portal.i18n import N_, _
from portal.keys import KERNEL
from portal.layout import facility_zone, render
from portal.library import services

routes = web.RouteTableDef()
DONE = {"groups": N_("Who sees the library was saved."), "hidden": N_("The page is hidden now."),
        "shown": N_("The page is shown again.")}


def _problem(message: str) -> tuple[str, str]:
    field, _colon, detail = message.partition(": ")
    if field == "groups":
        return "groups", _("Give group names separated by commas, each of letters, digits, '.', '_' or '-'.")
    if field == "path" and "hidden already" in detail:
        return "path", _("This page is hidden already.")
    if field == "path" and detail.startswith("at most"):
        return "path", _("This path is too long: at most %(num)d characters.") % {"num": shelf.MAX_PATH}
    if field == "path":
        return "path", _("Give the path of a page inside the library, as its address shows it after the "
                         "library's name, for example A/Bread.")
    return "", _("The change could not be saved.")


async def _page(request: web.Request, *, status: int = 200, name: str = "", errors: dict[str, str] | None = None,
                values: dict[str, Any] | None = None) -> web.Response:
    kernel = request.app[KERNEL]
    done = DONE.get(request.query.get("done", ""))
    return render(request, "library/admin.html", {
        "title": _("Libraries"), "libraries": await services.visible(kernel, None), "zone": facility_zone(request),
        "failed": name, "errors": errors or {}, "values": values or {}, "done": _(done) if done else "",
        "message": (errors.get("form") or _("Nothing was changed. Correct the field marked below.")) if errors else ""},
        status=status)


@routes.get("/library-admin", name="library-admin")
@staff(StaffRole.EDUCATION)
async def overview(request: web.Request) -> web.Response:
    return await _page(request)


async def _changed(request: web.Request, tag: Tag, done: str, values: dict[str, Any], work: Any,
                   summary: Any) -> web.Response:
    kernel = request.app[KERNEL]
    name = request.match_info["name"]
    by, address = acting(request)
    try:
        result = await services.change(kernel, lambda session: work(session, name, by))
        services.forget()
    except NotFound:
        raise web.HTTPNotFound(text=_("There is no such library or hidden page.")) from None
    except (InvalidInput, Conflict) as exc:
        field, text = _problem(str(exc))
        return await _page(request, status=400, name=name, errors={field or "form": text}, values=values)
    await services.note(kernel, tag, actor=by, terminal="", address=address, reason=f"{name}: {summary(result)}")
    raise web.HTTPSeeOther(f"/library-admin?done={done}#library-{name}")


@routes.post("/library-admin/{name}/groups", name="library-admin-groups")
@staff(StaffRole.EDUCATION)
async def groups(request: web.Request) -> web.Response:
    form = await request.post()
    text = str(form.get("groups", ""))
    data_dir = request.app[KERNEL].settings.data_dir

    def work(session: Session, name: str, by: str) -> tuple[shelf.Shelved, str]:
        return shelf.set_groups(session, data_dir, name, text)

    return await _changed(request, Tag.LIBRARY_GROUPS_CHANGED, "groups", {"groups": text}, work,
                          lambda r: f"seen by {', '.join(r[0].groups) or 'everyone'} (before: {r[1]})")


@routes.post("/library-admin/{name}/hide", name="library-admin-hide")
@staff(StaffRole.EDUCATION)
async def hide(request: web.Request) -> web.Response:
    form = await request.post()
    path, note, prefix = str(form.get("path", "")), str(form.get("note", "")), form.get("prefix") == "yes"
    data_dir = request.app[KERNEL].settings.data_dir

    def work(session: Session, name: str, by: str) -> shelf.Rule:
        return shelf.hide(session, data_dir, name, path, prefix=prefix, note=note, by=by, now=utcnow())

    return await _changed(request, Tag.LIBRARY_ARTICLE_HIDDEN, "hidden",
                          {"path": path, "note": note, "prefix": prefix}, work,
                          lambda r: f"{'everything under ' if r.prefix else ''}{r.path} hidden"
                                    f"{'; ' + r.note if r.note else ''}")


@routes.post("/library-admin/{name}/shown/{rule}", name="library-admin-show")
@staff(StaffRole.EDUCATION)
async def show(request: web.Request) -> web.Response:
    try:
        rule_id = int(request.match_info["rule"])
    except ValueError:
        raise web.HTTPNotFound() from None

    def work(session: Session, name: str, by: str) -> shelf.Rule:
        return shelf.unhide(session, name, rule_id)

    return await _changed(request, Tag.LIBRARY_ARTICLE_SHOWN, "shown", {}, work,
                          lambda r: f"{'everything under ' if r.prefix else ''}{r.path} shown again")
