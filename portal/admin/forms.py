"""Administration forms: each error kept by its field, in the reader's language, with what was typed kept."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from gatehouse.db.models import InmateStatus, StaffRole, TerminalKind
from gatehouse.inmates import GROUP, NUMBER
from gatehouse.pins import PIN_MAX, PIN_MIN
from gatehouse.settings import LANGUAGES
from gatehouse.staff import PASSWORD_MIN, USERNAME
from portal.i18n import _

ROLES = [r.value for r in StaffRole]
KINDS = [k.value for k in TerminalKind]
STATUSES = [s.value for s in InmateStatus]


def _text(data: Mapping[str, object], name: str, limit: int = 1024) -> str:
    return " ".join(str(data.get(name, "")).split())[:limit]


def _choice(data: Mapping[str, object], name: str, allowed: list[str], errors: dict[str, str],
            message: str) -> str:
    value = str(data.get(name, "")).strip()
    if value not in allowed:
        errors[name] = message
    return value


def _roles(data: MultiMapping[Any]) -> list[str]:
    return [r for r in data.getall("roles", []) if isinstance(r, str) and r in ROLES]


def _groups(data: Mapping[str, object], errors: dict[str, str]) -> list[str]:
    raw = str(data.get("groups", "")).replace(";", ",").split(",")
    groups = [g.strip().lower() for g in raw if g.strip()]
    bad = [g for g in groups if not GROUP.match(g)]
    if bad:
        errors["groups"] = _("Group %(name)s: use lower-case letters, digits, '.', '_' or '-'.") % {"name": bad[0]}
    return list(dict.fromkeys(groups))


def _pin(data: Mapping[str, object], errors: dict[str, str], required: bool) -> str:
    pin = str(data.get("pin", "")).strip()
    if not pin and not required:
        return ""
    if not pin.isdigit() or not PIN_MIN <= len(pin) <= PIN_MAX:
        errors["pin"] = _("A PIN is %(min)d to %(max)d digits.") % {"min": PIN_MIN, "max": PIN_MAX}
    return pin


def _name(data: Mapping[str, object], errors: dict[str, str]) -> str:
    name = _text(data, "name", 300)
    if not name:
        errors["name"] = _("Enter the name.")
    elif len(name) > 255:
        errors["name"] = _("A name has at most 255 characters.")
    return name


@dataclass(slots=True)
class NewStaff:
    username: str = ""
    display_name: str = ""
    roles: list[str] = field(default_factory=list)
    language: str = "en"
    password: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: MultiMapping[Any]) -> NewStaff:
        form = cls(_text(data, "username", 80).lower(), _text(data, "display_name", 300),
                   _roles(data), str(data.get("language", "en")),
                   str(data.get("password", "")))
        if not USERNAME.match(form.username):
            form.errors["username"] = _("A username is 2 to 64 lower-case letters, digits, '.', '_' or '-'.")
        if len(form.display_name) > 255:
            form.errors["display_name"] = _("A name has at most 255 characters.")
        if not form.roles:
            form.errors["roles"] = _("Choose at least one role.")
        if form.language not in LANGUAGES:
            form.errors["language"] = _("Choose a language.")
        if len(form.password) < PASSWORD_MIN:
            form.errors["password"] = _("A password has at least %(num)d characters.") % {"num": PASSWORD_MIN}
        elif form.username and form.username in form.password.lower():
            form.errors["password"] = _("A password must not contain the username.")
        return form


@dataclass(slots=True)
class RolesForm:
    roles: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: MultiMapping[Any]) -> RolesForm:
        form = cls(_roles(data))
        if not form.roles:
            form.errors["roles"] = _("Choose at least one role.")
        return form


@dataclass(slots=True)
class NewTerminal:
    name: str = ""
    address: str = ""
    kind: str = "cell"
    unit: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object], units: list[str]) -> NewTerminal:
        form = cls(_text(data, "name", 80), _text(data, "address", 80), str(data.get("kind", "")),
                   str(data.get("unit", "")))
        if not form.name:
            form.errors["name"] = _("Enter a name for the terminal.")
        elif len(form.name) > 64:
            form.errors["name"] = _("A terminal name has at most 64 characters.")
        try:
            ipaddress.ip_address(form.address)
        except ValueError:
            form.errors["address"] = _("Enter the terminal's IP address, like 10.20.0.15.")
        _choice(data, "kind", KINDS, form.errors, _("Choose what kind of terminal this is."))
        if form.unit and form.unit not in units:
            form.errors["unit"] = _("Choose one of the units, or none.")
        return form


@dataclass(slots=True)
class UnitForm:
    name: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> UnitForm:
        form = cls(_text(data, "name", 80))
        if not form.name or len(form.name) > 64:
            form.errors["name"] = _("A unit name is 1 to 64 characters.")
        return form


@dataclass(slots=True)
class NewInmate:
    number: str = ""
    name: str = ""
    language: str = "nl"
    groups: list[str] = field(default_factory=list)
    pin: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> NewInmate:
        form = cls(_text(data, "number", 40).upper())
        if not NUMBER.match(form.number):
            form.errors["number"] = _("An inmate number is 1 to 32 letters, digits, '/', '.', '_' or '-'.")
        form.name = _name(data, form.errors)
        form.language = _choice(data, "language", list(LANGUAGES), form.errors, _("Choose a language."))
        form.groups = _groups(data, form.errors)
        form.pin = _pin(data, form.errors, required=False)
        return form


@dataclass(slots=True)
class InmateEdit:
    name: str = ""
    language: str = "nl"
    groups: list[str] = field(default_factory=list)
    status: str = "active"
    pin: str = ""
    unlock: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> InmateEdit:
        form = cls()
        form.name = _name(data, form.errors)
        form.language = _choice(data, "language", list(LANGUAGES), form.errors, _("Choose a language."))
        form.groups = _groups(data, form.errors)
        form.status = _choice(data, "status", STATUSES, form.errors, _("Choose a status."))
        form.pin = _pin(data, form.errors, required=False)
        form.unlock = data.get("unlock") == "yes"
        return form
