"""Staff forms: login, second factor, password change; each error is kept by its field, input kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gatehouse.errors import InvalidInput
from gatehouse.staff import PASSWORD_MAX, PASSWORD_MIN, check_password
from portal.i18n import _


def _text(data: Mapping[str, object], name: str) -> str:
    return str(data.get(name, ""))


@dataclass(slots=True)
class StaffLoginForm:
    username: str = ""
    password: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> StaffLoginForm:
        form = cls(_text(data, "username").strip().lower(), _text(data, "password"))
        if not form.username:
            form.errors["username"] = _("Enter your username.")
        elif len(form.username) > 64:
            form.errors["username"] = _("A username has at most 64 characters.")
        if not form.password:
            form.errors["password"] = _("Enter your password.")
        elif len(form.password) > PASSWORD_MAX:
            form.errors["password"] = _("A password has at most 1024 characters.")
        return form


@dataclass(slots=True)
class CodeForm:
    code: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> CodeForm:
        form = cls(" ".join(_text(data, "code").split()))
        if not form.code:
            form.errors["code"] = _("Enter the 6-digit code from your app, or a recovery code.")
        elif len(form.code) > 32:
            form.errors["code"] = _("A code is 6 digits; a recovery code looks like abcd-efgh-jkmn-pqrs.")
        return form


@dataclass(slots=True)
class PasswordForm:
    current: str = ""
    new: str = ""
    confirm: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object], username: str) -> PasswordForm:
        form = cls(_text(data, "current"), _text(data, "new"), _text(data, "confirm"))
        if not form.current:
            form.errors["current"] = _("Enter your current password.")
        if len(form.new) < PASSWORD_MIN:
            form.errors["new"] = _("A password has at least %(num)d characters.") % {"num": PASSWORD_MIN}
        elif len(form.new) > PASSWORD_MAX:
            form.errors["new"] = _("A password has at most 1024 characters.")
        else:
            try:
                check_password(form.new, username)
            except InvalidInput:
                form.errors["new"] = _("A password must not contain your username.")
        if not form.errors.get("new") and form.confirm != form.new:
            form.errors["confirm"] = _("The two new passwords are not the same.")
        return form


@dataclass(slots=True)
class ConfirmPasswordForm:
    password: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> ConfirmPasswordForm:
        form = cls(_text(data, "password"))
        if not form.password:
            form.errors["password"] = _("Enter your password.")
        return form
