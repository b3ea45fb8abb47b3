"""One Settings object, read once at start-up from `<data-dir>/gatehouse.toml` and `GATEHOUSE_*` variables.

Every setting is declared once in SETTINGS with its default and help text; the commented default file,
the README table and validation all come from that table.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONFIG_NAME = "gatehouse.toml"
ENV_PREFIX = "GATEHOUSE_"


class SettingsError(Exception):
    """A setting has a bad value; the message names the setting and where it came from."""


@dataclass(frozen=True, slots=True)
class Resolve:
    """`HOST=ADDR:PORT` sends HOST to ADDR:PORT, like curl's --resolve; `HOST:443=ADDR:PORT` only for port 443."""

    host: str
    address: str
    port: int
    only_port: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Resolve:
        name, sep, target = spec.partition("=")
        addr, colon, port = target.rpartition(":")
        host, _, only = name.partition(":")
        if not sep or not colon or not host or not addr or not port.isdigit() or (only and not only.isdigit()):
            raise ValueError(f"expected HOST=ADDR:PORT or HOST:PORT=ADDR:PORT, got {spec!r}")
        if not 0 < int(port) < 65536 or (only and not 0 < int(only) < 65536):
            raise ValueError(f"port out of range in {spec!r}")
        return cls(host.strip().lower().rstrip("."), addr.strip("[]"), int(port), int(only) if only else None)

    def __str__(self) -> str:
        name = f"{self.host}:{self.only_port}" if self.only_port else self.host
        return f"{name}={self.address}:{self.port}"


ResolveTable = dict[tuple[str, int | None], tuple[str, int]]


def resolve_table(entries: tuple[Resolve, ...]) -> ResolveTable:
    return {(r.host, r.only_port): (r.address, r.port) for r in entries}


def lookup(table: ResolveTable, host: str, port: int) -> tuple[str, int] | None:
    return table.get((host, port)) or table.get((host, None))


def _port(value: Any) -> int:
    port = int(value)
    if not 0 <= port < 65536:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def _positive(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a whole number above zero")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(_text(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use a name such as Europe/Brussels)") from exc
    return str(value)


def _language(value: Any) -> str:
    if value not in LANGUAGES:
        raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
    return str(value)


def _resolve_list(value: Any) -> tuple[Resolve, ...]:
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ValueError("must be a list of HOST=ADDR:PORT")
    return tuple(Resolve.parse(str(item)) for item in value)


LANGUAGES = ("en", "nl", "fr", "de")


def _engine(value: Any) -> str:
    text = _text(value)
    if text not in ("front", "mitmproxy"):
        raise ValueError("must be front or mitmproxy")
    return text


def _node_name(value: Any) -> str:
    text = _text(value)
    if text and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$", text):
        raise ValueError("must be letters, digits, '.', '_' or '-' (at most 48)")
    return text


def _host_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError("must be a list of host names")
    return tuple(sorted({item.strip().lower().rstrip(".") for item in value}))


def _host_patterns(value: Any) -> tuple[str, ...]:
    """Host names or `*.domain` patterns, checked as policy rules check theirs (no `*.com`)."""
    from policies.rules import HostPattern

    try:
        return tuple(sorted({str(HostPattern.parse(item)) for item in _host_list(value)}))
    except ValueError as exc:
        raise ValueError(f"must be a list of host names or *.domain patterns: {exc}") from None


BROWSER_SERVICE_HOSTS = (
    "accounts.google.com", "android.clients.google.com", "chromewebstore.googleapis.com",
    "chromesyncpasswords-pa.googleapis.com", "clients1.google.com", "clients2.google.com",
    "clients2.googleusercontent.com", "clients4.google.com", "clientservices.googleapis.com",
    "content-autofill.googleapis.com", "dl.google.com", "*.gvt1.com", "*.gvt2.com", "mtalk.google.com",
    "optimizationguide-pa.googleapis.com", "passwordsleakcheck-pa.googleapis.com", "safebrowsing.google.com",
    "safebrowsing.googleapis.com", "safebrowsingohttpgateway.googleapis.com", "sb-ssl.google.com",
    "translate.googleapis.com", "translate-pa.googleapis.com", "update.googleapis.com",
)
"""What Chromium calls on its own (sign-in, sync, component and extension updates, safe browsing, translate,
autofill and optimisation hints) when flags or a managed policy do not switch it off."""


def _triggers(value: Any) -> tuple[str, ...]:
    from gatehouse.curation.proposals import parse_triggers

    return parse_triggers(value)


def _count(value: Any) -> int:
    """A whole number, 0 allowed (0 means "none" where the help says so)."""
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number, 0 or more")
    return number


def _minutes_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("must be a list of minutes such as [30, 60]")
    return tuple(sorted({_positive(item) for item in value}))


def _windows(value: Any) -> tuple[str, ...]:
    from policies.windows import Window

    if isinstance(value, str):
        value = [part for part in value.split(";") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of windows such as [\"mon-fri 14:00-17:00\"]")
    return tuple(Window.parse(str(item)).text for item in value)


def _urls(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of addresses")
    for item in value:
        if not item.startswith(("turn:", "turns:", "stun:")):
            raise ValueError(f"{item!r} must start with turn:, turns: or stun:")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any]
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace(".", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("facility.name", "Demo Facility", "Name of the facility this installation serves.", _text),
    Setting("facility.timezone", "Europe/Brussels", "The facility's time zone (IANA name).", _timezone),
    Setting("facility.language", "en", "Default language of pages: en, nl, fr or de.", _language),
    Setting("database.url", "", "SQLAlchemy URL; empty means the SQLite file <data-dir>/gatehouse.db.", _text,
            secret=True),
    Setting("redis.url", "", "Redis URL for shared state between nodes; empty means in-process.", _text,
            secret=True),
    Setting("portal.host", "127.0.0.1", "Address the portal listens on.", _text),
    Setting("portal.port", 8080, "Port the portal listens on.", _port),
    Setting("portal.public_url", "", "URL terminals use to reach the portal; empty means http://HOST:PORT.",
            _text),
    Setting("portal.secure_cookies", False,
            "Mark cookies Secure (set true when the portal is served over HTTPS).", _boolean),
    Setting("proxy.host", "127.0.0.1", "Address the gateway listens on (the terminals' proxy).", _text),
    Setting("proxy.port", 3128, "Port the gateway listens on.", _port),
    Setting("proxy.resolve", (), "HOST=ADDR:PORT mappings for internal content servers, like curl --resolve.",
            _resolve_list),
    Setting("proxy.upstream_ca_file", "", "Extra CA bundle (PEM) trusted for upstream servers, e.g. internal.",
            _text),
    Setting("proxy.engine", "front",
            "What carries inspected tunnels and plain HTTP: the gateway's own engine, HTTP/1.1 and HTTP/2 (front), "
            "or the embedded mitmproxy inspector (mitmproxy).", _engine),
    Setting("proxy.identity_grace_seconds", 60,
            "During a database outage, how long an identity looked up before it is still trusted.", _positive),
    Setting("sessions.idle_minutes", 15,
            "An inmate session ends after this many idle minutes (activity is written at most every thirtieth of them, "
            "so up to 30 s of 15 minutes sooner).", _positive),
    Setting("sessions.max_hours", 8, "An inmate session ends this many hours after login at the latest.",
            _positive),
    Setting("audit.node", "", "This node's name in the audit chain; empty means the host name.", _node_name),
    Setting("audit.checkpoint_seconds", 60, "Seconds between signed checkpoints of the audit chain.", _positive),
    Setting("audit.max_backlog", 100_000,
            "Records that may wait in segment files for the database; past this the gateway refuses traffic.",
            _positive),
    Setting("audit.privileged_hosts", (), "Hosts (e.g. a lawyer's portal) recorded without paths.", _host_list),
    Setting("audit.alert_burst", 20, "Denied requests by one inmate within the burst window that raise an alert.",
            _positive),
    Setting("audit.alert_burst_minutes", 5, "The burst window for the alert above, in minutes.", _positive),
    Setting("audit.alert_daily_minutes", 240,
            "Active minutes of one inmate in a day (a minute with any request) that raise an alert.", _positive),
    Setting("audit.browser_service_hosts", BROWSER_SERVICE_HOSTS,
            "Hosts the browser calls by itself (updates, sync, safe browsing); names or *.domain. Their requests "
            "are recorded but count in no alert and not among the busiest sites.", _host_patterns),
    Setting("audit.alert_scan_seconds", 60, "How often the portal looks for new alerts in the audit log.",
            _positive),
    Setting("login.max_attempts", 5, "Wrong PINs in a row before an inmate account is locked.", _positive),
    Setting("login.lock_minutes", 15, "How long a locked inmate account stays locked.", _positive),
    Setting("login.window_minutes", 15, "The window in which login attempts are counted for the limits below.",
            _positive),
    Setting("login.attempts_per_address", 30,
            "Login attempts (inmate or staff) one address may make per window before it must wait.", _positive),
    Setting("login.staff_failures_per_account", 5,
            "Wrong passwords or codes for one staff account from one address per window before that address "
            "must wait for the window's end; as many from every address together before each attempt waits.",
            _positive),
    Setting("login.staff_wait_seconds", 2,
            "Past those failures from every address, the wait before the next attempt for the account; it "
            "doubles with each attempt.", _positive),
    Setting("login.staff_wait_max_seconds", 120,
            "The longest that wait grows (the account is never locked: its holder gets in after it).",
            _positive),
    Setting("login.attempts_per_minute", 600, "Login attempts per minute across the whole portal.", _positive),
    Setting("staff.idle_minutes", 15, "A staff session ends after this many idle minutes.", _positive),
    Setting("staff.max_hours", 10, "A staff session ends this many hours after login at the latest.", _positive),
    Setting("curation.security_approves", ("everyone", "group", "course", "passthrough", "methods", "websocket",
                                           "ports"),
            "Proposals that only security staff may approve: for everyone, a group or a course's learners, "
            "passthrough, methods other than GET and HEAD, WebSocket, ports other than 80 and 443 (or all); others "
            "need a second member of education or security staff.", _triggers),
    Setting("curation.max_open_requests", 3, "Requests for sites one inmate may have waiting at once.", _positive),
    Setting("curation.default_days", 30, "How long a curated rule lasts when its proposal names no last day.",
            _positive),
    Setting("curation.ending_days", 7, "Curated rules ending within this many days are listed for review.",
            _positive),
    Setting("curation.recheck_hours", 24,
            "How often the page of each approved inspected rule is fetched again and compared (the second look on "
            "drift).", _positive),
    Setting("library.cache_mb", 128,
            "Decompressed offline-library text the portal keeps in memory (libzim's cluster cache), in MiB.",
            _positive),
    Setting("resources.stale_days", 180,
            "Directory entries not checked for this many days are listed as stale for staff.", _positive),
    Setting("resources.check_links_hours", 24,
            "How often the website of every directory entry is visited to find dead or redirected links.",
            _positive),
    Setting("visits.host", "127.0.0.1",
            "Address of the public listener for visitors (families and lawyers), meant for the internet behind TLS; "
            "it serves visitor pages only.", _text),
    Setting("visits.port", 8090, "Port of the public listener for visitors.", _port),
    Setting("visits.public_url", "",
            "URL visitors use to reach the public listener (in e-mails); empty means http://HOST:PORT.", _text),
    Setting("visits.auto_approve", False,
            "Approve a booking that keeps every rule at once, without waiting for staff.", _boolean),
    Setting("visits.hours", ("mon-fri 14:00-17:00", "sat 10:00-12:00"),
            "Visiting hours of units that have none of their own (facility time).", _windows),
    Setting("visits.lengths", (30, 60), "The visit lengths one may book, in minutes.", _minutes_list),
    Setting("visits.min_lead_hours", 24, "A visit is booked at least this many hours before it starts.", _count),
    Setting("visits.max_ahead_days", 14, "A visit is booked at most this many days before it starts.", _positive),
    Setting("visits.per_week", 0, "Visits one inmate may have in a week (Monday to Sunday); 0 means no limit.",
            _count),
    Setting("visits.per_month", 2, "Visits one inmate may have in a calendar month; 0 means no limit.", _count),
    Setting("visits.minutes_per_month", 60, "Minutes of visits one inmate may have in a month; 0 means no limit.",
            _count),
    Setting("visits.max_visitors", 3, "Visitors who may join one visit (besides the inmate).", _positive),
    Setting("visits.max_inmates_per_visitor", 3, "Inmates' approved lists one visitor may be on.", _positive),
    Setting("visits.supervised_at_once", 4,
            "Ordinary visits that may run at one time, because each needs a supervisor's watch (legal visits do "
            "not count).", _positive),
    Setting("visits.waiting_room_minutes", 10,
            "How long before the start the waiting room opens to test camera and sound.", _count),
    Setting("visits.record", False,
            "Record ordinary visits (both sides are told before they join); legal visits never are.", _boolean),
    Setting("visits.recording_days", 90, "Days recordings are kept before they are pruned.", _positive),
    Setting("visits.turn_urls", (),
            "The facility's TURN relay (coturn) as turn:HOST:PORT?transport=tcp and the like; empty means calls "
            "run directly (the demo on one machine).", _urls),
    Setting("visits.turn_secret", "", "The relay's shared secret (coturn's static-auth-secret).", _text,
            secret=True),
    Setting("mail.host", "", "SMTP relay for visit e-mails; empty means mail waits in the outbox.", _text),
    Setting("mail.port", 25, "Port of the SMTP relay.", _port),
    Setting("mail.sender", "visits@gatehouse.invalid", "From address of visit e-mails.", _text),
    Setting("mail.starttls", False, "Use STARTTLS with the relay.", _boolean),
    Setting("mail.username", "", "Login at the relay; empty means none.", _text),
    Setting("mail.password", "", "Password at the relay.", _text, secret=True),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def database_url(self) -> str:
        url: str = self.values["database.url"]
        return url or f"sqlite:///{self.data_dir / 'gatehouse.db'}"

    @property
    def portal_url(self) -> str:
        url: str = self.values["portal.public_url"]
        return url or f"http://{self.values['portal.host']}:{self.values['portal.port']}"

    @property
    def ca_dir(self) -> Path:
        return self.data_dir / "ca"

    @property
    def policy_dir(self) -> Path:
        return self.data_dir / "policies"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def node(self) -> str:
        name: str = self.values["audit.node"]
        return name or re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "node"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "secret.key"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed by name (dots as in SETTINGS), validated like the file."""
        values = dict(self.values)
        for key, raw in changes.items():
            name = key.replace("__", ".")
            values[name] = _parse_one(SETTINGS_BY_NAME[name], raw, "the command line")
        return Settings(self.data_dir, values)


def _parse_one(setting: Setting, raw: Any, where: str) -> Any:
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        shown = "(hidden)" if setting.secret else repr(raw)
        raise SettingsError(f"{where}: setting {setting.name} = {shown}: {exc}") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_settings(data_dir: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the file then the environment; stop with a SettingsError naming the setting and its source."""
    environ = os.environ if environ is None else environ
    data_dir = Path(data_dir).expanduser().resolve()
    path = data_dir / CONFIG_NAME
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
    unknown = sorted(set(raw) - set(SETTINGS_BY_NAME))
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]} (known: see `gatehouse init` output)")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = _parse_one(setting, environ[setting.env], f"environment {setting.env}")
        elif setting.name in raw:
            values[setting.name] = _parse_one(setting, raw[setting.name], str(path))
        else:
            values[setting.name] = setting.parse(setting.default)
    return Settings(data_dir, values)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(str(v)) for v in value) + "]"
    return str(value)


def default_config_text(overrides: Mapping[str, Any] | None = None) -> str:
    """The commented default file `gatehouse init` writes: every setting, its help and its default."""
    overrides = overrides or {}
    lines = [
        "# Gatehouse settings. Every GATEHOUSE_<SECTION>_<NAME> environment variable overrides the value here,",
        "# e.g. GATEHOUSE_DATABASE_URL=postgresql+psycopg://gatehouse@db/gatehouse.",
    ]
    section = ""
    for setting in SETTINGS:
        head, _, key = setting.name.partition(".")
        if head != section:
            section = head
            lines += ["", f"[{section}]"]
        lines.append(f"# {setting.help} ({setting.env})")
        if setting.name in overrides:
            lines.append(f"{key} = {_toml_value(overrides[setting.name])}")
        else:
            lines.append(f"# {key} = {_toml_value(setting.default)}")
    return "\n".join(lines) + "\n"
