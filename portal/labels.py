"""Names people read for stored codes (roles, terminal kinds, inmate statuses), one table each, translated
where they are shown."""

from __future__ import annotations

from portal.i18n import N_, _

ROLE_LABELS = {"education": N_("Education"), "security": N_("Security"), "supervisor": N_("Visit supervisor"),
               "admin": N_("Administrator")}
# Translators: the kind of terminal, shown in brackets after its name on the inmate's home page: "cell-a1 (cell)".
KIND_LABELS = {"cell": N_("cell"), "classroom": N_("classroom"), "library": N_("library"), "booth": N_("booth")}
# Translators: a quota category of sites on the inmate's home page ("general: 35 of 60 minutes left").
CATEGORY_LABELS = {"general": N_("General"), "jobs": N_("Jobs"), "learning": N_("Learning"),
                   "housing": N_("Housing"), "admin": N_("Administration"), "library": N_("Library")}
STATUS_LABELS = {"active": N_("Active"), "suspended": N_("Suspended"), "released": N_("Released")}


def label(table: dict[str, str], code: str) -> str:
    """The translated name of `code`, or the code itself when the table does not know it."""
    return _(table[code]) if code in table else code


def choices(table: dict[str, str]) -> list[tuple[str, str]]:
    return [(code, _(name)) for code, name in table.items()]
