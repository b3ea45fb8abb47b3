"""Learning for inmates: the catalogue, my learning, a course, its lessons (read or listened to), its quizzes one
question at a time, results and certificates; and the public page where anyone checks a certificate.

Pages work without scripts; `learning.js` only reports that the learner is active on a lesson, so time spent
counts reading rather than an open tab.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gatehouse.db.engine import utcnow
from gatehouse.errors import Conflict, NotFound
from gatehouse.learning import lessons, study
from gatehouse.learning.speech import SpeechUnavailable
from portal.access import inmate, public
from portal.i18n import N_, _
from portal.keys import KERNEL, VIEWER
from portal.layout import render
from portal.learning import services

routes = web.RouteTableDef()

REFUSED = {"finished": N_("This course is finished, so its quizzes are closed."),
           "not-started": N_("This course has not started yet."),
           "ended": N_("The end date of this course has passed. Ask education staff."),
           "not-opened": N_("Open the lesson first."),
           "passed": N_("You have passed this quiz already."),
           "no-attempts": N_("You have used all your attempts at this quiz. Ask your teacher."),
           "attempt-finished": N_("This attempt is finished. Its answers cannot change."),
           "out-of-turn": N_("This question was answered already. Here is the next one.")}
BAD_ANSWER = {"choose": N_("Choose an answer."), "write": N_("Write an answer."),
              "number": N_("Write a number, with a comma or a point before the decimals."),
              "not-a-choice": N_("Choose one of the answers shown.")}
FEEDBACK = {"correct": N_("Right."), "incorrect": N_("Not right."),
            "incomplete": N_("Not quite: some right answers are missing."),
            "too-low": N_("Not right: too low."), "too-high": N_("Not right: too high.")}
STATES = {"enrolled": N_("Enrolled"), "completed": N_("Completed"), "requested": N_("Asked, waiting for an answer"),
          "refused": N_("Refused"), "open": N_("Open to you"), "closed": N_("Not open to you"),
          "active": N_("In progress"), "withdrawn": N_("Withdrawn"), "ended": N_("Ended"),
          "transferred": N_("Transferred")}


def _me(request: web.Request) -> tuple[str, str, str]:
    """The inmate's number, terminal and language."""
    active = request[VIEWER].inmate
    if active is None:  # the route's rule lets only inmates through
        raise web.HTTPForbidden()
    return active.inmate_number, active.terminal_name, active.language


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None


def _now() -> datetime:
    return utcnow()


def _missing() -> web.HTTPNotFound:
    return web.HTTPNotFound(text=_("This course, lesson or quiz is not yours, or does not exist."))


def _refusal(request: web.Request, refused: study.Refused, back: str) -> web.Response:
    message = REFUSED.get(refused.code)
    return render(request, "learning/refused.html", {"message": _(message) if message else str(refused),
                                                     "back": back}, status=409)


# -- catalogue and my learning --------------------------------------------------------------------------------------

@routes.get("/courses", name="courses")
@inmate
async def catalogue(request: web.Request) -> web.Response:
    number, _terminal, _language = _me(request)
    offered = await services.catalogue(request.app[KERNEL], number)
    done = {"asked": _("You asked to join. Education staff will answer; you will see it here.")}.get(
        request.query.get("done", ""), "")
    return render(request, "learning/catalogue.html", {"offered": offered, "states": STATES, "done": done})


@routes.post("/courses/{slug}/ask", name="course-ask")
@inmate
async def ask(request: web.Request) -> web.Response:
    number, terminal, _language = _me(request)
    try:
        await services.ask(request.app[KERNEL], number, terminal, request.match_info["slug"], _now())
    except NotFound:
        raise _missing() from None
    except Conflict:
        raise web.HTTPSeeOther("/courses") from None  # asked already, enrolled, or not open: the page says which
    raise web.HTTPSeeOther("/courses?done=asked")


@routes.get("/learning", name="learning")
@inmate
async def my_learning(request: web.Request) -> web.Response:
    number, _terminal, _language = _me(request)
    mine = await services.my_learning(request.app[KERNEL], number)
    return render(request, "learning/mine.html", {
        "current": [m for m in mine if m.status == "active"],
        "completed": [m for m in mine if m.status == "completed"],
        "asked": [m for m in mine if m.status in ("requested", "refused")],
        "closed": [m for m in mine if m.status in ("withdrawn", "ended", "transferred")],
        "states": STATES})


# -- a course and its lessons ---------------------------------------------------------------------------------------

@routes.get("/learning/{slug}", name="learning-course")
@inmate
async def course(request: web.Request) -> web.Response:
    number, _terminal, language = _me(request)
    try:
        shown = await services.overview(request.app[KERNEL], number, request.match_info["slug"], language)
    except NotFound:
        raise _missing() from None
    done = {"completed": _("You have completed this course. Well done! Your certificate is ready.")}.get(
        request.query.get("done", ""), "")
    active = request[VIEWER].inmate
    sites = [] if active is None or shown.status != "active" else services.site_states(
        request.app[KERNEL].policies.snapshot, shown.sites, active.subject, _now())
    return render(request, "learning/course.html", {"o": shown, "states": STATES, "done": done, "sites": sites})


@routes.get("/learning/{slug}/lesson/{number}", name="learning-lesson")
@inmate
async def lesson(request: web.Request) -> web.Response:
    number, _terminal, language = _me(request)
    slug = request.match_info["slug"]
    try:
        page = await services.open_lesson(request.app[KERNEL], number, slug, _int(request, "number"), language,
                                          _now())
    except NotFound:
        raise _missing() from None
    html = lessons.render_lesson(page.markdown, lambda path: f"/learning/{slug}/{path}")
    return render(request, "learning/lesson.html", {
        "page": page, "slug": slug, "body": html, "read_aloud": services.can_read_aloud(page.language),
        "lesson_lang": page.language})


@routes.get("/learning/{slug}/lesson/{number}/audio.wav", name="learning-audio")
@inmate
async def audio(request: web.Request) -> web.Response:
    number, _terminal, language = _me(request)
    kernel = request.app[KERNEL]
    try:
        page = await services.open_lesson(kernel, number, request.match_info["slug"], _int(request, "number"),
                                          language, _now())
        data = await services.lesson_audio(kernel, page)
    except (NotFound, SpeechUnavailable):
        raise _missing() from None
    return web.Response(body=data, content_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@routes.post("/learning/{slug}/lesson/{number}/activity", name="learning-activity")
@inmate
async def activity(request: web.Request) -> web.Response:
    number, _terminal, _language = _me(request)
    try:
        seconds = await services.activity(request.app[KERNEL], number, request.match_info["slug"],
                                          _int(request, "number"), _now())
    except NotFound:
        raise _missing() from None
    except Conflict:
        return web.json_response({"counted": False}, status=409)
    return web.json_response({"counted": True, "seconds": seconds})


@routes.post("/learning/{slug}/lesson/{number}/done", name="learning-done")
@inmate
async def lesson_done(request: web.Request) -> web.Response:
    number, terminal, _language = _me(request)
    slug, lesson_number = request.match_info["slug"], _int(request, "number")
    try:
        completed = await services.finish_lesson(request.app[KERNEL], number, terminal, slug, lesson_number, _now())
    except NotFound:
        raise _missing() from None
    except study.Refused as refused:
        return _refusal(request, refused, f"/learning/{slug}")
    if completed:
        raise web.HTTPSeeOther(f"/learning/{slug}?done=completed")
    following = str((await request.post()).get("next", ""))
    raise web.HTTPSeeOther(f"/learning/{slug}/lesson/{lesson_number + 1}" if following == "1"
                           else f"/learning/{slug}")


@routes.get("/learning/{slug}/media/{path:.+}", name="learning-media")
@inmate
async def media(request: web.Request) -> web.Response:
    number, _terminal, _language = _me(request)
    try:
        kind, data = await services.media(request.app[KERNEL], number, request.match_info["slug"],
                                          "media/" + request.match_info["path"])
    except NotFound:
        raise _missing() from None
    headers = {"Cache-Control": "private, max-age=3600", "Content-Disposition": "inline",
               "Content-Security-Policy": services.MEDIA_POLICY}
    return web.Response(body=data, headers={**headers, "Content-Type": kind})


# -- quizzes --------------------------------------------------------------------------------------------------------

@routes.post("/learning/{slug}/quiz/{module}/start", name="learning-quiz-start")
@inmate
async def start(request: web.Request) -> web.Response:
    number, terminal, _language = _me(request)
    slug = request.match_info["slug"]
    try:
        token = await services.start_attempt(request.app[KERNEL], number, terminal, slug, _int(request, "module"),
                                             _now())
    except NotFound:
        raise _missing() from None
    except study.Refused as refused:
        return _refusal(request, refused, f"/learning/{slug}")
    raise web.HTTPSeeOther(f"/learning/attempt/{token}")


async def _attempt_page(request: web.Request, view: study.AttemptView, status: int = 200, message: str = "",
                        values: list[str] | None = None) -> web.Response:
    """The attempt's next question; after a refused answer, with the message and what was chosen."""
    return render(request, "learning/attempt.html", {"view": view, "message": message, "values": values or []},
                  status=status)


async def _own_attempt(request: web.Request, number: str) -> study.AttemptView:
    """The attempt the path names, if it is this inmate's; 404 otherwise (a forged token shows nothing)."""
    try:
        return await services.attempt(request.app[KERNEL], number, request.match_info["token"])
    except NotFound:
        raise _missing() from None


@routes.get("/learning/attempt/{token}", name="learning-attempt")
@inmate
async def attempt(request: web.Request) -> web.Response:
    number, _terminal, _language = _me(request)
    view = await _own_attempt(request, number)
    if view.finished:
        raise web.HTTPSeeOther(f"/learning/attempt/{view.token}/result")
    return await _attempt_page(request, view)


@routes.post("/learning/attempt/{token}/answer", name="learning-answer")
@inmate
async def answer(request: web.Request) -> web.Response:
    number, terminal, _language = _me(request)
    kernel, token = request.app[KERNEL], request.match_info["token"]
    data = await request.post()
    question = str(data.get("question", ""))
    form = {"answer": [str(v) for v in data.getall("answer", [])]}
    try:
        done, view = await services.answer(kernel, number, terminal, token, question, form, _now())
    except NotFound:
        raise _missing() from None
    except study.BadAnswer as bad:
        view = await services.attempt(kernel, number, token)
        return await _attempt_page(request, view, 400, _(BAD_ANSWER.get(bad.code, BAD_ANSWER["choose"])),
                                   form["answer"])
    except study.Refused as refused:
        if refused.code == "out-of-turn":  # a second tab or a resent form: go on where the attempt is
            raise web.HTTPSeeOther(f"/learning/attempt/{token}") from None
        return _refusal(request, refused, f"/learning/attempt/{token}/result")
    if done.marked is not None:  # feedback after each question, before the next or the result
        raise web.HTTPSeeOther(f"/learning/attempt/{token}/checked?question={done.marked.question}")
    if view.finished:
        raise web.HTTPSeeOther(f"/learning/attempt/{token}/result")
    raise web.HTTPSeeOther(f"/learning/attempt/{token}")


@routes.get("/learning/attempt/{token}/checked", name="learning-checked")
@inmate
async def checked(request: web.Request) -> web.Response:
    """The answer just given, graded, with the way on (the next question or the result)."""
    number, _terminal, _language = _me(request)
    view = await _own_attempt(request, number)
    just = next((m for m in view.marked if m.question == request.query.get("question", "")), None)
    if just is None:
        raise web.HTTPSeeOther(f"/learning/attempt/{view.token}")
    return render(request, "learning/checked.html", {"view": view, "just": just, "feedback": FEEDBACK})


@routes.get("/learning/attempt/{token}/result", name="learning-result")
@inmate
async def result(request: web.Request) -> web.Response:
    number, _terminal, language = _me(request)
    view = await _own_attempt(request, number)
    if not view.finished:
        raise web.HTTPSeeOther(f"/learning/attempt/{view.token}")
    try:
        shown = await services.overview(request.app[KERNEL], number, view.course, language)
    except NotFound:
        raise _missing() from None
    state = shown.progress.quizzes.get(view.module)
    return render(request, "learning/result.html", {"view": view, "o": shown, "state": state, "feedback": FEEDBACK})


# -- certificates ---------------------------------------------------------------------------------------------------

async def _certificate(request: web.Request, form: str) -> web.Response:
    number, _terminal, _language = _me(request)
    certificate_id = request.match_info["id"]
    try:
        data = await services.certificate(request.app[KERNEL], number, certificate_id, form)
    except NotFound:
        raise _missing() from None
    kind = "application/pdf" if form == "pdf" else "application/ld+json"
    return web.Response(body=data, headers={
        "Content-Type": kind, "Content-Disposition": f'attachment; filename="certificate-{certificate_id}.{form}"'})


@routes.get("/learning/certificates/{id}.pdf", name="learning-certificate-pdf")
@inmate
async def certificate_pdf(request: web.Request) -> web.Response:
    return await _certificate(request, "pdf")


@routes.get("/learning/certificates/{id}.json", name="learning-certificate-json")
@inmate
async def certificate_json(request: web.Request) -> web.Response:
    """The Open Badges 3.0 credential, exactly as signed."""
    return await _certificate(request, "json")


@routes.get("/verify", name="verify")
@public
async def verify_page(request: web.Request) -> web.Response:
    """Anyone (an employer, a probation officer) checks a certificate by its code, or by its file."""
    code = request.query.get("code", "").strip()
    context: dict[str, Any] = {"code": code, "verdict": None, "shown": None, "unknown": False}
    if code:
        found = await services.verify_code(request.app[KERNEL], code)
        if found is None:
            context["unknown"] = True
        else:
            context["verdict"], context["shown"] = found
    return render(request, "learning/verify.html", context, status=404 if context["unknown"] else 200)


@routes.post("/verify", name="verify-file")
@public
async def verify_file(request: web.Request) -> web.Response:
    data = await request.post()
    upload = data.get("file")
    body = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not body:
        return render(request, "learning/verify.html", {
            "code": "", "verdict": None, "shown": None, "unknown": False,
            "message": _("Choose the certificate's file (PDF or JSON).")}, status=400)
    verdict = await services.verify(request.app[KERNEL], body)
    return render(request, "learning/verify.html", {"code": "", "verdict": verdict, "shown": None, "unknown": False})


@routes.get("/verify/keys.json", name="verify-keys")
@public
async def keys(request: web.Request) -> web.Response:
    """The facility's public key set, for checking certificates offline (`gatehouse certificate verify --keys`)."""
    return web.Response(body=services.key_document(request.app[KERNEL]), content_type="application/json")
