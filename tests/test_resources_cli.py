"""`gatehouse resources import / export / check-links` run as an operator runs them (a subprocess): a feed with
problems prints each as FILE:LINE and imports nothing; a good one imports, and again updates by id; an export reads
back as the same directory; the link check visits each website through the upstream checks over real TLS and
marks it ok, redirected or dead, with one audit record.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from sqlalchemy import func, select

from gatehouse.cli.ops import initialise
from gatehouse.db.models import AuditRecord
from gatehouse.kernel import Kernel
from gatehouse.resources import hsds
from gatehouse.resources.models import Service
from tests.conftest import HOSTS, Origin, serve_origin
from tests.helpers import free_port
from tests.test_cli import gatehouse

SAMPLE = Path(__file__).parent / "data" / "hsds" / "sample"


def count(kernel: Kernel) -> int:
    with kernel.factory() as session:
        return int(session.scalar(select(func.count()).select_from(Service)) or 0)


def records(kernel: Kernel, tag: str) -> list[str]:
    with kernel.factory() as session:
        return [r.reason for r in session.scalars(select(AuditRecord).where(AuditRecord.tag == tag))]


def test_import_export_and_import_again(tmp_path: Path, database_url: str) -> None:
    settings = initialise(tmp_path / "data", {"database.url": database_url}, quiet=True)
    kernel = Kernel.open(settings)
    try:
        broken = tmp_path / "broken"
        shutil.copytree(SAMPLE, broken)
        with (broken / "service.csv").open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        rows[0]["assured_date"] = "2025-13-01"  # the first row starts on line 2, however many lines it spans
        with (broken / "service.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        phones = (broken / "phone.csv").read_text(encoding="utf-8")
        orphan_line = len(phones.splitlines()) + 1
        (broken / "phone.csv").write_text(phones.rstrip("\n") + "\nph-orphan,svc-nowhere,,,+32 9 999 99 99,,,\n",
                                          encoding="utf-8")
        result = gatehouse(settings.data_dir, "resources", "import", str(broken))
        assert result.returncode == 1, result.stdout
        assert "service.csv:2: assured_date '2025-13-01' is not a date (YYYY-MM-DD)" in result.stderr
        assert f"phone.csv:{orphan_line}: " in result.stderr and "svc-nowhere" in result.stderr, result.stderr
        assert "nothing was imported" in result.stderr
        assert count(kernel) == 0

        result = gatehouse(settings.data_dir, "resources", "import", str(SAMPLE))
        assert result.returncode == 0, result.stderr
        feed = hsds.read(SAMPLE)
        assert f"{len(feed.services)} entries added, 0 changed, 0 unchanged" in result.stdout
        assert count(kernel) == len(feed.services)
        assert any("entries added" in r for r in records(kernel, "resources:directory:imported"))

        out = tmp_path / "out"
        result = gatehouse(settings.data_dir, "resources", "export", "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert hsds.read(out) == hsds.read(out / "datapackage.json")
        assert sorted(hsds.read(out).services, key=lambda s: s.id) == sorted(feed.services, key=lambda s: s.id)

        first = feed.services[0]
        changed = replace(feed, services=(replace(first, description="Rewritten by the feed."), *feed.services[1:]))
        hsds.write_json(changed, tmp_path / "again.json")
        result = gatehouse(settings.data_dir, "resources", "import", str(tmp_path / "again.json"))
        assert result.returncode == 0, result.stderr
        assert f"0 entries added, 1 changed, {len(feed.services) - 1} unchanged" in result.stdout
        with kernel.factory() as session:
            assert session.get(Service, first.id).description == "Rewritten by the feed."
    finally:
        kernel.engine.dispose()


@pytest.fixture
async def site(test_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Origin]:
    result = Origin()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/old":
            raise web.HTTPFound("/new-place")
        if request.path == "/gone":
            raise web.HTTPNotFound()
        return web.Response(text="<html><title>Service</title><p>Open Monday to Friday.</p></html>",
                            content_type="text/html")

    async with serve_origin(result, handler, test_ca, tmp_path):
        yield result


async def test_check_links_marks_each_website(tmp_path: Path, site: Origin) -> None:
    closed = free_port()
    resolve = [f"{h}:443=127.0.0.1:{site.https_port}" for h in HOSTS if h != "lms.test"]
    resolve.append(f"lms.test:443=127.0.0.1:{closed}")
    settings = initialise(tmp_path / "data", {"proxy.resolve": resolve,
                                              "proxy.upstream_ca_file": str(site.ca_file)}, quiet=True)
    (settings.policy_dir / "example.yaml").unlink(missing_ok=True)
    # Loopback is an internal address: only a host a rule names exactly may be reached there, as in the gateway.
    (settings.policy_dir / "sites.yaml").write_text(
        "rules:\n  - id: services\n    allow: [allowed.test, other.test, lms.test]\n", encoding="utf-8")
    feed = hsds.read(SAMPLE)
    urls = ["https://allowed.test/", "https://allowed.test/old", "https://other.test/gone", "https://lms.test/",
            "https://mail.test/"]
    services = tuple(replace(s, url=u) for s, u in zip(feed.services, urls, strict=False))
    hsds.write_package(replace(feed, services=services), tmp_path / "feed")
    assert gatehouse(settings.data_dir, "resources", "import", str(tmp_path / "feed")).returncode == 0

    # In a thread: the origin answers on this test's event loop, which a blocking wait would stop.
    result = await asyncio.to_thread(gatehouse, settings.data_dir, "resources", "check-links")
    assert result.returncode == 1, result.stdout + result.stderr
    states = {line.split("\t")[2]: line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line}
    assert states == {"https://allowed.test/": "ok", "https://allowed.test/old": "redirected",
                      "https://other.test/gone": "dead", "https://lms.test/": "dead", "https://mail.test/": "dead"}
    assert "now at https://allowed.test/new-place" in result.stdout
    assert "answers 404" in result.stdout
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            kept = {s.url: (s.link_state, s.link_detail) for s in session.scalars(select(Service))
                    if s.url in urls}
        assert kept["https://allowed.test/old"] == ("redirected", "now at https://allowed.test/new-place")
        assert "internal" in kept["https://mail.test/"][1] or "not" in kept["https://mail.test/"][1]
        (reason,) = records(kernel, "resources:links:checked")
        assert reason.startswith("1 ok, 1 redirected, 3 dead")
    finally:
        kernel.engine.dispose()
