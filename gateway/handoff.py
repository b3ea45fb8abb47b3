"""The signed header that carries the front's decision and subject to the inspector.

Only the front can make one (HMAC with the node secret); the inspector strips it before anything goes
upstream. It travels over loopback only and expires within a minute, so it cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field

HEADER = "x-gatehouse-handoff"
MAX_AGE_S = 60.0


class HandoffError(Exception):
    """The header is missing, forged, stale or malformed: the inspector refuses the connection."""


@dataclass(frozen=True, slots=True)
class Handoff:
    client: str
    terminal: str = ""
    terminal_kind: str = ""
    inmate: str = ""
    groups: tuple[str, ...] = ()
    session: str = ""
    language: str = "en"
    host: str = ""
    port: int = 0
    verdict: str = "deny"
    code: str = ""
    rule: str = ""
    why: str = ""
    opens: str = ""
    """For a refusal that time will lift (hours, windows, quota): when, in facility wall-clock time (ISO)."""
    issued: float = field(default_factory=time.time)


def _mac(key: bytes, body: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode().rstrip("=")


def sign(key: bytes, handoff: Handoff) -> str:
    body = base64.urlsafe_b64encode(json.dumps(asdict(handoff), separators=(",", ":")).encode()).decode()
    return f"{body}.{_mac(key, body.encode())}"


def verify(key: bytes, value: str, *, now: float | None = None) -> Handoff:
    body, _, mac = value.partition(".")
    if not body or not mac or not hmac.compare_digest(mac, _mac(key, body.encode())):
        raise HandoffError("hand-off signature does not verify")
    try:
        data = json.loads(base64.urlsafe_b64decode(body.encode()))
        data["groups"] = tuple(data.get("groups", ()))
        handoff = Handoff(**data)
    except (ValueError, TypeError) as exc:
        raise HandoffError(f"hand-off header is malformed: {exc}") from None
    age = (time.time() if now is None else now) - handoff.issued
    if not -5 <= age <= MAX_AGE_S:
        raise HandoffError(f"hand-off header is {age:.0f}s old")
    return handoff
