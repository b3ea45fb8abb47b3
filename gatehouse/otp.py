"""Second factors, pure: TOTP codes (RFC 6238, 30 s steps) and single-use recovery codes.

Nothing here stores state; the caller keeps the last accepted time step and passes it in, so replay is
decided in one place (an atomic update in `gatehouse.staff`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp

STEP_SECONDS = 30
ACCEPT_STEPS = 1
"""A code of the previous or next step is accepted too (typing takes time; clocks differ a little)."""
DRIFT_STEPS = 10
"""Within this many steps a matching code means the device's clock is wrong, and the message says so."""
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class InvalidCode(Exception):
    """The code does not match this account's secret now."""


class OutOfSync(InvalidCode):
    """The code matches a step `steps` away from now: the device's clock is off."""

    def __init__(self, steps: int) -> None:
        super().__init__(f"code is {steps:+d} steps away from now")
        self.steps = steps


class Replayed(InvalidCode):
    """The code's step is not later than the last accepted one: it was used already."""


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """What an authenticator app scans: `otpauth://totp/ISSUER:USER?secret=...&issuer=ISSUER`."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def step_at(when: datetime | float) -> int:
    seconds = when.timestamp() if isinstance(when, datetime) else when
    return int(seconds // STEP_SECONDS)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def matching_step(secret: str, code: str, when: datetime | float, last_step: int | None = None) -> int:
    """The time step the code belongs to, if it may be accepted now; raises InvalidCode, OutOfSync or Replayed."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        raise InvalidCode("a code is 6 digits")
    now = step_at(when)
    totp = pyotp.TOTP(secret)
    for delta in sorted(range(-DRIFT_STEPS, DRIFT_STEPS + 1), key=abs):
        if hmac.compare_digest(totp.generate_otp(now + delta), code):
            if abs(delta) > ACCEPT_STEPS:
                raise OutOfSync(delta)
            if last_step is not None and now + delta <= last_step:
                raise Replayed("code used already")
            return now + delta
    raise InvalidCode("code does not match")


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes like `k7qm-2xhd-9tpw-ae4n`: 16 characters from an alphabet without look-alikes (~79 bits)."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_hash(code: str) -> str:
    """SHA-256 of the code without dashes, spaces or case: random codes need no slow hash."""
    clean = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(clean.encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    clean = "".join(ch for ch in code.lower() if ch.isalnum())
    return len(clean) == 16 and all(ch in _RECOVERY_ALPHABET for ch in clean)
