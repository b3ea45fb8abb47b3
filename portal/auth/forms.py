"""The inmate login form: what was typed, what is wrong with it, and the typed number kept on error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from portal.i18n import _


@dataclass(slots=True)
class LoginForm:
    inmate_number: str = ""
    pin: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> LoginForm:
        form = cls(str(data.get("inmate_number", "")).strip(), str(data.get("pin", "")).strip())
        if not form.inmate_number:
            form.errors["inmate_number"] = _("Enter your inmate number.")
        elif len(form.inmate_number) > 32:
            form.errors["inmate_number"] = _("An inmate number has at most 32 characters.")
        if not form.pin:
            form.errors["pin"] = _("Enter your PIN.")
        elif not form.pin.isdigit() or len(form.pin) > 12:
            form.errors["pin"] = _("A PIN is 4 to 12 digits.")
        return form
