"""The page a person sees instead of a blocked site: what was blocked, why, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jinja2
from babel import Locale
from babel.dates import format_date, format_time

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True, undefined=jinja2.StrictUndefined)

TEXT = {
    "en": {
        "title": "This page is blocked", "login_title": "Please log in first",
        "blocked": "The address below is not allowed from this terminal.",
        "login": "Nobody is logged in at this terminal. Log in at the portal to use the internet.",
        "address": "Address", "reason": "Reason", "open_portal": "Open the portal",
        "ask": "If you need this site for your studies or your re-entry, ask for it in the portal.",
        "closed_title": "This terminal is closed now", "opens": "It opens again on {when}.",
        "closed": "This terminal cannot be used at this time.",
        "window_opens": "This site can be used again from {when}.",
        "used_title": "Your time for today is used up", "used": "You have used today's minutes for this kind of site.",
        "renewed": "New minutes from {when}.",
    },
    "nl": {
        "title": "Deze pagina is geblokkeerd", "login_title": "Log eerst in",
        "blocked": "Het adres hieronder is niet toegestaan op deze terminal.",
        "login": "Er is niemand aangemeld op deze terminal. Meld je aan op het portaal om internet te gebruiken.",
        "address": "Adres", "reason": "Reden", "open_portal": "Naar het portaal",
        "ask": "Heb je deze site nodig voor je studie of je re-integratie? Vraag ze aan in het portaal.",
        "closed_title": "Deze terminal is nu gesloten", "opens": "Hij gaat weer open op {when}.",
        "closed": "Deze terminal kan je op dit moment niet gebruiken.",
        "window_opens": "Je kan deze site weer gebruiken vanaf {when}.",
        "used_title": "Je tijd voor vandaag is op",
        "used": "Je hebt de minuten van vandaag voor dit soort sites gebruikt.",
        "renewed": "Nieuwe minuten vanaf {when}.",
    },
    "fr": {
        "title": "Cette page est bloquée", "login_title": "Veuillez d'abord vous connecter",
        "blocked": "L'adresse ci-dessous n'est pas autorisée depuis ce terminal.",
        "login": "Personne n'est connecté à ce terminal. Connectez-vous au portail pour utiliser internet.",
        "address": "Adresse", "reason": "Raison", "open_portal": "Ouvrir le portail",
        "ask": "Si vous avez besoin de ce site pour vos études ou votre réinsertion, demandez-le dans le portail.",
        "closed_title": "Ce terminal est fermé pour le moment", "opens": "Il rouvre le {when}.",
        "closed": "Ce terminal ne peut pas être utilisé à cette heure.",
        "window_opens": "Ce site sera de nouveau accessible à partir du {when}.",
        "used_title": "Votre temps pour aujourd'hui est écoulé",
        "used": "Vous avez utilisé les minutes du jour pour ce type de site.",
        "renewed": "De nouvelles minutes à partir du {when}.",
    },
    "de": {
        "title": "Diese Seite ist gesperrt", "login_title": "Bitte zuerst anmelden",
        "blocked": "Die folgende Adresse ist an diesem Terminal nicht erlaubt.",
        "login": "An diesem Terminal ist niemand angemeldet. Melden Sie sich im Portal an, um das Internet zu nutzen.",
        "address": "Adresse", "reason": "Grund", "open_portal": "Portal öffnen",
        "ask": "Wenn Sie diese Seite für Ausbildung oder Wiedereingliederung brauchen, beantragen Sie sie im Portal.",
        "closed_title": "Dieses Terminal ist jetzt geschlossen", "opens": "Es öffnet wieder am {when}.",
        "closed": "Dieses Terminal kann zu dieser Zeit nicht benutzt werden.",
        "window_opens": "Diese Seite kann ab {when} wieder benutzt werden.",
        "used_title": "Ihre Zeit für heute ist aufgebraucht",
        "used": "Sie haben die heutigen Minuten für diese Art von Seiten verbraucht.",
        "renewed": "Neue Minuten ab {when}.",
    },
}


@dataclass(frozen=True, slots=True)
class BlockPage:
    url: str
    reason: str
    portal_url: str
    language: str = "en"
    needs_login: bool = False
    closed: bool = False
    """The terminal is outside its opening hours: the page says so, and when it opens if `opens_at` is known."""
    opens_at: datetime | None = None
    used_up: bool = False
    """The inmate's minutes of the day for this category are spent: the page says when new ones come."""

    def render(self) -> bytes:
        lang = self.language if self.language in TEXT else "en"
        template = _env.get_template("blocked.html")
        opens = ""
        if self.opens_at is not None:
            locale = Locale.parse(lang)
            day = format_date(self.opens_at, "full", locale=locale)
            when = f"{day}, {format_time(self.opens_at, 'short', locale=locale)}"
            key = "opens" if self.closed else "renewed" if self.used_up else "window_opens"
            opens = TEXT[lang][key].format(when=when)
        return template.render(page=self, lang=lang, t=TEXT[lang], opens=opens).encode("utf-8")


HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "X-Gatehouse-Blocked": "1",
}
