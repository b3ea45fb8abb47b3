"""`gatehouse run` and `gatehouse demo` as real processes: they come up, work, and stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pyotp
import pytest

from tests.conftest import Origin
from tests.helpers import csrf_from

pytestmark = [pytest.mark.usefixtures("curl_bin"), pytest.mark.filterwarnings("ignore::ResourceWarning")]


@asynccontextmanager
async def started(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str, list[str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatehouse.cli", *args, "--portal-port", "0", "--proxy-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    portal = proxy = ""
    try:
        async with asyncio.timeout(60):
            while not (portal and proxy):
                line = (await proxy_line(proc)).rstrip()
                lines.append(line)
                if m := re.search(r"portal:\s+(http://\S+?)/?$", line):
                    portal = m.group(1)
                if m := re.search(r"gateway:\s+(\S+:\d+)", line):
                    proxy = m.group(1)
                if line.startswith("gatehouse:"):
                    raise AssertionError(line)
        yield proc, portal, proxy, lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def proxy_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise AssertionError("the command exited before it was ready")
    return line.decode()


async def login(portal: str, number: str, pin: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{portal}/login") as page:
            token = csrf_from(await page.text())
        async with client.post(f"{portal}/login", data={"inmate_number": number, "pin": pin,
                                                        "csrf_token": token}) as resp:
            assert resp.url.path == "/home", await resp.text()


ROLE_WORDS = {"admin": "Administrator", "security": "Security", "education": "Education",
              "supervisor": "Visit supervisor"}


async def staff_login(portal: str, username: str, password: str) -> list[str]:
    """Password, then enrolment with the key the page shows, as a person with a phone app would; the roles shown."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{portal}/staff/login") as page:
            token = csrf_from(await page.text())
        async with client.post(f"{portal}/staff/login", data={"username": username, "password": password,
                                                              "csrf_token": token}) as resp:
            page_text = await resp.text()
            assert resp.url.path == "/staff/enrol" and 'src="data:image/svg+xml' in page_text, page_text
        key = re.search(r'data-testid="secret">([^<]+)<', page_text).group(1)  # type: ignore[union-attr]
        code = pyotp.TOTP(key.replace(" ", "")).now()
        async with client.post(f"{portal}/staff/enrol", data={"code": code,
                                                              "csrf_token": csrf_from(page_text)}) as resp:
            assert resp.status == 200 and "recovery-codes" in await resp.text()
        async with client.get(f"{portal}/staff") as resp:
            found = re.search(r'data-testid="roles">([^<]*)<', await resp.text())
            return found.group(1).split(", ") if found else []


async def fetch(proxy: str, url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-k", "--max-time", "15", "--proxy", f"http://{proxy}", "-w", "\n%{http_code}", url,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


async def stop(proc: asyncio.subprocess.Process, sig: int) -> str:
    proc.send_signal(sig)
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        rest = await proc.stdout.read()
        await proc.wait()
    assert proc.returncode == 0, rest.decode()
    return rest.decode()


async def test_demo_comes_up_and_works_as_it_says(tmp_path: Path) -> None:
    async with started("demo") as (proc, portal, proxy, lines):
        text = "\n".join(lines)
        data_dir = Path(re.search(r"data dir:\s+(\S+)", text).group(1))  # type: ignore[union-attr]
        assert data_dir.is_dir()
        while "--ignore-certificate-errors-spki-list" not in text:
            text += await proxy_line(proc)
        assert "A1001 / 1234" in text and "chromium" in text
        status, body = await fetch(proxy, "http://learn.demo.test/")
        assert status == 403 and "Please log in first" in body
        await login(portal, "A1001", "1234")
        for url, expected, words in (
            ("http://learn.demo.test/", 200, "<h1>Learning</h1>"),
            ("https://jobs.demo.test/", 200, "<h1>Jobs</h1>"),
            ("https://mail.demo.test/", 403, "demo-no-mail"),
            ("http://games.demo.test/", 403, "games.demo.test"),
        ):
            status, body = await fetch(proxy, url)
            assert (status, words in body) == (expected, True), (url, body[:300])
        while "At first login each account" not in text:
            text += await proxy_line(proc)
        password = re.search(r"with password '([^']+)'", text).group(1)  # type: ignore[union-attr]
        accounts = re.findall(r"^  (\w+) +(admin|security|education|supervisor)$", text, re.M)
        assert sorted(role for _, role in accounts) == ["admin", "education", "security", "supervisor"]
        for username, role in accounts:
            assert await staff_login(portal, username, password) == [ROLE_WORDS[role]]
        await stop(proc, signal.SIGINT)
    assert not data_dir.exists()


async def test_run_on_a_data_dir_made_with_the_cli(tmp_path: Path, origin: Origin) -> None:
    """The foundation scenario on a real data dir: init, terminal add, inmate add and a policy file."""
    data_dir = str(tmp_path / "data")
    for args, stdin in ((["init"], None),
                        (["terminal", "add", "--name", "cell-1", "--address", "127.0.0.1", "--kind", "cell"], None),
                        (["inmate", "add", "--number", "A7", "--name", "Jo Smets", "--pin-stdin"], "8642\n")):
        result = subprocess.run([sys.executable, "-m", "gatehouse.cli", *args, "--data-dir", data_dir],
                                input=stdin, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    (Path(data_dir) / "policies" / "site.yaml").write_text("rules:\n  - id: site\n    allow: [allowed.test]\n")
    config = Path(data_dir) / "gatehouse.toml"
    config.write_text(config.read_text().replace('# upstream_ca_file = ""', f'upstream_ca_file = "{origin.ca_file}"'))
    async with started("run", "--data-dir", data_dir,
                       "--resolve", f"allowed.test:80=127.0.0.1:{origin.http_port}",
                       "--resolve", f"allowed.test:443=127.0.0.1:{origin.https_port}",
                       "--resolve", f"other.test=127.0.0.1:{origin.http_port}") as (proc, portal, proxy, _):
        async with aiohttp.ClientSession() as client, client.get(f"{portal}/healthz") as resp:
            assert resp.status == 200
        assert (await fetch(proxy, "http://allowed.test/"))[0] == 403
        await login(portal, "A7", "8642")
        assert await fetch(proxy, "http://allowed.test/a") == (200, "origin allowed.test GET /a 0")
        assert await fetch(proxy, "https://allowed.test/b") == (200, "origin allowed.test GET /b 0")
        status, body = await fetch(proxy, "http://other.test/")
        assert status == 403 and "code: no-match" in body
        output = await stop(proc, signal.SIGTERM)
    assert "stopping" in output
    assert origin.seen == [("GET", "allowed.test", "/a"), ("GET", "allowed.test", "/b")]
    export = subprocess.run([sys.executable, "-m", "gatehouse.cli", "audit", "export", "--data-dir", data_dir],
                            capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    tags = [line["tag"] for line in lines if line["kind"] == "record"]
    assert any(line["kind"] == "checkpoint" for line in lines), "the copy carries the checkpoint made at shutdown"
    assert tags.count("gateway:request:allowed") == 2 and "portal:login:success" in tags
