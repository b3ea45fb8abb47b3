"""Inmates: added one by one or from a roster, each with groups, a language and an argon2 PIN hash."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.db.engine import utcnow
from gatehouse.db.models import Facility, Inmate, InmateGroup
from gatehouse.errors import Conflict, InvalidInput, NotFound
from gatehouse.pins import hash_pin
from gatehouse.settings import LANGUAGES

NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,31}$")
GROUP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_number(number: str) -> str:
    number = number.strip()
    if not NUMBER.match(number):
        raise InvalidInput(f"inmate number {number!r} must be 1-32 letters, digits, '/', '.', '_' or '-'")
    return number.upper()


def check_language(language: str) -> str:
    language = language.strip().lower() or "en"
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return language


def check_groups(groups: list[str]) -> list[str]:
    clean = []
    for group in groups:
        group = group.strip().lower()
        if not group:
            continue
        if not GROUP.match(group):
            raise InvalidInput(f"group {group!r} must be lower-case letters, digits, '.', '_' or '-'")
        if group not in clean:
            clean.append(group)
    return clean


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("name is empty")
    if len(name) > 255:
        raise InvalidInput("name is longer than 255 characters")
    return name


def add_inmate(session: Session, facility: Facility, *, number: str, name: str, language: str = "en",
               groups: list[str] | None = None, pin: str | None = None, pin_hash: str | None = None) -> Inmate:
    number = check_number(number)
    if session.scalar(select(Inmate.id).where(Inmate.number == number)):
        raise Conflict(f"inmate {number} exists already")
    inmate = Inmate(
        facility_id=facility.id, number=number, name=check_name(name), language=check_language(language),
        pin_hash=pin_hash or (hash_pin(pin) if pin else None), failed_attempts=0, created_at=utcnow(),
        groups=[InmateGroup(name=g) for g in check_groups(groups or [])],
    )
    session.add(inmate)
    session.flush()
    return inmate


def find_inmate(session: Session, number: str) -> Inmate:
    inmate = session.scalar(select(Inmate).where(Inmate.number == number.strip().upper()))
    if inmate is None:
        raise NotFound(f"no inmate with number {number.strip()!r}")
    return inmate


def set_pin(session: Session, number: str, pin: str) -> Inmate:
    inmate = find_inmate(session, number)
    inmate.pin_hash = hash_pin(pin)
    inmate.failed_attempts = 0
    inmate.locked_until = None
    session.flush()
    return inmate


def list_inmates(session: Session) -> list[Inmate]:
    return list(session.scalars(select(Inmate).order_by(Inmate.number)))


def set_groups(inmate: Inmate, groups: list[str]) -> None:
    """Change group membership in place (removing and re-adding the same row would clash on its key)."""
    wanted = check_groups(groups)
    inmate.groups = [g for g in inmate.groups if g.name in wanted] + [
        InmateGroup(name=name) for name in wanted if name not in inmate.group_names]


def set_language(session: Session, number: str, language: str) -> Inmate:
    inmate = find_inmate(session, number)
    inmate.language = check_language(language)
    session.flush()
    return inmate
