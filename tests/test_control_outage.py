"""A database outage as the gateway's reading of control events sees it: one log line when the database goes,
one when it is back (not one every half second: 7,200 an hour), and the reading resumes where it stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatehouse import control
from gatehouse.bus import ControlEvent, InmateResumed, encode
from gatehouse.cli.ops import initialise
from gatehouse.cli.serve import running
from gatehouse.db.engine import utcnow
from gatehouse.db.models import ControlEventRow
from gatehouse.kernel import Kernel
from tests.conftest import Origin, platform_settings
from tests.helpers import INMATE, Platform
from tests.test_audit_durability import _allow_connections

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
async def pg_platform(tmp_path: Path, origin: Origin, postgres_url: str) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path / "data", origin, postgres_url)
    try:
        async with running(settings) as up:
            yield Platform(up, origin, settings)
    finally:
        _allow_connections(postgres_url, True)


def _about_control_events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.levelno >= logging.WARNING and "control events" in r.getMessage()]


async def test_a_database_outage_is_logged_once_and_its_end_once(pg_platform: Platform, postgres_url: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    kernel = pg_platform.up.kernel
    await asyncio.sleep(0.6)  # the follower has read where the events stand
    _allow_connections(postgres_url, False)
    await asyncio.sleep(3.2)  # six polls or more
    lines = _about_control_events(caplog)
    assert len(lines) == 1 and lines[0][0] == "ERROR", lines
    _allow_connections(postgres_url, True)
    async with asyncio.timeout(10):
        while len(lines := _about_control_events(caplog)) < 2:
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # more polls that work: nothing more is logged
    lines = _about_control_events(caplog)
    assert [level for level, _ in lines] == ["ERROR", "WARNING"], lines
    assert "again" in lines[1][1]

    # reading resumed where it stopped: an action written by another process now reaches this gateway
    gateway = pg_platform.up.gateway
    assert gateway is not None
    seen: list[str] = []
    original = gateway._on_event

    async def spy(event: ControlEvent) -> None:
        seen.append(type(event).__name__)
        await original(event)

    gateway._on_event = spy  # type: ignore[method-assign]
    with kernel.factory.begin() as session:
        control.suspend(session, INMATE, "test", "staff-1", utcnow())
    async with asyncio.timeout(5):
        while "InmateSuspended" not in seen:
            await asyncio.sleep(0.05)


async def test_a_database_away_when_the_follower_starts_is_waited_for(tmp_path: Path, postgres_url: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Before, the first read failing ended the follower for good: no control event reached the node again."""
    caplog.set_level(logging.INFO)
    kernel = Kernel.open(initialise(tmp_path / "data", {"database.url": postgres_url}, quiet=True))
    seen: list[ControlEvent] = []

    async def handle(event: ControlEvent) -> None:
        seen.append(event)

    _allow_connections(postgres_url, False)
    kernel.engine.dispose()
    follower = asyncio.create_task(control.follow_events(kernel.factory, handle, 0.1))
    try:
        await asyncio.sleep(1.0)
        assert not follower.done() and [level for level, _ in _about_control_events(caplog)] == ["ERROR"]
        _allow_connections(postgres_url, True)
        async with asyncio.timeout(10):
            while len(_about_control_events(caplog)) < 2:
                await asyncio.sleep(0.05)
        with kernel.factory.begin() as session:
            session.add(ControlEventRow(at=utcnow(), payload=encode(InmateResumed("A1", "staff-1"))))
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.05)
        assert seen == [InmateResumed("A1", "staff-1")]
    finally:
        follower.cancel()
        _allow_connections(postgres_url, True)
        kernel.engine.dispose()
