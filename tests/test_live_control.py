"""The kill switch from the CLI against a running gateway with no Redis: suspend, lockdown of a unit, a terminal
switched off. Open tunnels close within a second, new requests are refused, and each action is undone."""

from __future__ import annotations

import asyncio
import time

from tests.helpers import CELL, CLASSROOM, INMATE, OTHER_INMATE, OTHER_PIN, Platform, curl, eventually_records
from tests.test_cli import gatehouse
from tests.test_control_link import open_tunnel


async def cli(platform: Platform, *args: str) -> str:
    """The command as an operator runs it, in its own process, while the platform keeps serving."""
    result = await asyncio.to_thread(gatehouse, platform.settings.data_dir, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), seconds) == b""
    return time.monotonic() - started


async def test_suspend_cuts_the_open_tunnel_within_a_second_and_resume_lets_the_inmate_back(
        platform: Platform) -> None:
    async with platform.client(CELL) as browser:
        await platform.login(browser)
        reader, writer = await open_tunnel(platform)
        said = await cli(platform, "suspend", "--inmate", INMATE, "--reason", "fight in wing A", "--by", "sgt.peeters")
        assert said == f"inmate {INMATE} suspended; sessions ended: 1"
        assert await closed_within(reader, 1.0) < 1.0
        writer.close()
        refused = await curl(platform, "http://allowed.test/after-suspension")
        assert refused.status == 403 and "Please log in first" in refused.body
        assert (await platform.login(browser)).status == 403  # a suspended inmate cannot log in
        assert await cli(platform, "resume", "--inmate", INMATE, "--by", "sgt.peeters") == f"inmate {INMATE} resumed"
        assert (await platform.login(browser)).status == 200
        assert (await curl(platform, "http://allowed.test/back")).status == 200
    suspended = await eventually_records(platform, tag="control:inmate:suspended")
    assert (suspended[0].actor, suspended[0].reason) == (
        "sgt.peeters", f"{INMATE}: inmate {INMATE} suspended; sessions ended: 1; why: fight in wing A")
    assert platform.records(tag="control:inmate:resumed")[0].actor == "sgt.peeters"


async def test_a_unit_lockdown_cuts_that_unit_only_until_it_is_lifted(platform: Platform) -> None:
    facility = platform.settings["facility.name"]
    async with platform.client(CELL) as cell, platform.client(CLASSROOM) as classroom:
        await platform.login(cell)
        await platform.login(classroom, OTHER_INMATE, OTHER_PIN)
        reader, writer = await open_tunnel(platform)
        said = await cli(platform, "lockdown", "--facility", facility, "--unit", "A", "--reason", "search of wing A")
        assert said == f"unit 'A' of {facility} locked down; sessions ended: 1"
        assert await closed_within(reader, 1.0) < 1.0
        writer.close()
        refused = await curl(platform, "http://allowed.test/during")
        assert refused.status == 403 and "code: lockdown" in refused.body
        refused_login = await platform.login(cell)
        assert refused_login.status == 403  # nobody logs in at a terminal in lockdown
        assert (await curl(platform, "http://allowed.test/classroom", interface=CLASSROOM)).status == 200
        again = await asyncio.to_thread(gatehouse, platform.settings.data_dir, "lockdown", "--facility", facility,
                                        "--unit", "A", "--reason", "twice")
        assert again.returncode != 0 and "locked down already" in again.stderr
        assert await cli(platform, "lockdown", "lift", "--facility", facility, "--unit", "A") == (
            f"unit 'A' of {facility} lockdown lifted")
        assert (await platform.login(cell)).status == 200
        assert (await curl(platform, "http://allowed.test/lifted")).status == 200
    assert not platform.origin.saw("GET", "allowed.test", "/during")
    started = await eventually_records(platform, tag="control:lockdown:started")
    assert started[0].reason.endswith("why: search of wing A")


async def test_a_terminal_switched_off_refuses_everyone_until_switched_on(platform: Platform) -> None:
    async with platform.client(CELL) as cell:
        await platform.login(cell)
        assert await cli(platform, "switch", "off", "--terminal", "cell-1", "--reason", "screen broken") == (
            "terminal cell-1 switched off; sessions ended: 1")
        assert (await platform.login(cell)).status == 403
        await asyncio.sleep(0.6)  # the identity the gateway cached for this address is dropped on the event
        refused = await curl(platform, "http://allowed.test/off")
        assert refused.status == 403 and "code: terminal-off" in refused.body
        bad = await asyncio.to_thread(gatehouse, platform.settings.data_dir, "switch", "off", "--terminal", "cell-1",
                                      "--reason", "")
        assert bad.returncode != 0
        assert await cli(platform, "switch", "on", "--terminal", "cell-1") == "terminal cell-1 switched on"
        assert (await platform.login(cell)).status == 200
        assert (await curl(platform, "http://allowed.test/on")).status == 200


async def test_security_staff_use_the_same_kill_switch_in_the_portal(platform: Platform) -> None:
    import html as htmlmod

    from tests.helpers import csrf_from, staff_client

    async def post(client, path: str, **fields: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        async with client.get(f"{platform.portal}/control") as page:
            token = csrf_from(await page.text())
        async with client.post(f"{platform.portal}{path}", data={"csrf_token": token, **fields}) as resp:
            return resp.status, htmlmod.unescape(await resp.text())

    async with platform.client(CELL) as cell, staff_client(platform, "127.0.0.40", "sam", ["security"]) as sam:
        await platform.login(cell)
        reader, writer = await open_tunnel(platform)
        status, body = await post(sam, "/control/lockdown", unit="", lockdown_reason="")
        assert status == 400 and "Give a reason: it is recorded and shown to staff." in body
        started = time.monotonic()
        status, body = await post(sam, "/control/lockdown", unit="A", lockdown_reason="search of wing A")
        assert status == 200 and 'data-testid="lockdown-A"' in body and "The lockdown is in force" in body
        assert await closed_within(reader, 1.0) + (time.monotonic() - started) < 2.0
        writer.close()
        assert (await curl(platform, "http://allowed.test/x")).status == 403
        status, body = await post(sam, "/control/suspend", number="nobody-9", suspend_reason="test")
        assert status == 409 and "Nothing was changed: no inmate with number 'NOBODY-9'" in body
        status, body = await post(sam, "/control/lockdown/lift", unit="A")
        assert status == 200 and 'data-testid="lockdown-A"' not in body
        assert (await platform.login(cell)).status == 200
        assert (await curl(platform, "http://allowed.test/y")).status == 200
    started_records = platform.records(tag="control:lockdown:started")
    assert [(r.actor, r.reason.split(": ", 1)[1]) for r in started_records] == [
        ("sam", f"unit 'A' of {platform.settings['facility.name']} locked down; sessions ended: 1; "
                "why: search of wing A")]
