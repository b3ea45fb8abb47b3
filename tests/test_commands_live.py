"""`gatehouse run` and `gatehouse demo` as real processes: they come up, work, and stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

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
        await stop(proc, signal.SIGINT)
    assert not data_dir.exists()


async def test_run_serves_a_data_dir_and_stops_on_sigterm(tmp_path: Path) -> None:
    from gatehouse.cli.ops import initialise

    data_dir = tmp_path / "data"
    initialise(data_dir, quiet=True)
    async with started("run", "--data-dir", str(data_dir)) as (proc, portal, proxy, _):
        async with aiohttp.ClientSession() as client, client.get(f"{portal}/healthz") as resp:
            assert resp.status == 200
        status, body = await fetch(proxy, "http://example.test/")
        assert status == 403 and "not a registered terminal" in body
        output = await stop(proc, signal.SIGTERM)
    assert "stopping" in output
