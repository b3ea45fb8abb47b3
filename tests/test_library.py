"""Offline libraries: ZIM files made here with libzim's own Creator, put on the shelf by the CLI and read through
the running portal by an inmate (articles, images, search, hidden pages, groups, the audit record, the minutes).

One platform serves the module; each test uses its own library names, so order does not matter.
"""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate
from gatehouse.library import pages, shelf, zim
from gatehouse.quota import local_minute
from tests.conftest import Origin
from tests.helpers import CELL, INMATE, PIN, Platform, csrf_from, populate, staff_client

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def png() -> bytes:
    """A real 2x2 PNG, so a browser can decode it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x1d\x4f\x91" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def article(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><main><h1>{title}</h1>{body}</main></body></html>")


BREAD = article("Bread", '<p>Bread is baked from flour, water and a sourdough starter.</p>'
                '<p><img src="../I/loaf.png" alt="A loaf" width="40" height="40"></p>'
                '<p>Read about <a href="Water">water</a> or <a href="https://bakers.example.org/x">a bakery</a>.</p>'
                '<script>document.title = "ran"</script><p onclick="alert(1)">Crust.</p>')
SOURCES = (
    zim.Source("A/Bread", "Bread", "text/html", BREAD),
    zim.Source("A/Water", "Water", "text/html", article("Water", "<p>Water for the dough, from the tap.</p>")),
    zim.Source("A/Secret", "Secret recipe", "text/html", article("Secret recipe", "<p>A sourdough trick.</p>")),
    zim.Source("A/Private/One", "Private one", "text/html", article("Private one", "<p>sourdough one</p>")),
    zim.Source("I/loaf.png", "", "image/png", png(), article=False),
)


def build_zim(folder: Path, name: str = "bakery.zim", title: str = "Bakery", language: str = "eng") -> Path:
    return zim.build(folder / name, SOURCES, title=title, language=language, description="All about bread",
                     main="A/Bread")


def gatehouse_cli(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatehouse", *argv, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("html", "kept", "gone"), [
    ('<body><a href="https://out.example/p">out</a></body>', ["out", "(https://out.example/p)"],
     ["<a ", "href="]),
    ('<body><a href="//out.example/p">x</a></body>', ["(//out.example/p)"], ["href="]),
    ('<body><a href="javascript:alert(1)">x</a></body>', [], ["href=", "<a "]),
    ('<body><a href="Water">in</a></body>', ['<a href="Water">in</a>'], []),
    ('<body><a href="/A/Water">root</a></body>', ['href="/library/b/A/Water"'], []),
    ("<body><script>alert(1)</script><p>ok</p></body>", ["<p>ok</p>"], ["script", "alert"]),
    ('<body><p onclick="x()" onmouseover=y>t</p></body>', ["<p>t</p>"], ["onclick", "onmouseover"]),
    ('<body><iframe src="x"><p>in</p></iframe>after</body>', ["after"], ["iframe", "in</p>"]),
    ('<head><meta http-equiv="refresh" content="0;url=https://x"></head><body>t</body>', ["t"], ["refresh"]),
    ('<head><base href="https://evil/"></head><body>t</body>', [], ["base", "evil"]),
    ('<body><img src="https://x.example/i.png" alt="i"><img src="../I/a.png" alt="a"></body>',
     ['<img alt="i">', 'src="../I/a.png"'], ["x.example"]),
    ("<body><p>a &lt;b&gt; &amp; c</p></body>", ["a &lt;b&gt; &amp; c"], ["<b>"]),
    ('<html><body>t</body></html>', ['<html lang="en">'], []),
    ("<p>no body</p>", ["BAR<p>no body</p>"], []),
])
def test_an_article_is_rebuilt_without_scripts_or_ways_out(html: str, kept: list[str], gone: list[str]) -> None:
    out = pages.rewrite(html, bar="BAR", root="/library/b/", language="eng")
    for text in kept:
        assert text in out, out
    for text in gone:
        assert text not in out, out
    assert out.count("BAR") == 1


@pytest.mark.parametrize(("filename", "slug"), [
    ("wikipedia_en_simple_2024-01.zim", "wikipedia-en-simple-2024-01"), ("Bakery.zim", "bakery"),
    ("__x__.zim", "x"), ("a b.c.zim", "a-b-c")])
def test_a_library_is_named_from_its_file(filename: str, slug: str) -> None:
    assert shelf.slug_of(filename) == slug


def test_hidden_paths_and_prefixes() -> None:
    rules = [shelf.Rule(1, "A/Secret", False, "", "t", utcnow()), shelf.Rule(2, "A/Private/", True, "", "t", utcnow())]
    assert shelf.hidden_by(rules, "A/Secret") is rules[0]
    assert shelf.hidden_by(rules, "A/Secret2") is None
    assert shelf.hidden_by(rules, "A/Private/One") is rules[1]
    assert shelf.hidden_by(rules, "A/Bread") is None


def test_the_cli_adds_and_lists_and_refuses_what_is_not_a_zim(tmp_path: Path) -> None:
    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    source = build_zim(tmp_path, "Bakery_en_2024.zim")
    added = gatehouse_cli(settings.data_dir, "library", "add", str(source))
    assert added.returncode == 0, added.stderr
    assert "library bakery-en-2024: Bakery (eng), 4 articles" in added.stdout
    assert (settings.data_dir / "library" / "bakery-en-2024.zim").read_bytes() == source.read_bytes()
    named = gatehouse_cli(settings.data_dir, "library", "add", str(source), "--name", "bread")
    assert named.returncode == 0, named.stderr
    again = gatehouse_cli(settings.data_dir, "library", "add", str(source), "--name", "bread")
    assert again.returncode == 2 and "a library named 'bread' is on the shelf already" in again.stderr
    fake = tmp_path / "notes.zim"
    fake.write_text("just some text", encoding="utf-8")
    refused = gatehouse_cli(settings.data_dir, "library", "add", str(fake))
    assert refused.returncode == 2
    assert "notes.zim is not a ZIM file" in refused.stderr
    assert not (settings.data_dir / "library" / "notes.zim").exists()
    bad_name = gatehouse_cli(settings.data_dir, "library", "add", str(source), "--name", "Bad Name")
    assert bad_name.returncode == 2 and "is not a library name" in bad_name.stderr
    listed = gatehouse_cli(settings.data_dir, "library", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["bakery-en-2024", "bread"]
    assert "seen by everyone" in lines[0] and lines[0].endswith("Bakery")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    folder = tmp_path_factory.mktemp("library")
    settings = initialise(folder / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    (settings.policy_dir / "quotas.yaml").write_text("quotas:\n  groups:\n    no-reading: {library: 0}\n",
                                                     encoding="utf-8")
    populate(settings)
    settings = settings.replace(login__attempts_per_address=1000)
    source = build_zim(folder)
    async with running(settings) as up:
        def seed() -> None:
            with up.kernel.factory.begin() as session:
                for name in ("bakery", "hiding", "kept"):
                    shelf.add(session, settings.data_dir, source, name=name, by="teacher", now=utcnow())
                shelf.set_groups(session, settings.data_dir, "kept", "school")
                facility = ensure_facility(session, settings)
                add_inmate(session, facility, number="S300", name="Student", groups=["school"], pin=PIN)
                add_inmate(session, facility, number="N400", name="No Reading", groups=["no-reading"], pin=PIN)
        await asyncio.to_thread(seed)
        yield Platform(up, Origin(), settings)


@pytest_asyncio.fixture(loop_scope="module")
async def reader(site: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with site.client(CELL) as client:
        response = await site.login(client)
        assert response.url.path == "/home"
        yield client


@IN_MODULE_LOOP
async def test_anonymous_requests_are_sent_to_the_login(site: Platform) -> None:
    async with site.client(CELL) as client:
        for path in ("/library", "/library/bakery", "/library/bakery/A/Bread", "/library/bakery/I/loaf.png",
                     "/library/bakery/search?q=bread"):
            async with client.get(site.portal + path, allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/login", path
                assert "sourdough" not in await resp.text()


@IN_MODULE_LOOP
async def test_an_inmate_reads_an_article_and_its_image(site: Platform, reader: aiohttp.ClientSession) -> None:
    async with reader.get(site.portal + "/library/bakery", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/library/bakery/A/Bread"
    async with reader.get(site.portal + "/library/bakery/A/Bread") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'none'" in csp and "default-src 'none'" in csp
        body = await resp.text()
    assert "sourdough starter" in body and 'data-testid="library-bar"' in body
    assert "<script" not in body and "onclick" not in body
    assert 'href="https://bakers.example.org' not in body and "(https://bakers.example.org/x)" in body
    async with reader.get(site.portal + "/library/bakery/I/loaf.png") as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert await resp.read() == png()
    async with reader.get(site.portal + "/library/bakery/A/Nothing") as resp:
        assert resp.status == 404


@IN_MODULE_LOOP
async def test_each_article_opened_is_on_the_audit_record_and_spends_library_minutes(
        site: Platform, reader: aiohttp.ClientSession) -> None:
    for path in ("A/Water", "A/Bread"):
        async with reader.get(f"{site.portal}/library/bakery/{path}") as resp:
            assert resp.status == 200
    opened = site.records(tag="library:article:opened", actor=INMATE)
    paths = [r.path for r in opened]
    assert "/library/bakery/A/Water" in paths and "/library/bakery/A/Bread" in paths
    assert all(r.terminal == "cell-1" for r in opened)
    assert not [r for r in opened if r.path.endswith("loaf.png")]
    minute = local_minute(utcnow(), site.up.kernel.policies.snapshot.timezone)
    assert await site.up.kernel.quota.usage(INMATE, "library", minute.day) >= 1


@IN_MODULE_LOOP
async def test_without_library_minutes_an_inmate_cannot_read(site: Platform) -> None:
    async with site.client("127.0.0.2") as client:
        assert (await site.login(client, "N400", PIN)).url.path == "/home"
        async with client.get(site.portal + "/library/bakery/A/Bread") as resp:
            assert resp.status == 403
            body = await resp.text()
        assert "library time for today is used up" in body and "sourdough" not in body
        async with client.get(site.portal + "/library/bakery/search", params={"q": "sourdough"}) as resp:
            assert resp.status == 403
    assert site.records(tag="library:article:opened", actor="N400") == []


@IN_MODULE_LOOP
async def test_the_search_finds_articles_and_titles(site: Platform, reader: aiohttp.ClientSession) -> None:
    async with reader.get(site.portal + "/library/bakery/search", params={"q": "sourdough"}) as resp:
        assert resp.status == 200
        body = await resp.text()
    results = body.split('data-testid="results"')[1].split("</ul>")[0]
    assert 'href="/library/bakery/A/Bread"' in results
    async with reader.get(site.portal + "/library/bakery/search", params={"q": "Wat"}) as resp:
        titles = (await resp.text()).split('data-testid="titles"')[1].split("</ul>")[0]
    assert 'href="/library/bakery/A/Water"' in titles
    searched = site.records(tag="library:search", actor=INMATE)
    assert any(r.reason.startswith("bakery: sourdough") for r in searched)


@IN_MODULE_LOOP
async def test_staff_hide_a_page_and_a_prefix_which_are_then_404_and_not_found(
        site: Platform, reader: aiohttp.ClientSession) -> None:
    async with staff_client(site, "127.0.0.3", "librarian", ["education"]) as teacher:
        async with teacher.get(site.portal + "/library-admin") as page:
            assert page.status == 200
            token = csrf_from(await page.text())
        async with teacher.post(site.portal + "/library-admin/hiding/hide", data={
                "path": "", "note": "", "csrf_token": token}) as resp:
            assert resp.status == 400
            assert 'id="path-hiding-error"' in await resp.text()
        for path, prefix in (("A/Secret", ""), ("/A/Private/", "yes")):
            async with teacher.post(site.portal + "/library-admin/hiding/hide", data={
                    "path": path, "prefix": prefix, "note": "not for here", "csrf_token": token}) as resp:
                assert resp.status == 200 and resp.url.query.get("done") == "hidden", await resp.text()
    for path in ("A/Secret", "A/Private/One"):
        async with reader.get(f"{site.portal}/library/hiding/{path}") as resp:
            assert resp.status == 404
            body = await resp.text()
            assert "hidden by the facility" in body and "sourdough" not in body
        async with reader.get(f"{site.portal}/library/bakery/{path}") as resp:
            assert resp.status == 200, "hidden in one library only"
    async with reader.get(site.portal + "/library/hiding/search", params={"q": "sourdough"}) as resp:
        body = await resp.text()
    assert "/library/hiding/A/Bread" in body
    assert "A/Secret" not in body and "A/Private" not in body
    hidden = site.records(tag="library:article:hidden", actor="librarian")
    assert {r.reason for r in hidden} == {"hiding: A/Secret hidden; not for here",
                                          "hiding: everything under A/Private/ hidden; not for here"}


@IN_MODULE_LOOP
async def test_a_library_kept_to_a_group_is_invisible_and_404_outside_it(
        site: Platform, reader: aiohttp.ClientSession) -> None:
    async with reader.get(site.portal + "/library") as resp:
        catalogue = await resp.text()
    assert 'data-library="bakery"' in catalogue and 'data-library="kept"' not in catalogue
    assert "English" in catalogue
    for path in ("/library/kept", "/library/kept/A/Bread", "/library/kept/I/loaf.png", "/library/kept/search?q=a"):
        async with reader.get(site.portal + path, allow_redirects=False) as resp:
            assert resp.status == 404, path
            assert "sourdough" not in await resp.text()
    async with site.client("127.0.0.2") as student:
        assert (await site.login(student, "S300", PIN)).url.path == "/home"
        async with student.get(site.portal + "/library") as resp:
            assert 'data-library="kept"' in await resp.text()
        async with student.get(site.portal + "/library/kept/A/Bread") as resp:
            assert resp.status == 200 and "sourdough" in await resp.text()


@IN_MODULE_LOOP
async def test_staff_choose_groups_and_a_wrong_name_keeps_what_was_typed(site: Platform) -> None:
    async with staff_client(site, "127.0.0.4", "shelver", ["education"]) as teacher:
        async with teacher.get(site.portal + "/library-admin") as page:
            token = csrf_from(await page.text())
        async with teacher.post(site.portal + "/library-admin/kept/groups", data={
                "groups": "school, bad group!", "csrf_token": token}) as resp:
            assert resp.status == 400
            body = await resp.text()
        assert 'id="groups-kept-error"' in body and 'value="school, bad group!"' in body
        async with teacher.post(site.portal + "/library-admin/kept/groups", data={
                "groups": "school, workshop", "csrf_token": token}) as resp:
            assert resp.status == 200 and resp.url.query.get("done") == "groups"
        async with teacher.get(site.portal + "/library/kept/A/Bread") as resp:
            assert resp.status == 200, "staff read every library"
    changed = site.records(tag="library:groups:changed", actor="shelver")
    assert [r.reason for r in changed] == ["kept: seen by school, workshop (before: school)"]
    assert re.search(r"workshop", changed[0].reason)


def test_the_demo_puts_a_searchable_library_on_the_shelf(tmp_path: Path) -> None:
    from gatehouse.demo.run import populate as demo_populate
    from gatehouse.kernel import Kernel

    settings = initialise(tmp_path / "data", {"portal.port": 0, "proxy.port": 0}, quiet=True)
    demo_populate(settings)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            found = shelf.find(session, settings.data_dir, "reading-room")
    finally:
        kernel.engine.dispose()
    assert found is not None and found.article_count == 4 and not found.groups
    assert zim.main_path(found.file) == "Welcome"
    assert [p.path for p in zim.search(found.file, "tenancy deposit", 5)] == ["Tenancy"]
    image = zim.entry(found.file, "book.png")
    assert image is not None and image.mimetype == "image/png"
