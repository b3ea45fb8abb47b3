"""The page a person sees instead of a blocked site: what was blocked, why, and what to do next.

Everything on it is in the reader's language: each reason code has its own sentence, naming the rule's
description where the rule has one. The English detail of a decision is for staff and stays in the audit
record; the page shows only its code and rule id, small, so staff can find that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_time

from gatehouse.languages import negotiate as negotiate
from gatehouse.languages import regional as regional
from policies.decision import Decision, ReasonCode
from policies.snapshot import Snapshot

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True, undefined=jinja2.StrictUndefined)
R = ReasonCode

TEXT = {
    "en": {
        "blocked_title": "This page is blocked", "blocked": "The address below is not allowed from this terminal.",
        "login_title": "Please log in first",
        "login": "Nobody is logged in at this terminal. Log in at the portal to use the internet.",
        "closed_title": "This terminal is closed now", "closed": "This terminal cannot be used at this time.",
        "used_title": "Your time for today is used up", "used": "You have used today's minutes for this kind of site.",
        "paused_title": "This page cannot be opened now",
        "paused": "The internet cannot be used from this terminal at the moment.",
        "address": "Address", "reason": "Reason", "open_portal": "Open the portal",
        "ask": "If you need this site for your studies or your re-entry, ask for it in the portal.",
        "ask_link": "Ask for this site",
        "opens": "It opens again on {when}.", "window_opens": "This site can be used again from {when}.",
        "renewed": "New minutes from {when}.", "at": "{day}, {time}",
        "via": "{host} sent you on to the address below.",
        "code": "code: {code}", "rule": "rule {rule}",
    },
    "nl": {
        "blocked_title": "Deze pagina is geblokkeerd",
        "blocked": "Het adres hieronder is niet toegestaan op deze terminal.",
        "login_title": "Meld u eerst aan",
        "login": "Er is niemand aangemeld op deze terminal. Meld u aan op het portaal om internet te gebruiken.",
        "closed_title": "Deze terminal is nu gesloten",
        "closed": "Deze terminal kan op dit moment niet worden gebruikt.",
        "used_title": "Uw tijd voor vandaag is op",
        "used": "U hebt de minuten van vandaag voor dit soort sites opgebruikt.",
        "paused_title": "Deze pagina kan nu niet worden geopend",
        "paused": "Internet kan op dit moment niet worden gebruikt op deze terminal.",
        "address": "Adres", "reason": "Reden", "open_portal": "Naar het portaal",
        "ask": "Hebt u deze site nodig voor uw opleiding of uw re-integratie? Vraag dan in het portaal om toegang.",
        "ask_link": "Vraag deze site aan",
        "opens": "De terminal gaat weer open op {when}.",
        "window_opens": "U kunt deze site weer gebruiken vanaf {when}.",
        "renewed": "Nieuwe minuten vanaf {when}.", "at": "{day} om {time}",
        "via": "{host} heeft u doorgestuurd naar het adres hieronder.",
        "code": "code: {code}", "rule": "regel {rule}",
    },
    "fr": {
        "blocked_title": "Cette page est bloquée",
        "blocked": "L'adresse ci-dessous n'est pas autorisée depuis ce terminal.",
        "login_title": "Veuillez d'abord vous connecter",
        "login": "Personne n'est connecté à ce terminal. Connectez-vous au portail pour utiliser internet.",
        "closed_title": "Ce terminal est fermé pour le moment",
        "closed": "Ce terminal ne peut pas être utilisé pour le moment.",
        "used_title": "Votre temps pour aujourd'hui est écoulé",
        "used": "Vous avez utilisé les minutes du jour pour ce type de site.",
        "paused_title": "Cette page ne peut pas être ouverte pour le moment",
        "paused": "Internet ne peut pas être utilisé depuis ce terminal pour le moment.",
        "address": "Adresse", "reason": "Motif", "open_portal": "Ouvrir le portail",
        "ask": "Si vous avez besoin de ce site pour vos études ou votre réinsertion, demandez-le dans le portail.",
        "ask_link": "Demander ce site",
        "opens": "Il rouvre le {when}.", "window_opens": "Ce site sera de nouveau accessible à partir du {when}.",
        "renewed": "Nouvelles minutes à partir du {when}.", "at": "{day} à {time}",
        "via": "{host} vous a renvoyé vers l'adresse ci-dessous.",
        "code": "code : {code}", "rule": "règle {rule}",
    },
    "de": {
        "blocked_title": "Diese Seite ist gesperrt",
        "blocked": "Die folgende Adresse ist an diesem Terminal nicht erlaubt.",
        "login_title": "Bitte melden Sie sich zuerst an",
        "login": "An diesem Terminal ist niemand angemeldet. Melden Sie sich im Portal an, um das Internet zu nutzen.",
        "closed_title": "Dieses Terminal ist jetzt geschlossen",
        "closed": "Dieses Terminal kann zurzeit nicht benutzt werden.",
        "used_title": "Ihre Zeit für heute ist aufgebraucht",
        "used": "Sie haben die heutigen Minuten für diese Art von Seiten verbraucht.",
        "paused_title": "Diese Seite kann jetzt nicht geöffnet werden",
        "paused": "Das Internet kann an diesem Terminal zurzeit nicht benutzt werden.",
        "address": "Adresse", "reason": "Grund", "open_portal": "Portal öffnen",
        "ask": "Wenn Sie diese Seite für Ihre Ausbildung oder Ihre Wiedereingliederung brauchen, beantragen Sie sie "
               "im Portal.",
        "ask_link": "Diese Seite beantragen",
        "opens": "Es öffnet wieder am {when}.", "window_opens": "Diese Seite kann ab {when} wieder benutzt werden.",
        "renewed": "Neue Minuten ab {when}.", "at": "{day} um {time}",
        "via": "{host} hat Sie an die folgende Adresse weitergeleitet.",
        "code": "Code: {code}", "rule": "Regel {rule}",
    },
}

REASONS: dict[str, dict[ReasonCode, str]] = {
    "en": {
        R.UNKNOWN_TERMINAL: "This computer is not registered as a terminal. Ask staff.",
        R.NO_SESSION: "Nobody is logged in at this terminal.",
        R.INMATE_NOT_ACTIVE: "Your account cannot use the internet now. Ask staff.",
        R.BAD_HOST: "The address is not valid, or the connection does not match it.",
        R.BAD_REQUEST: "The browser sent a request that is not valid.",
        R.BAD_PORT: "This site may not be opened on this port.",
        R.IP_LITERAL: "Sites can be opened by their name only, not by a numeric address.",
        R.RULE_DENY: "This site, or this part of it, is closed.",
        R.RULE_ALLOW: "This site is allowed.",
        R.NO_MATCH: "This site is not on the list of allowed sites.",
        R.METHOD_NOT_ALLOWED: "This action, such as sending a form, is not allowed on this site.",
        R.PATH_NOT_ALLOWED: "Only some parts of this site are allowed, and this page is not one of them.",
        R.WEBSOCKET_NOT_ALLOWED: "Live connections (WebSocket) are not allowed on this site.",
        R.NOT_IN_SCOPE: "This site is allowed only for some groups, courses or video visits.",
        R.OUTSIDE_WINDOW: "This site is allowed only at certain hours.",
        R.NOT_VALID_NOW: "The permission for this site is not valid at this time.",
        R.TERMINAL_KIND: "This site cannot be used on this kind of terminal.",
        R.TERMINAL_CLOSED: "Terminals of this kind are closed at this time.",
        R.CONTROL_LOST: "The gateway cannot check access at the moment. Try again in a few minutes.",
        R.TERMINAL_OFF: "Staff have switched this terminal off.",
        R.LOCKDOWN: "Staff have stopped the use of the terminals for now.",
        R.QUOTA_EXHAUSTED: "Today's minutes for this kind of site are used up.",
        R.QUOTA_UNAVAILABLE: "Your minutes cannot be counted at the moment. Try again in a few minutes.",
        R.GATEWAY_ERROR: "Something went wrong in the gateway. Try again; if it keeps happening, tell staff.",
    },
    "nl": {
        R.UNKNOWN_TERMINAL: "Deze computer is niet geregistreerd als terminal. Vraag hulp aan het personeel.",
        R.NO_SESSION: "Er is niemand aangemeld op deze terminal.",
        R.INMATE_NOT_ACTIVE: "Uw account kan nu geen internet gebruiken. Vraag het aan het personeel.",
        R.BAD_HOST: "Het adres is ongeldig, of de verbinding past er niet bij.",
        R.BAD_REQUEST: "De browser heeft een ongeldige aanvraag verstuurd.",
        R.BAD_PORT: "Deze site mag niet via deze poort worden geopend.",
        R.IP_LITERAL: "Sites kunnen alleen via hun naam worden geopend, niet via een numeriek adres.",
        R.RULE_DENY: "Deze site, of dit deel ervan, is afgesloten.",
        R.RULE_ALLOW: "Deze site is toegestaan.",
        R.NO_MATCH: "Deze site staat niet op de lijst van toegestane sites.",
        R.METHOD_NOT_ALLOWED: "Deze handeling, zoals een formulier versturen, is niet toegestaan op deze site.",
        R.PATH_NOT_ALLOWED: "Alleen sommige delen van deze site zijn toegestaan, en deze pagina hoort daar niet bij.",
        R.WEBSOCKET_NOT_ALLOWED: "Live-verbindingen (WebSocket) zijn niet toegestaan op deze site.",
        R.NOT_IN_SCOPE: "Deze site is alleen toegestaan voor bepaalde groepen, cursussen of videobezoeken.",
        R.OUTSIDE_WINDOW: "Deze site is alleen op bepaalde uren toegestaan.",
        R.NOT_VALID_NOW: "De toestemming voor deze site geldt op dit moment niet.",
        R.TERMINAL_KIND: "Deze site kan niet worden gebruikt op dit soort terminal.",
        R.TERMINAL_CLOSED: "Terminals van dit soort zijn op dit moment gesloten.",
        R.CONTROL_LOST: "De gateway kan de toegang op dit moment niet controleren. Probeer het over enkele minuten "
                        "opnieuw.",
        R.TERMINAL_OFF: "Het personeel heeft deze terminal uitgeschakeld.",
        R.LOCKDOWN: "Het personeel heeft het gebruik van de terminals voorlopig stopgezet.",
        R.QUOTA_EXHAUSTED: "De minuten van vandaag voor dit soort sites zijn op.",
        R.QUOTA_UNAVAILABLE: "Uw minuten kunnen op dit moment niet worden geteld. Probeer het over enkele minuten "
                             "opnieuw.",
        R.GATEWAY_ERROR: "Er ging iets mis in de gateway. Probeer het opnieuw; blijft het gebeuren, meld het dan aan "
                         "het personeel.",
    },
    "fr": {
        R.UNKNOWN_TERMINAL: "Cet ordinateur n'est pas enregistré comme terminal. Demandez de l'aide au personnel.",
        R.NO_SESSION: "Personne n'est connecté à ce terminal.",
        R.INMATE_NOT_ACTIVE: "Votre compte ne peut pas utiliser internet maintenant. Adressez-vous au personnel.",
        R.BAD_HOST: "L'adresse n'est pas valide, ou la connexion ne lui correspond pas.",
        R.BAD_REQUEST: "Le navigateur a envoyé une requête non valide.",
        R.BAD_PORT: "Ce site ne peut pas être ouvert sur ce port.",
        R.IP_LITERAL: "Les sites ne peuvent être ouverts que par leur nom, pas par une adresse numérique.",
        R.RULE_DENY: "Ce site, ou cette partie du site, est fermé.",
        R.RULE_ALLOW: "Ce site est autorisé.",
        R.NO_MATCH: "Ce site ne figure pas sur la liste des sites autorisés.",
        R.METHOD_NOT_ALLOWED: "Cette action, comme l'envoi d'un formulaire, n'est pas autorisée sur ce site.",
        R.PATH_NOT_ALLOWED: "Seules certaines parties de ce site sont autorisées, et cette page n'en fait pas partie.",
        R.WEBSOCKET_NOT_ALLOWED: "Les connexions en direct (WebSocket) ne sont pas autorisées sur ce site.",
        R.NOT_IN_SCOPE: "Ce site n'est autorisé que pour certains groupes, cours ou visites vidéo.",
        R.OUTSIDE_WINDOW: "Ce site n'est autorisé qu'à certaines heures.",
        R.NOT_VALID_NOW: "L'autorisation pour ce site n'est pas valable en ce moment.",
        R.TERMINAL_KIND: "Ce site ne peut pas être utilisé sur ce type de terminal.",
        R.TERMINAL_CLOSED: "Les terminaux de ce type sont fermés en ce moment.",
        R.CONTROL_LOST: "La passerelle ne peut pas vérifier l'accès pour le moment. Réessayez dans quelques minutes.",
        R.TERMINAL_OFF: "Le personnel a désactivé ce terminal.",
        R.LOCKDOWN: "Le personnel a suspendu l'utilisation des terminaux pour le moment.",
        R.QUOTA_EXHAUSTED: "Les minutes du jour pour ce type de site sont épuisées.",
        R.QUOTA_UNAVAILABLE: "Vos minutes ne peuvent pas être comptées pour le moment. Réessayez dans quelques "
                             "minutes.",
        R.GATEWAY_ERROR: "Un problème est survenu dans la passerelle. Réessayez ; si cela continue, prévenez le "
                         "personnel.",
    },
    "de": {
        R.UNKNOWN_TERMINAL: "Dieser Computer ist nicht als Terminal registriert. Fragen Sie das Personal.",
        R.NO_SESSION: "An diesem Terminal ist niemand angemeldet.",
        R.INMATE_NOT_ACTIVE: "Ihr Konto kann das Internet jetzt nicht nutzen. Fragen Sie das Personal.",
        R.BAD_HOST: "Die Adresse ist ungültig, oder die Verbindung passt nicht zu ihr.",
        R.BAD_REQUEST: "Der Browser hat eine ungültige Anfrage gesendet.",
        R.BAD_PORT: "Diese Seite darf nicht über diesen Port geöffnet werden.",
        R.IP_LITERAL: "Seiten können nur über ihren Namen geöffnet werden, nicht über eine numerische Adresse.",
        R.RULE_DENY: "Diese Seite oder dieser Teil davon ist gesperrt.",
        R.RULE_ALLOW: "Diese Seite ist erlaubt.",
        R.NO_MATCH: "Diese Seite steht nicht auf der Liste der erlaubten Seiten.",
        R.METHOD_NOT_ALLOWED: "Diese Aktion, etwa das Absenden eines Formulars, ist auf dieser Seite nicht erlaubt.",
        R.PATH_NOT_ALLOWED: "Nur einige Teile dieser Seite sind erlaubt, und diese Seite gehört nicht dazu.",
        R.WEBSOCKET_NOT_ALLOWED: "Live-Verbindungen (WebSocket) sind auf dieser Seite nicht erlaubt.",
        R.NOT_IN_SCOPE: "Diese Seite ist nur für bestimmte Gruppen, Kurse oder Videobesuche erlaubt.",
        R.OUTSIDE_WINDOW: "Diese Seite ist nur zu bestimmten Zeiten erlaubt.",
        R.NOT_VALID_NOW: "Die Erlaubnis für diese Seite gilt zurzeit nicht.",
        R.TERMINAL_KIND: "Diese Seite kann an dieser Art von Terminal nicht benutzt werden.",
        R.TERMINAL_CLOSED: "Terminals dieser Art sind zurzeit geschlossen.",
        R.CONTROL_LOST: "Das Gateway kann den Zugang zurzeit nicht prüfen. Versuchen Sie es in einigen Minuten "
                        "noch einmal.",
        R.TERMINAL_OFF: "Das Personal hat dieses Terminal ausgeschaltet.",
        R.LOCKDOWN: "Das Personal hat die Nutzung der Terminals vorläufig gestoppt.",
        R.QUOTA_EXHAUSTED: "Die heutigen Minuten für diese Art von Seiten sind aufgebraucht.",
        R.QUOTA_UNAVAILABLE: "Ihre Minuten können zurzeit nicht gezählt werden. Versuchen Sie es in einigen Minuten "
                             "noch einmal.",
        R.GATEWAY_ERROR: "Im Gateway ist ein Fehler aufgetreten. Versuchen Sie es noch einmal; wenn es wieder "
                         "passiert, sagen Sie es dem Personal.",
    },
}

RULED: dict[str, dict[ReasonCode, str]] = {
    "en": {
        R.BAD_PORT: "The rule “{rule}” does not allow this site on this port.",
        R.RULE_DENY: "This site, or this part of it, is closed by the rule “{rule}”.",
        R.RULE_ALLOW: "This site is allowed by the rule “{rule}”.",
        R.METHOD_NOT_ALLOWED: "This action, such as sending a form, is not allowed by the rule “{rule}”.",
        R.PATH_NOT_ALLOWED: "The rule “{rule}” allows only some parts of this site, and this page is not one of them.",
        R.WEBSOCKET_NOT_ALLOWED: "Live connections (WebSocket) are not allowed by the rule “{rule}”.",
        R.NOT_IN_SCOPE: "The rule “{rule}” allows this site only for some groups, courses or video visits.",
        R.OUTSIDE_WINDOW: "The rule “{rule}” allows this site only at certain hours.",
        R.NOT_VALID_NOW: "The rule “{rule}” is not valid at this time.",
        R.TERMINAL_KIND: "The rule “{rule}” allows this site only on other kinds of terminals.",
    },
    "nl": {
        R.BAD_PORT: "De regel ‘{rule}’ staat deze site niet toe via deze poort.",
        R.RULE_DENY: "Deze site, of dit deel ervan, is afgesloten door de regel ‘{rule}’.",
        R.RULE_ALLOW: "Deze site is toegestaan door de regel ‘{rule}’.",
        R.METHOD_NOT_ALLOWED: "Deze handeling, zoals een formulier versturen, is niet toegestaan door de regel "
                              "‘{rule}’.",
        R.PATH_NOT_ALLOWED: "De regel ‘{rule}’ staat alleen sommige delen van deze site toe, en deze pagina hoort daar "
                            "niet bij.",
        R.WEBSOCKET_NOT_ALLOWED: "Live-verbindingen (WebSocket) zijn niet toegestaan door de regel ‘{rule}’.",
        R.NOT_IN_SCOPE: "De regel ‘{rule}’ staat deze site alleen toe voor bepaalde groepen, cursussen of "
                        "videobezoeken.",
        R.OUTSIDE_WINDOW: "De regel ‘{rule}’ staat deze site alleen op bepaalde uren toe.",
        R.NOT_VALID_NOW: "De regel ‘{rule}’ geldt op dit moment niet.",
        R.TERMINAL_KIND: "De regel ‘{rule}’ staat deze site alleen toe op andere soorten terminals.",
    },
    "fr": {
        R.BAD_PORT: "La règle « {rule} » n'autorise pas ce site sur ce port.",
        R.RULE_DENY: "Ce site, ou cette partie du site, est fermé par la règle « {rule} ».",
        R.RULE_ALLOW: "Ce site est autorisé par la règle « {rule} ».",
        R.METHOD_NOT_ALLOWED: "Cette action, comme l'envoi d'un formulaire, n'est pas autorisée par la règle "
                              "« {rule} ».",
        R.PATH_NOT_ALLOWED: "La règle « {rule} » n'autorise que certaines parties de ce site, et cette page n'en fait "
                            "pas partie.",
        R.WEBSOCKET_NOT_ALLOWED: "Les connexions en direct (WebSocket) ne sont pas autorisées par la règle « {rule} ».",
        R.NOT_IN_SCOPE: "La règle « {rule} » n'autorise ce site que pour certains groupes, cours ou visites vidéo.",
        R.OUTSIDE_WINDOW: "La règle « {rule} » n'autorise ce site qu'à certaines heures.",
        R.NOT_VALID_NOW: "La règle « {rule} » n'est pas valable en ce moment.",
        R.TERMINAL_KIND: "La règle « {rule} » n'autorise ce site que sur d'autres types de terminaux.",
    },
    "de": {
        R.BAD_PORT: "Die Regel „{rule}“ erlaubt diese Seite nicht über diesen Port.",
        R.RULE_DENY: "Diese Seite oder dieser Teil davon ist durch die Regel „{rule}“ gesperrt.",
        R.RULE_ALLOW: "Diese Seite ist durch die Regel „{rule}“ erlaubt.",
        R.METHOD_NOT_ALLOWED: "Diese Aktion, etwa das Absenden eines Formulars, ist durch die Regel „{rule}“ nicht "
                              "erlaubt.",
        R.PATH_NOT_ALLOWED: "Die Regel „{rule}“ erlaubt nur einige Teile dieser Seite, und diese Seite gehört nicht "
                            "dazu.",
        R.WEBSOCKET_NOT_ALLOWED: "Live-Verbindungen (WebSocket) sind durch die Regel „{rule}“ nicht erlaubt.",
        R.NOT_IN_SCOPE: "Die Regel „{rule}“ erlaubt diese Seite nur für bestimmte Gruppen, Kurse oder Videobesuche.",
        R.OUTSIDE_WINDOW: "Die Regel „{rule}“ erlaubt diese Seite nur zu bestimmten Zeiten.",
        R.NOT_VALID_NOW: "Die Regel „{rule}“ gilt zurzeit nicht.",
        R.TERMINAL_KIND: "Die Regel „{rule}“ erlaubt diese Seite nur an anderen Arten von Terminals.",
    },
}

KINDS = {R.NO_SESSION: "login", R.TERMINAL_CLOSED: "closed", R.QUOTA_EXHAUSTED: "used",
         **{code: "paused" for code in (R.UNKNOWN_TERMINAL, R.INMATE_NOT_ACTIVE, R.BAD_REQUEST, R.CONTROL_LOST,
                                        R.TERMINAL_OFF, R.LOCKDOWN, R.QUOTA_UNAVAILABLE, R.GATEWAY_ERROR)}}
"""Which page a reason gets; any other code gets the "blocked" page."""
ASKABLE = frozenset({R.BAD_PORT, R.IP_LITERAL, R.RULE_DENY, R.NO_MATCH, R.METHOD_NOT_ALLOWED, R.PATH_NOT_ALLOWED,
                     R.WEBSOCKET_NOT_ALLOWED, R.NOT_IN_SCOPE, R.NOT_VALID_NOW, R.TERMINAL_KIND})
"""Reasons a site request in the portal can change, so the page suggests one."""


@dataclass(frozen=True, slots=True)
class BlockPage:
    url: str
    code: ReasonCode
    portal_url: str
    language: str = "en"
    rule: str = ""
    """The id of the rule behind the refusal, shown small beside the code for staff."""
    description: str = ""
    """The rule's description as staff wrote it, named in the reason; empty when the rule has none."""
    opens_at: datetime | None = None
    """When the refusal lifts (facility wall-clock time): the terminal opens, the rule's window or new minutes."""
    via: str = ""
    """The host whose redirect led here, for a refused redirect."""
    zone: ZoneInfo | None = None
    """The facility's time zone: times are written as the language is written in its country, as in the portal."""

    @property
    def kind(self) -> str:
        return KINDS.get(self.code, "blocked")

    @property
    def ask_url(self) -> str:
        """The portal's request form for this address: percent-encoded whole, so nothing in it is markup or a
        second query parameter."""
        return f"{self.portal_url.rstrip('/')}/ask?url={quote(self.url, safe='')}"

    def reason(self, lang: str) -> str:
        if self.description and self.code in RULED[lang]:
            return RULED[lang][self.code].format(rule=self.description)
        return REASONS[lang][self.code]

    def render(self) -> bytes:
        lang = self.language if self.language in TEXT else "en"
        t = TEXT[lang]
        opens = ""
        if self.opens_at is not None:
            locale = regional(lang, self.zone)
            when = t["at"].format(day=format_date(self.opens_at, "full", locale=locale),
                                  time=format_time(self.opens_at, "short", locale=locale))
            key = {"closed": "opens", "used": "renewed"}.get(self.kind, "window_opens")
            opens = t[key].format(when=when)
        staff = t["code"].format(code=self.code.value)
        if self.rule:
            staff += " · " + t["rule"].format(rule=self.rule)
        template = _env.get_template("blocked.html")
        return template.render(
            page=self, lang=lang, t=t, title=t[f"{self.kind}_title"], lead=t[self.kind], opens=opens,
            reason=self.reason(lang) if self.kind in ("blocked", "paused") else "",
            via=t["via"].format(host=self.via) if self.via else "", ask=self.code in ASKABLE, staff=staff,
        ).encode("utf-8")


def page_for(decision: Decision, url: str, portal_url: str, language: str, policy: Snapshot, *,
             via: str = "") -> BlockPage:
    """The page for a refusal: its first reason, with the description of its rule from the policy in force."""
    reason = decision.reasons[0]
    return BlockPage(url, reason.code, portal_url, language, reason.rule_id, rule_description(policy, reason.rule_id),
                     decision.opens_at, via, policy.timezone)




_described: tuple[Snapshot | None, dict[str, str]] = (None, {})


def rule_description(policy: Snapshot, rule_id: str) -> str:
    """A rule's description by id ("" when it has none), indexed once per snapshot."""
    global _described
    if not rule_id:
        return ""
    if _described[0] is not policy:
        _described = (policy, {rule.id: rule.description for rule in policy.rules if rule.description})
    return _described[1].get(rule_id, "")



def language_for(live: str | None, accept_language: str, default: str, handed: str = "") -> str:
    """The language of a block page: the live session's (`live`; "" when nobody is logged in, None when the
    session could not be looked up, then the one the connection was handed over with); with nobody logged in,
    the browser's Accept-Language, then the facility's language."""
    chosen = handed if live is None else live
    return chosen if chosen in TEXT else negotiate(accept_language, default if default in TEXT else "en")


HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "X-Gatehouse-Blocked": "1",
}
