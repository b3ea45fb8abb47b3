"""Credentials for the facility's TURN relay (coturn), in the TURN REST scheme.

coturn with `use-auth-secret` and `static-auth-secret` accepts a username of the form `expiry:participant`,
where `expiry` is a Unix time, and a password that is base64(HMAC-SHA1(secret, username))
(draft-uberti-behave-turn-rest-00, section 2.2). The relay needs no account per participant and no call back
to the portal: it checks the HMAC and refuses the username once its expiry has passed.

That is why the expiry is the visit's end and nothing later. Media of a visit only flow through the relay
(the inmate's side uses relay candidates only), so once the credentials are dead the relay itself refuses
every new allocation of the visit: a reconnect, an ICE restart, a reloaded or copied page. coturn (4.6) does
not tear down an allocation made before the end, and keeps accepting its Refresh (it caches the key per client
session; tests/test_visits_relay.py holds it to that), so a call already running is cut by the other two stops:
the portal closes the signalling and the gateway cuts the inmate's tunnel to the relay. Pure: no I/O, the time
comes in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

#: URL schemes of RTCIceServer entries that use these credentials (RFC 7065). `stun:` is left out on purpose:
#: a STUN server would give the browser server-reflexive candidates, and media must pass through the relay.
TURN_SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """One participant's relay login: `username` is `expiry:participant`, `credential` its HMAC."""

    username: str
    credential: str
    expires: datetime

    def __repr__(self) -> str:
        # The credential is a password until `expires`: keep it out of logs and tracebacks.
        return f"TurnCredentials(username={self.username!r}, credential='***', expires={self.expires.isoformat()})"


class IceServer(TypedDict):
    """One entry of RTCConfiguration.iceServers (W3C WebRTC, RTCIceServer dictionary)."""

    urls: list[str]
    username: str
    credential: str


def turn_credentials(secret: bytes, participant: str, expires: datetime) -> TurnCredentials:
    """Credentials for `participant` that the relay accepts until `expires` (an aware datetime).

    The expiry is rounded down to the second, so the credentials never outlive the visit. Raises ValueError
    for an empty secret, a naive datetime, or a participant that is empty or holds the separator ':'.
    """
    if not secret:
        raise ValueError("the TURN shared secret is empty: anyone could make credentials the relay accepts")
    if expires.tzinfo is None or expires.utcoffset() is None:
        raise ValueError(f"the expiry of TURN credentials must be an aware datetime (got naive {expires.isoformat()})")
    if not participant:
        raise ValueError("a TURN participant name must not be empty")
    if ":" in participant:
        raise ValueError(f"a TURN participant name must not contain ':' (the expiry separator): {participant!r}")
    expiry = math.floor(expires.timestamp())
    username = f"{expiry}:{participant}"
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return TurnCredentials(username=username, credential=base64.b64encode(digest).decode("ascii"),
                           expires=datetime.fromtimestamp(expiry, UTC))


def ice_servers(urls: Sequence[str], creds: TurnCredentials) -> list[IceServer]:
    """The `iceServers` value for RTCPeerConnection: the relay's TURN URLs with these credentials.

    Raises ValueError when there is no URL or one is not a `turn:`/`turns:` URL.
    """
    if isinstance(urls, str):
        raise ValueError("TURN URLs must be a sequence of URLs, not one string")
    if not urls:
        raise ValueError("no TURN URL is configured: the call has no relay to pass through")
    bad = [url for url in urls if not url.startswith(TURN_SCHEMES)]
    if bad:
        raise ValueError(f"not a turn: or turns: URL: {', '.join(bad)}")
    return [IceServer(urls=list(urls), username=creds.username, credential=creds.credential)]
