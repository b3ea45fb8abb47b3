"""Learning in a real browser: a teacher imports and enrols, an inmate reads, fails, retries, passes and takes the
certificate away, anyone verifies it; answers stay on the server until graded; axe-core on every learning page in
four languages.

One platform and one Chromium serve the module; each test makes its own inmates, so order does not matter.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Response, expect

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.learning import catalog
from gatehouse.learning.package import load_package
from portal import i18n
from tests.conftest import Origin
from tests.helpers import NEEDS_CHROMIUM, Platform, populate
from tests.test_browser_portal import AXE_OPTIONS, as_staff, browser, inmate_login, new_inmate, opened, signed_in
from tests.test_course_package import build
from tests.test_learning_study import FILES, RIGHT, WRONG

__all__ = ["browser", "signed_in"]  # the shared browser and staff logins, as fixtures of this module
pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.asyncio(loop_scope="module"),
]

SECRET_ANSWERS = ("pin code",)
"""Accepted answers that appear nowhere in the course's pages: seen before grading means leaked."""
FEEDBACK_FILES = {**FILES, "quizzes/practice.yaml": str(FILES["quizzes/practice.yaml"]).replace(
    "order: fixed", "order: fixed\nfeedback: after-each")}


def packed(folder: Path, files: dict[str, str | bytes], name: str) -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    data_dir = tmp_path_factory.mktemp("learning") / "data"
    settings = initialise(data_dir, {"portal.port": 0, "proxy.port": 0}, quiet=True)
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000)
    async with running(settings) as up:
        def seed() -> None:
            course = load_package(build(tmp_path_factory.mktemp("pkg"), FEEDBACK_FILES))
            with up.kernel.factory.begin() as session:
                catalog.import_course(session, course, by="teacher", now=utcnow())
        await asyncio.to_thread(seed)
        yield Platform(up, Origin(), settings)


async def teacher_enrols(page: Page, site: Platform, number: str, course: str = "safe-money") -> None:
    await page.goto(f"{site.portal}/teach/courses/{course}")
    await page.locator("#number").fill(number)
    await page.locator(f'form[action="/teach/courses/{course}/enrol"] button[type=submit]').click()
    await expect(page.get_by_role("status")).to_contain_text("Enrolled")
    await expect(page.locator(f'[data-testid=learners] tr[data-inmate="{number}"]')).to_have_attribute(
        "data-status", "active")


async def answer_quiz(page: Page, answers: dict[str, list[str]], prompts: dict[str, str]) -> None:
    """Answer each question as the page shows it, until the result page."""
    for _ in answers:
        prompt = (await page.get_by_test_id("prompt").inner_text()).strip()
        qid = prompts[prompt]
        for value in answers[qid]:
            box = page.locator(f'input[name=answer][value="{value}"]')
            if await box.count():
                await box.check()
            else:
                await page.locator("#answer").fill(value)
        await page.get_by_role("button", name="Answer").click()
        await page.wait_for_load_state()
    await page.wait_for_url(re.compile(r"/result$"))


FINAL_PROMPTS = {"Who may ask for your PIN?": "f1", "Signs of a scam": "f2", "How many digits in a PIN?": "f3",
                 "Name the thing you never share": "f4"}


def gatehouse_cli(site: Platform, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatehouse", *argv, "--data-dir", str(site.settings.data_dir)],
                          capture_output=True, text=True, timeout=60, check=False)


async def test_teacher_imports_a_package_and_sees_every_problem(site: Platform, browser: Browser,
                                                               signed_in: dict[str, Any], tmp_path: Path) -> None:
    broken = {**FILES, "course.yaml": str(FILES["course.yaml"]).replace("level: A2\n", "").replace(
        "id: safe-money", "id: broken-course"), "lessons/bank.md": "# Bank\n\n![x](media/missing.png)\n"}
    good = {**FILES, "course.yaml": str(FILES["course.yaml"]).replace("id: safe-money", "id: money-two")}
    async with as_staff(browser, site, signed_in, "education") as page:
        await page.goto(f"{site.portal}/teach")
        await page.locator("#package").set_input_files(str(packed(tmp_path, broken, "broken.zip")))
        await page.get_by_role("button", name="Import", exact=True).click()
        await expect(page.get_by_role("alert")).to_contain_text("Nothing was imported")
        problems = await page.get_by_test_id("problems").locator("li").all_inner_texts()
        assert "course.yaml:1: course.yaml has no 'level'" in problems
        assert any(p.startswith("lessons/bank.md:3:") for p in problems), problems
        await expect(page.locator('[data-course="broken-course"]')).to_have_count(0)
        await page.locator("#package").set_input_files(str(packed(tmp_path, good, "good.zip")))
        await page.get_by_role("button", name="Import", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text("The course was imported.")
        await expect(page.locator('[data-course="money-two"]')).to_contain_text("1 (published)")


async def test_inmate_learns_fails_retries_passes_and_takes_a_verifiable_certificate(
        site: Platform, browser: Browser, signed_in: dict[str, Any], tmp_path: Path) -> None:
    number = await new_inmate(site)
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher_enrols(teacher, site, number)
    seen: list[str] = []

    async def keep(response: Response) -> None:
        if "/learning/" in response.url and "/result" not in response.url and "/checked" not in response.url:
            try:
                seen.append((await response.text()).lower())
            except Exception:  # noqa: BLE001 - a redirect has no body to read
                pass

    async with opened(browser, accept_downloads=True) as page:
        page.on("response", keep)
        await inmate_login(page, site, number)
        await page.get_by_role("link", name="My learning").click()
        await page.get_by_role("link", name="Money safely").click()
        await expect(page.get_by_test_id("percent")).to_have_text("0% done")
        await page.get_by_test_id("continue").click()
        for title in ("Cash", "Bank"):
            await expect(page.get_by_test_id("lesson").get_by_role("heading", level=1)).to_have_text(title)
            await page.get_by_role("button", name="I have finished: next lesson").click()
        await expect(page.get_by_test_id("lesson").get_by_role("heading", level=1)).to_have_text("Scam")
        await page.get_by_role("button", name="I have finished this lesson").click()
        await page.wait_for_url(f"{site.portal}/learning/safe-money")
        await expect(page.locator("[data-testid=lessons-1] li[data-done=yes]")).to_have_count(2)
        await expect(page.get_by_test_id("module-1-done")).to_have_text("2 of 2 lessons done")
        await expect(page.get_by_test_id("percent")).to_have_text("75% done")

        # Fail the final quiz...
        await page.get_by_test_id("quiz-2").get_by_role("button", name="Start the quiz").click()
        await answer_quiz(page, WRONG, FINAL_PROMPTS)
        await expect(page.get_by_test_id("result")).to_have_attribute("data-passed", "no")
        await expect(page.get_by_test_id("result")).to_contain_text("You scored 0%.")
        await expect(page.get_by_test_id("marked").locator("li[data-correct=no]")).to_have_count(4)
        # ... a replayed answer to the finished attempt is refused ...
        token = page.url.split("/")[-2]
        csrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "gh_csrf")
        replay = await page.request.post(f"{site.portal}/learning/attempt/{token}/answer",
                                         form={"csrf_token": csrf, "question": "f1", "answer": "a"},
                                         max_redirects=0)
        assert replay.status == 409 and "cannot change" in await replay.text()
        # ... retry and pass.
        await page.get_by_role("button", name="Try again").click()
        await answer_quiz(page, RIGHT, FINAL_PROMPTS)
        await expect(page.get_by_test_id("result")).to_have_attribute("data-passed", "yes")
        await expect(page.get_by_test_id("course-completed")).to_be_visible()
        assert not [body for body in seen for secret in SECRET_ANSWERS if secret in body]

        async with page.expect_download() as waiting:
            await page.get_by_test_id("course-completed").get_by_role("link", name="Certificate (PDF)").click()
        pdf = tmp_path / "certificate.pdf"
        await (await waiting.value).save_as(pdf)
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert f"Test Inmate {number}" in text and "Money safely" in text and "100%" in text
        code = re.search(r"\b[0-9A-Z]{5}-[0-9A-Z]{5}\b", text)
        assert code is not None, text

    assert gatehouse_cli(site, "certificate", "verify", str(pdf)).returncode == 0
    changed = bytearray(pdf.read_bytes())
    at = changed.index(b"%GATEHOUSE-CREDENTIAL") + 40
    changed[at] = changed[at] ^ 1
    (tmp_path / "changed.pdf").write_bytes(bytes(changed))
    refused = gatehouse_cli(site, "certificate", "verify", str(tmp_path / "changed.pdf"))
    assert refused.returncode == 1, refused.stdout + refused.stderr

    async with opened(browser) as visitor:
        await visitor.goto(f"{site.portal}/verify")
        await visitor.locator("#code").fill(code.group(0))
        await visitor.get_by_role("button", name="Check the code").click()
        await expect(visitor.get_by_test_id("verdict")).to_have_attribute("data-valid", "yes")
        await expect(visitor.get_by_test_id("verdict")).to_contain_text(f"Test Inmate {number}")

    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher.goto(f"{site.portal}/teach/courses/safe-money")
        row = teacher.locator(f'[data-testid=learners] tr[data-inmate="{number}"]')
        await row.get_by_placeholder("Reason").fill("issued in error")
        await row.get_by_role("button", name=re.compile("Revoke certificate")).click()
        await expect(teacher.get_by_role("status")).to_contain_text("revoked")
    revoked = gatehouse_cli(site, "certificate", "verify", str(pdf))
    assert revoked.returncode == 1 and "issued in error" in revoked.stdout + revoked.stderr
    async with opened(browser) as visitor:
        await visitor.goto(f"{site.portal}/verify?code={code.group(0)}")
        await expect(visitor.get_by_test_id("verdict")).to_have_attribute("data-valid", "no")
        await expect(visitor.get_by_test_id("verdict")).to_contain_text("issued in error")


async def test_another_inmates_attempt_is_not_found(site: Platform, browser: Browser,
                                                    signed_in: dict[str, Any]) -> None:
    owner, other = await new_inmate(site), await new_inmate(site)
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher_enrols(teacher, site, owner)
        await teacher_enrols(teacher, site, other)
    async with opened(browser) as page:
        await inmate_login(page, site, owner)
        await page.goto(f"{site.portal}/learning/safe-money")
        await page.get_by_test_id("quiz-2").get_by_role("button", name="Start the quiz").click()
        await page.wait_for_url(re.compile(r"/learning/attempt/"))
        token = page.url.rsplit("/", 1)[-1]
    async with opened(browser) as intruder:
        await inmate_login(intruder, site, other)
        csrf = next(c["value"] for c in await intruder.context.cookies() if c["name"] == "gh_csrf")
        forged = await intruder.request.post(f"{site.portal}/learning/attempt/{token}/answer",
                                             form={"csrf_token": csrf, "question": "f1", "answer": "a"},
                                             max_redirects=0)
        assert forged.status == 404
        looked = await intruder.goto(f"{site.portal}/learning/attempt/{token}")
        assert looked is not None and looked.status == 404


async def test_inmate_asks_to_join_and_sees_the_refusal_in_their_language(site: Platform, browser: Browser,
                                                                          signed_in: dict[str, Any]) -> None:
    number = await new_inmate(site, "nl")
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/courses")
        card = page.locator('[data-course="safe-money"]')
        await card.get_by_role("button").click()
        await expect(page.get_by_role("status")).to_have_text(text("nl", "You asked to join. Education staff will "
                                                                     "answer; you will see it here."))
        await expect(card.get_by_test_id("state")).to_have_text(text("nl", "Asked, waiting for an answer"))
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher.goto(f"{site.portal}/teach/requests")
        request = teacher.locator("[data-request]", has_text=number)
        await request.get_by_label("Reason for refusing").fill("De cursus is vol tot maart.")
        await request.get_by_role("button", name=f"Refuse the request of {number}").click()
        await expect(teacher.get_by_role("status")).to_contain_text("refused")
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/courses")
        card = page.locator('[data-course="safe-money"]')
        await expect(card.get_by_test_id("state")).to_have_text(text("nl", "Refused"))
        await expect(card.get_by_test_id("refusal")).to_contain_text("De cursus is vol tot maart.")


def text(language: str, message: str) -> str:
    return i18n.catalogue(language).gettext(message)


@pytest.mark.parametrize("language", list(i18n.NAMES))
async def test_learning_pages_have_no_axe_violations(site: Platform, browser: Browser, signed_in: dict[str, Any],
                                                     language: str) -> None:
    number = await new_inmate(site, language)
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher_enrols(teacher, site, number)
    pages: list[str] = []
    async with opened(browser, axe=True) as page:
        await inmate_login(page, site, number)
        for path in ("/courses", "/learning", "/learning/safe-money", "/learning/safe-money/lesson/1"):
            await page.goto(f"{site.portal}{path}")
            pages.append(await axe(page, path))
        await page.goto(f"{site.portal}/learning/safe-money")
        await page.get_by_test_id("quiz-1").locator("button").click()
        pages.append(await axe(page, "attempt"))
        await page.locator('input[name=answer][value="false"]').check()
        await page.locator("form.question button[type=submit]").click()
        await page.wait_for_url(re.compile(r"/checked"))
        pages.append(await axe(page, "checked"))
        await page.goto(f"{site.portal}/learning/safe-money")
        await page.get_by_test_id("quiz-2").locator("button").click()
        await page.locator("form.question button[type=submit]").click()  # nothing chosen: the error state
        pages.append(await axe(page, "attempt with an error"))
    async with opened(browser, axe=True) as page:
        await page.goto(f"{site.portal}/verify?code=AAAAA-BBBBB")
        pages.append(await axe(page, "verify"))
    assert [p for p in pages if p] == []


async def axe(page: Page, where: str) -> str:
    await expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^(en|nl|fr|de)$"))
    result = await page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    problems = [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]]
    return f"{where}: {problems}" if problems else ""


async def test_teacher_screens_have_no_axe_violations(site: Platform, browser: Browser,
                                                      signed_in: dict[str, Any]) -> None:
    number = await new_inmate(site)
    pages: list[str] = []
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await teacher_enrols(page, site, number)
        for path in ("/teach", "/teach/requests", f"/teach/inmates/{number}", "/teach/courses/safe-money"):
            await page.goto(f"{site.portal}{path}")
            pages.append(await axe(page, path))
        csv = await page.request.get(f"{site.portal}/teach/courses/safe-money?format=csv")
        lines = (await csv.text()).splitlines()
        assert lines[0].startswith("inmate,name,groups,course,status,progress_percent")
        assert any(line.startswith(f"{number},Test Inmate {number},") for line in lines[1:])
        shown = await page.locator("[data-testid=learners] tbody tr").count()
        assert shown == len(lines) - 1  # the CSV matches the screen
        chart = page.get_by_test_id("progress-chart")
        await expect(chart.locator("svg[role=img] title").first).to_have_text("Learners by progress")
        banded = [int(n) for n in await page.get_by_test_id("bands").locator("td").all_inner_texts()]
        assert sum(banded) == sum(1 for line in lines[1:] if ",requested," not in line and ",refused," not in line)
        await page.goto(f"{site.portal}/teach/inmates/{number}")
        async with page.expect_download() as waiting:
            await page.get_by_test_id("record").click()
        signed = json.loads(Path(await (await waiting.value).path()).read_text(encoding="utf-8"))
        assert signed["inmate"]["number"] == number and [c["course"] for c in signed["courses"]] == ["safe-money"]
        assert signed["proof"]["type"] == "Ed25519Signature"
    assert [p for p in pages if p] == []


async def test_a_lesson_can_be_listened_to_in_its_language(site: Platform, browser: Browser,
                                                           signed_in: dict[str, Any]) -> None:
    number = await new_inmate(site, "nl")
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher_enrols(teacher, site, number)
    async with opened(browser) as page:
        await inmate_login(page, site, number)
        await page.goto(f"{site.portal}/learning/safe-money/lesson/2")
        await expect(page.get_by_test_id("lesson")).to_have_attribute("lang", "nl")  # the course's nl text
        player = page.get_by_test_id("read-aloud")
        source = await player.get_attribute("src")
        assert source == "/learning/safe-money/lesson/2/audio.wav"
        first = await page.request.get(f"{site.portal}{source}")
        assert first.status == 200 and first.headers["content-type"] == "audio/wav"
        body = await first.body()
        assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and len(body) > 10_000
        again = await page.request.get(f"{site.portal}{source}")
        assert await again.body() == body  # made once, then from the cache
        cached = list((site.settings.data_dir / "cache" / "speech").glob("*.wav"))
        assert len(cached) >= 1


async def test_teacher_edits_a_draft_with_preview_and_publishes_it(site: Platform, browser: Browser,
                                                                  signed_in: dict[str, Any], tmp_path: Path) -> None:
    def seed() -> None:
        files = {**FILES, "course.yaml": str(FILES["course.yaml"]).replace("id: safe-money", "id: drafted")}
        with site.up.kernel.factory.begin() as session:
            catalog.import_course(session, load_package(build(tmp_path / "pkg", files)), by="teacher", now=utcnow())
    await asyncio.to_thread(seed)
    problems: list[str] = []
    async with as_staff(browser, site, signed_in, "education", axe=True) as page:
        await page.goto(f"{site.portal}/teach/courses/drafted")
        await page.get_by_test_id("edit-draft").click()
        await page.get_by_role("button", name="Make a draft").click()
        await expect(page.get_by_role("status")).to_contain_text("A draft was made")
        problems.append(await axe(page, "draft"))
        await page.get_by_role("link", name="Cash", exact=True).click()
        await expect(page.locator("#text")).to_have_value("# Cash\n\nAbout cash.\n")
        await page.locator("#text").fill("# Cash and coins\n\nCount your **coins**.\n")
        await page.get_by_role("button", name="Preview").click()
        await expect(page.get_by_test_id("preview").locator("strong")).to_have_text("coins")
        problems.append(await axe(page, "edit with a preview"))
        await page.locator("#text").fill("No title here\n")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("alert")).to_contain_text("Not saved")
        await expect(page.get_by_test_id("problems")).to_contain_text("lessons/cash.md:1: no title")
        await expect(page.locator("#text")).to_have_value("No title here\n")  # nothing typed is lost
        problems.append(await axe(page, "edit with problems"))
        await page.locator("#text").fill("# Cash and coins\n\nCount your **coins**.\n")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_have_text("Saved in the draft.")
        await page.get_by_role("button", name="Move down: Cash and coins").click()
        await expect(page.get_by_test_id("draft-lessons-1").locator("li").first).to_have_attribute(
            "data-file", "lessons/bank.md")
        await page.get_by_role("button", name="Publish this draft").click()
        await expect(page.get_by_test_id("versions").locator('tr[data-version="2"]')).to_contain_text("published")
    assert [p for p in problems if p] == []
    number = await new_inmate(site)
    async with as_staff(browser, site, signed_in, "education") as teacher:
        await teacher_enrols(teacher, site, number, "drafted")
    async with opened(browser) as learner:
        await inmate_login(learner, site, number)
        await learner.goto(f"{site.portal}/learning/drafted/lesson/2")
        await expect(learner.get_by_test_id("lesson").get_by_role("heading", level=1)).to_have_text("Cash and coins")
