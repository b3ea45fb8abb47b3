"""TURN REST credentials: the scheme by table, then against Debian's coturn (the relay is the judge of expiry)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import pytest_asyncio

from gatehouse.visits.relay import TurnCredentials, ice_servers, turn_credentials
from tests.coturn import SUCCESS, Relay, Transport, TurnClient, allocate, coturn

#: The relay tests share one coturn, so they share its event loop.
on_relay = pytest.mark.asyncio(loop_scope="module")

SECRET = b"north-wing-relay"
END = datetime(2030, 1, 1, 10, 30, tzinfo=UTC)
TRANSPORTS: tuple[Transport, ...] = ("tcp", "udp")


# -- the scheme, without a relay --------------------------------------------------------------------------------

def test_known_vector() -> None:
    # Computed outside Python: printf '%s' 1893493800:inmate-A100 | openssl dgst -sha1 -hmac north-wing-relay -binary
    creds = turn_credentials(SECRET, "inmate-A100", END)
    assert creds == TurnCredentials("1893493800:inmate-A100", "PH6aR9f/m9xlS53yv5ZAAPSDlws=", END)


@pytest.mark.parametrize(("participant", "expires", "username"), [
    ("visitor-7", datetime(2030, 1, 1, 10, 30, tzinfo=UTC), "1893493800:visitor-7"),
    # Another zone, same instant: the username is Unix time, so it does not move.
    ("visitor-7", datetime(2030, 1, 1, 11, 30, tzinfo=timezone(timedelta(hours=1))), "1893493800:visitor-7"),
    # A fraction of a second is dropped, never rounded up: the credentials do not outlive the visit.
    ("visitor-7", datetime(2030, 1, 1, 10, 30, 0, 999_999, tzinfo=UTC), "1893493800:visitor-7"),
    ("inmate-A100", datetime(2030, 1, 1, 10, 29, 59, tzinfo=UTC), "1893493799:inmate-A100"),
    ("supervisor-é", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "1:supervisor-é"),
])
def test_username_and_credential(participant: str, expires: datetime, username: str) -> None:
    creds = turn_credentials(SECRET, participant, expires)
    expected = base64.b64encode(hmac.new(SECRET, username.encode(), hashlib.sha1).digest()).decode()
    assert (creds.username, creds.credential) == (username, expected)
    assert creds.expires == datetime.fromtimestamp(int(username.split(":")[0]), UTC)
    assert creds.expires <= expires and creds.expires.tzinfo is not None


@pytest.mark.parametrize(("secret", "participant", "expires", "message"), [
    (SECRET, "visitor-7", datetime(2030, 1, 1, 10, 30), "aware datetime"),
    (SECRET, "visitor:7", END, "must not contain ':'"),
    (SECRET, "", END, "must not be empty"),
    (b"", "visitor-7", END, "secret is empty"),
])
def test_refused_inputs(secret: bytes, participant: str, expires: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        turn_credentials(secret, participant, expires)


def test_the_credential_stays_out_of_repr() -> None:
    creds = turn_credentials(SECRET, "inmate-A100", END)
    assert creds.credential not in repr(creds) and creds.username in repr(creds)


def test_ice_servers_shape() -> None:
    creds = turn_credentials(SECRET, "inmate-A100", END)
    urls = ("turn:relay.example:3478?transport=tcp", "turns:relay.example:5349?transport=tcp")
    assert ice_servers(urls, creds) == [{"urls": list(urls), "username": "1893493800:inmate-A100",
                                         "credential": "PH6aR9f/m9xlS53yv5ZAAPSDlws="}]


@pytest.mark.parametrize(("urls", "message"), [
    ((), "no TURN URL"),
    (("stun:relay.example:3478",), "not a turn: or turns: URL: stun:relay.example:3478"),
    (("https://relay.example/",), "not a turn: or turns: URL"),
    ("turn:relay.example:3478", "not one string"),
])
def test_ice_servers_refuses(urls: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ice_servers(urls, turn_credentials(SECRET, "inmate-A100", END))


# -- against coturn ---------------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    async with coturn() as running:
        yield running


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@on_relay
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_valid_credentials_allocate(relay: Relay, transport: Transport) -> None:
    creds = turn_credentials(relay.secret, "inmate-A100", soon(600))
    assert await allocate(relay.host, relay.port, creds.username, creds.credential, transport=transport) == SUCCESS


def refused_login(secret: bytes, case: str) -> tuple[str, str]:
    if case == "expired":
        creds = turn_credentials(secret, "visitor-7", soon(-2))
    elif case == "wrong secret":
        creds = turn_credentials(b"guessed", "visitor-7", soon(600))
    else:  # an edited username keeps the old HMAC: a visitor can neither become someone else nor stay longer
        good = turn_credentials(secret, "visitor-7", soon(600))
        expiry, _ = good.username.split(":")
        edited = f"{expiry}:visitor-8" if case == "other participant" else f"{int(expiry) + 3600}:visitor-7"
        return edited, good.credential
    return creds.username, creds.credential


@on_relay
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", ["expired", "wrong secret", "other participant", "later expiry"])
async def test_refused_credentials(relay: Relay, transport: Transport, case: str) -> None:
    username, password = refused_login(relay.secret, case)
    assert await allocate(relay.host, relay.port, username, password, transport=transport) == 401


@on_relay
async def test_the_relay_refuses_new_allocations_once_the_visit_ends(relay: Relay) -> None:
    """The hard stop: credentials made to die in about two seconds work before, and no longer after."""
    end = datetime.fromtimestamp(math.ceil(time.time()) + 2, UTC)
    creds = turn_credentials(relay.secret, "visitor-7", end)
    async with TurnClient(relay.host, relay.port, "udp") as running:
        before = await running.allocate(creds.username, creds.credential)
        assert before.code == SUCCESS
        for transport in TRANSPORTS:
            assert await allocate(relay.host, relay.port, creds.username, creds.credential,
                                  transport=transport) == SUCCESS
        await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.2)
        for transport in TRANSPORTS:
            assert await allocate(relay.host, relay.port, creds.username, creds.credential,
                                  transport=transport) == 401
        # What coturn (4.6) does NOT do: an allocation made before the end is not torn down at the end, and its
        # Refresh is still accepted (the key is cached per client session; even a fresh nonce does not recheck
        # the expiry). So a call already running is cut by the gateway closing the inmate's relay tunnel and by
        # the portal closing the signalling; the relay's share is that nothing new can start. If this assertion
        # ever fails, coturn began tearing allocations down: update the note in gatehouse/visits/relay.py.
        assert (await running.refresh()).code == SUCCESS
