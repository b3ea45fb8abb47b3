"""PIN hashing with argon2id; verification runs in a worker thread when called from the event loop."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gatehouse.errors import InvalidInput

_hasher = PasswordHasher()
PIN_MIN, PIN_MAX = 4, 12


def check_pin_format(pin: str) -> str:
    pin = pin.strip()
    if not pin.isdigit() or not PIN_MIN <= len(pin) <= PIN_MAX:
        raise InvalidInput(f"a PIN is {PIN_MIN} to {PIN_MAX} digits")
    return pin


def hash_pin(pin: str) -> str:
    return _hasher.hash(check_pin_format(pin))


def verify_pin(pin_hash: str | None, pin: str) -> bool:
    if not pin_hash:
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


DUMMY_HASH = _hasher.hash("00000000")
"""Verified against when the inmate number is unknown, so timing does not tell which numbers exist."""
