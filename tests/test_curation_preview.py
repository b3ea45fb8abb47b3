"""Previews of requested pages: fetched by the server through the gateway's upstream checks, over real sockets
to a loopback TLS origin, read without running anything, and compared on a second look."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from gatehouse.curation.preview import (
    Preview,
    drift,
    fetch_preview,
    read_html,
    trust_for,
)
from gatehouse.settings import Resolve, ResolveTable, load_settings, resolve_table
from gatehouse.upstream import upstream_context
from policies.rules import parse_policy
from policies.snapshot import Snapshot
from tests.conftest import HOSTS, Origin, serve_origin

POLICY = """\
rules:
  - id: named
    allow: [allowed.test, other.test]
  - id: below
    allow: ["*.allowed.test"]
"""
PAGE = """<!doctype html>
<html><head><title> Find   a
  job </title>
<script>document.write("SCRIPT-TEXT"); fetch("/beacon")</script>
<style>.hidden { content: "STYLE-TEXT" }</style></head>
<body onload="fetch('/onload')">
<h1>Jobs</h1><p>Search   the
   listings <b>today</b>.</p>
<a href="/jobs?page=2">More jobs</a> <a href="https://other.test/about"><img alt="About us"></a>
<a href="javascript:void(0)">Nothing</a>
<form action="/search"><input name="q"><button>Search</button></form>
<form method="Post" action="https://collect.example/in" enctype="multipart/form-data">
  <input name="user"><input type="password" name="pw"><input type="file" name="cv">
</form>
</body></html>"""
FOOTER_FORM = '<form method="post" action="https://collect.example/in"><input type="password" name="pw"></form>'


@dataclass
class Pages(Origin):
    """The conftest origin's ports and CA, serving the HTML in `pages`; it records each request's headers."""

    pages: dict[str, str] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def site(test_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Pages]:
    result = Pages(pages={"/page": PAGE, "/plain": "<html><title>Plain</title><p>Nothing to see.</p></html>"})

    async def handler(request: web.Request) -> web.Response:
        result.seen.append((request.method, request.host.split(":")[0], request.path_qs))
        result.headers.append({name.lower(): value for name, value in request.headers.items()})
        if request.path == "/redirect":
            return web.Response(status=302, headers={"Location": request.query["to"]})
        if request.path == "/cookie":
            return web.Response(status=302, headers={"Location": "/plain", "Set-Cookie": "session=s3cret; Path=/"})
        if request.path == "/big":
            padding = "<p>" + "filler " * (int(request.query["n"]) // 7) + "</p>"
            return web.Response(text=f"<html><body>{padding}{FOOTER_FORM}</body></html>", content_type="text/html")
        if request.path == "/gzip":
            return web.Response(body=gzip.compress(PAGE.encode()),
                                headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
        return web.Response(text=result.pages[request.path], content_type="text/html")

    async with serve_origin(result, handler, test_ca, tmp_path):
        yield result


def table_for(site: Pages, *extra: str) -> ResolveTable:
    """The test hosts to the origin, as platform_settings does, and `extra` HOST=ADDR:PORT entries."""
    entries = [f"{h}:443=127.0.0.1:{site.https_port}" for h in HOSTS]
    entries += [f"{h}:80=127.0.0.1:{site.http_port}" for h in HOSTS]
    return resolve_table(tuple(Resolve.parse(e) for e in [*entries, *extra]))


def snapshot(text: str = POLICY) -> Snapshot:
    result = parse_policy(text, "preview.yaml")
    assert result.errors == []
    return Snapshot.build(result.rules)


async def fetch(site: Pages, url: str, *extra: str, policy: Snapshot | None = None, **options: int) -> Preview:
    trust = trust_for(load_settings(site.ca_file.parent, {"GATEHOUSE_PROXY_UPSTREAM_CA_FILE": str(site.ca_file)}))
    return await fetch_preview(url, table=table_for(site, *extra), policy=policy or snapshot(), trust=trust,
                               timeout=3, **options)


async def test_a_page_is_read_without_running_it(site: Pages) -> None:
    preview = await fetch(site, "https://allowed.test/page")
    assert preview.error == ""
    assert (preview.status, preview.content_type, preview.final_url) == (200, "text/html",
                                                                          "https://allowed.test/page")
    assert preview.title == "Find a job"
    assert preview.excerpt.startswith("Jobs Search the listings today. More jobs")
    assert "SCRIPT" not in preview.excerpt and "STYLE" not in preview.excerpt and "fetch" not in preview.excerpt
    assert [(link.text, link.href) for link in preview.links] == [
        ("More jobs", "https://allowed.test/jobs?page=2"), ("About us", "https://other.test/about")]
    search, upload = preview.forms
    assert (search.method, search.action, search.elsewhere) == ("GET", "https://allowed.test/search", False)
    assert [(f.name, f.type) for f in search.fields] == [("q", "text")]
    assert (upload.method, upload.action, upload.elsewhere) == ("POST", "https://collect.example/in", True)
    assert [(f.name, f.type) for f in upload.fields] == [("user", "text"), ("pw", "password"), ("cv", "file")]
    assert upload.has_password and upload.has_file and not search.has_password
    assert preview.flags == {"form-elsewhere", "login", "upload", "post"}
    # Only the page itself was asked for: no script, no onload handler, no image ran or loaded.
    assert [path for _, _, path in site.seen] == ["/page"]


async def test_a_preview_survives_json(site: Pages) -> None:
    preview = await fetch(site, "https://allowed.test/page")
    assert preview.forms and preview.flags
    assert Preview.from_json(json.loads(json.dumps(preview.to_json()))) == preview


async def test_no_cookie_no_credentials_and_a_plain_user_agent(site: Pages) -> None:
    preview = await fetch(site, "https://someone:password@allowed.test/cookie")
    assert (preview.error, preview.final_url, preview.title) == ("", "https://allowed.test/plain", "Plain")
    assert [path for _, _, path in site.seen] == ["/cookie", "/plain"]
    for headers in site.headers:
        assert {"cookie", "authorization"}.isdisjoint(headers), headers
        assert "Gatehouse-preview" in headers["user-agent"]
        assert headers["host"] == "allowed.test"


async def test_a_redirect_is_followed_and_its_target_checked(site: Pages) -> None:
    preview = await fetch(site, "https://allowed.test/redirect?to=https://other.test/plain")
    assert (preview.error, preview.final_url, preview.title) == ("", "https://other.test/plain", "Plain")
    assert site.seen == [("GET", "allowed.test", "/redirect?to=https://other.test/plain"),
                         ("GET", "other.test", "/plain")]


async def test_a_redirect_to_an_internal_address_is_refused(site: Pages) -> None:
    # rebind.allowed.test is covered only by *.allowed.test and resolves to the loopback origin.
    preview = await fetch(site, "https://allowed.test/redirect?to=https://rebind.allowed.test/plain")
    assert "rebind.allowed.test resolves to 127.0.0.1, an internal address" in preview.error
    assert [host for _, host, _ in site.seen] == ["allowed.test"]


@pytest.mark.parametrize(("redirect", "problem"), [
    ("file:///etc/passwd", "only http and https"),
    ("/redirect?to=/plain", "more than 1 redirects"),
])
async def test_a_redirect_that_leaves_the_web_or_goes_on_and_on_stops(site: Pages, redirect: str,
                                                                      problem: str) -> None:
    preview = await fetch(site, f"https://allowed.test/redirect?to={redirect}", max_redirects=1)
    assert problem in preview.error and preview.status == 0


@pytest.mark.parametrize(("host", "address"), [
    ("rebind.allowed.test", "127.0.0.1"),
    ("www.allowed.test", "10.20.30.40"),
    ("cdn.allowed.test", "169.254.169.254"),
    ("lms.test", "::1"),
])
async def test_a_name_resolving_to_an_internal_address_is_refused(site: Pages, host: str, address: str) -> None:
    port = site.https_port if address == "127.0.0.1" else 443
    preview = await fetch(site, f"https://{host}/plain", f"{host}:443=[{address}]:{port}")
    assert preview.error == (f"{host} resolves to {address}, an internal address; only a rule that names {host} "
                             f"exactly may reach it")
    assert site.seen == []


async def test_a_name_found_in_dns_is_checked_too(site: Pages) -> None:
    preview = await fetch(site, f"http://localhost:{site.http_port}/plain")
    assert "localhost resolves to" in preview.error and "internal address" in preview.error
    assert site.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "0x7f.0.0.1", "2130706433"])
async def test_an_internal_address_written_as_a_number_is_refused(site: Pages, host: str) -> None:
    preview = await fetch(site, f"http://{host}:{site.http_port}/plain")
    assert "an internal address" in preview.error
    assert site.seen == []


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_host_a_rule_names_exactly_may_be_internal(site: Pages, scheme: str) -> None:
    named = await fetch(site, f"{scheme}://allowed.test/plain")
    assert (named.error, named.title) == ("", "Plain")
    only_below = await fetch(site, f"{scheme}://allowed.test/plain",
                             policy=snapshot(POLICY.replace("allowed.test, ", "")))
    assert "allowed.test resolves to 127.0.0.1, an internal address" in only_below.error
    assert len(site.seen) == 1


@pytest.mark.parametrize("spelling", ["ALLOWED.test", "allowed.test.", "Allowed.Test.:443"])
async def test_the_host_is_put_in_canonical_form_as_the_gateway_does(site: Pages, spelling: str) -> None:
    preview = await fetch(site, f"https://{spelling}/plain")
    assert (preview.error, preview.final_url) == ("", "https://allowed.test/plain")
    assert site.headers[0]["host"] == "allowed.test"


async def test_the_origin_must_prove_its_name_with_the_trusted_ca(site: Pages) -> None:
    preview = await fetch_preview("https://allowed.test/plain", table=table_for(site), policy=snapshot(), timeout=3)
    assert "certificate of allowed.test does not verify" in preview.error
    assert site.seen == []


async def test_only_max_bytes_are_read(site: Pages) -> None:
    whole = await fetch(site, "https://allowed.test/big?n=20000")
    assert not whole.truncated and "login" in whole.flags
    cut = await fetch(site, "https://allowed.test/big?n=20000", max_bytes=10_000)
    assert cut.truncated and cut.flags == frozenset() and cut.forms == ()
    assert cut.excerpt.startswith("filler filler")


async def test_a_compressed_page_is_read_within_max_bytes(site: Pages) -> None:
    preview = await fetch(site, "https://allowed.test/gzip")
    assert (preview.error, preview.title, preview.truncated) == ("", "Find a job", False)
    cut = await fetch(site, "https://allowed.test/gzip", max_bytes=200)
    assert cut.truncated and cut.forms == ()


@pytest.mark.parametrize("url", ["ftp://allowed.test/", "javascript:alert(1)", "https:///nohost", "http://a b/"])
async def test_only_web_addresses_are_fetched(site: Pages, url: str) -> None:
    preview = await fetch(site, url)
    assert preview.error and preview.status == 0
    assert site.seen == []


async def test_the_second_look_names_what_appeared(site: Pages) -> None:
    site.pages["/apply"] = '<form method="post" action="/apply"><input name="name"></form>'
    before = await fetch(site, "https://allowed.test/apply")
    assert drift(before, await fetch(site, "https://allowed.test/apply")) == []
    site.pages["/apply"] = ('<form method="post" action="https://collect.example/apply"><input name="name"></form>'
                            '<form method="post" action="/login"><input name="u"><input type="password" name="p">'
                            '</form>')
    lines = drift(before, await fetch(site, "https://allowed.test/apply"))
    assert lines == [
        "New on the page: a form that sends what is typed to another site.",
        "New on the page: a password field (a login).",
        "A form (fields: name) now sends to collect.example instead of allowed.test.",
        "A new form: POST https://allowed.test/login (fields: u, p).",
    ]


def test_removed_things_and_changing_tokens_are_no_concern() -> None:
    before = read_html('<form method="post" action="/send?token=1"><textarea name="message"></textarea></form>'
                       '<input type="password" name="p">', "https://allowed.test/")
    after = read_html('<form method="post" action="/send?token=2"><textarea name="message"></textarea></form>',
                      "https://allowed.test/")
    assert before.flags == {"login", "mail", "post"}
    assert drift(before, after) == []
    assert drift(after, before) == ["New on the page: a password field (a login)."]


def test_a_second_look_that_fails_is_reported() -> None:
    before = read_html("<p>fine</p>", "https://allowed.test/")
    assert drift(before, Preview("https://allowed.test/", error="allowed.test cannot be resolved")) == [
        "The page could not be looked at again: allowed.test cannot be resolved"]
    moved = read_html("<p>fine</p>", "https://parked.example/")
    assert drift(before, moved) == ["The address now leads to parked.example instead of allowed.test."]


@pytest.mark.parametrize(("html", "flags"), [
    ('<a href="mailto:a@b.test">write</a>', {"mail"}),
    ('<form action="mailto:a@b.test"><input name="x"></form>', {"mail"}),
    ('<form><input name="mailTo"><textarea name="text"></textarea></form>', {"mail"}),
    ('<form method="post"><input name="email"><textarea name="message"></textarea></form>', {"mail", "post"}),
    ('<form><input name="q"><textarea name="notes"></textarea></form>', set()),
    ('<form><input name="subject"></form>', set()),
    ("<title>Webmail</title>", {"mail"}),
    ('<a href="/c">Compose</a>', {"mail"}),
    ("<p>How to compose an essay</p>", set()),
    ('<form><button formmethod="post" formaction="https://x.test/">Go</button></form>', {"post", "form-elsewhere"}),
    ('<form action="https://allowed.test/elsewhere?x"><input name="q"></form>', set()),
    ('<form action="https://www.allowed.test/"><input name="q"></form>', {"form-elsewhere"}),
    ('<form action="/a" action="https://x.test/"><input name="q"></form>', set()),
    ('<input type="password" name="p">', {"login"}),
    ('<form enctype="multipart/form-data" method="post"><input name="a"></form>', {"upload", "post"}),
    ('<form method="dialog"><button>Close</button></form>', set()),
    ('<form method="PUT"><input name="a"></form>', set()),
    ("<script>'<form method=post action=https://x.test/><input type=password>'</script>", set()),
    ('<template><form method="post" action="https://x.test/"></form></template>', {"post", "form-elsewhere"}),
])
def test_flags(html: str, flags: set[str]) -> None:
    assert read_html(html, "https://allowed.test/page").flags == flags


def test_base_and_excerpt_length() -> None:
    preview = read_html('<base href="https://cdn.allowed.test/x/"><a href="y">Y</a><p>' + "word " * 500,
                        "https://allowed.test/")
    assert preview.links[0].href == "https://cdn.allowed.test/x/y"
    assert len(preview.excerpt) <= 601 and preview.excerpt.endswith("word…")


def test_trust_is_the_gateways(tmp_path: Path, test_ca: trustme.CA) -> None:
    ca_file = tmp_path / "extra-ca.pem"
    test_ca.cert_pem.write_to_path(str(ca_file))
    settings = load_settings(tmp_path, {"GATEHOUSE_PROXY_UPSTREAM_CA_FILE": str(ca_file)})
    ours, gateways = trust_for(settings).get_ca_certs(), upstream_context(str(ca_file)).get_ca_certs()
    assert ours == gateways and len(ours) > len(trust_for(load_settings(tmp_path, {})).get_ca_certs())
