"""Policy rules and their YAML form. Parsing is pure: text in, rules or located errors out."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType

import yaml
from publicsuffixlist import PublicSuffixList

from policies.budgets import Budgets, Profile, minutes
from policies.hosts import HostError, canonical_host, is_ip_literal
from policies.hours import OpeningHours
from policies.paths import canonical_path
from policies.windows import Window

_PSL = PublicSuffixList()


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class Mode(enum.StrEnum):
    INSPECT = "inspect"
    PASSTHROUGH = "passthrough"


SAFE_METHODS = frozenset({"GET", "HEAD"})
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DEFAULT_PORTS = frozenset({80, 443})
TERMINAL_KINDS = frozenset({"cell", "classroom", "library", "booth"})
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,63}$")
RULE_KEYS = frozenset({"id", "allow", "deny", "mode", "methods", "description", "paths", "ports", "websocket",
                       "groups", "inmates", "courses", "visit", "terminals", "windows", "valid_from", "valid_until",
                       "quota"})


@dataclass(frozen=True, slots=True)
class HostPattern:
    """An exact host, or `*.domain` for every name below domain (not domain itself)."""

    host: str
    wildcard: bool

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        text = text.strip()
        wildcard = text.startswith("*.")
        body = text[2:] if wildcard else text
        if any(c in body for c in "*/@ "):
            raise ValueError(f"{text!r} is not a host or *.domain pattern")
        try:
            host = canonical_host(body)
        except HostError as exc:
            raise ValueError(str(exc)) from None
        if wildcard and (is_ip_literal(host) or "." not in host or _PSL.is_public(host)):
            raise ValueError(f"{text!r} would cover a whole public suffix ({host} is one); name the site")
        return cls(host, wildcard)

    def __str__(self) -> str:
        return f"*.{self.host}" if self.wildcard else self.host


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule applies to a request when its host, scope and conditions all match.

    Empty `paths` means every path; empty `groups` and `inmates` mean everyone; empty `terminals` means every
    kind of terminal; empty `windows` means at any time. Allow rules pass only `methods` (GET and HEAD unless
    given); deny rules refuse every method unless `methods` narrows them.
    """

    id: str
    effect: Effect
    hosts: tuple[HostPattern, ...]
    mode: Mode = Mode.INSPECT
    methods: frozenset[str] = SAFE_METHODS
    description: str = ""
    source: str = ""
    paths: tuple[str, ...] = ()
    ports: frozenset[int] = DEFAULT_PORTS
    websocket: bool = False
    groups: frozenset[str] = frozenset()
    inmates: frozenset[str] = frozenset()
    terminals: frozenset[str] = frozenset()
    windows: tuple[Window, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    quota: str = "general"
    line: int = 0
    courses: frozenset[str] = frozenset()
    visit: bool = False


@dataclass(frozen=True, slots=True)
class PolicyError:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


@dataclass(slots=True)
class ParseResult:
    rules: list[Rule] = field(default_factory=list)
    errors: list[PolicyError] = field(default_factory=list)
    hours: OpeningHours = field(default_factory=OpeningHours)
    hours_lines: dict[str, int] = field(default_factory=dict)
    """Where each kind's hours were given (file line), to name both places when two files give them."""
    budgets: Budgets = field(default_factory=Budgets)
    budgets_lines: dict[str, int] = field(default_factory=dict)
    """Where each budget profile was given (`default`, `group school`, `inmate A1`), for the same reason."""
    key_lines: dict[str, dict[str, int]] = field(default_factory=dict)
    """Rule id -> the line of each key the rule gives, so a warning about one key can point at it."""


def _line(node: yaml.Node) -> int:
    line: int = node.start_mark.line
    return line + 1


def _strings(node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: list[tuple[str, yaml.Node]] = []
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise _Located(item, f"{what} must be a list of non-empty strings")
        out.append((str(item.value), item))
    return out


class _Located(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


def _rule(node: yaml.Node, source: str) -> Rule:
    if not isinstance(node, yaml.MappingNode):
        raise _Located(node, "each rule must be a mapping with id and allow or deny")
    fields: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in fields:
            raise _Located(key_node, f"duplicate key {key!r}")
        if key not in RULE_KEYS:
            raise _Located(key_node, f"unknown key {key!r} (known: {', '.join(sorted(RULE_KEYS))})")
        fields[key] = value_node
    if "id" not in fields:
        raise _Located(node, "rule has no id")
    rule_id = str(fields["id"].value)
    if not isinstance(fields["id"], yaml.ScalarNode) or not RULE_ID.match(rule_id):
        raise _Located(fields["id"], f"rule id {rule_id!r} must be lower-case letters, digits, '.', '_' or '-'")
    effects = [e for e in Effect if e.value in fields]
    if len(effects) != 1:
        raise _Located(node, f"rule {rule_id!r} needs exactly one of allow or deny")
    effect = effects[0]
    hosts = []
    for text, item in _strings(fields[effect.value], effect.value):
        try:
            hosts.append(HostPattern.parse(text))
        except ValueError as exc:
            raise _Located(item, f"rule {rule_id!r}: {exc}") from None
    mode = Mode.INSPECT
    if "mode" in fields:
        try:
            mode = Mode(str(fields["mode"].value))
        except ValueError:
            raise _Located(fields["mode"], "mode must be inspect or passthrough") from None
    methods = SAFE_METHODS if effect is Effect.ALLOW else KNOWN_METHODS
    if "methods" in fields:
        given = {m.upper() for m, _ in _strings(fields["methods"], "methods")}
        unknown = sorted(given - KNOWN_METHODS)
        if unknown:
            raise _Located(fields["methods"], f"unknown method {unknown[0]}")
        methods = frozenset(given)
    paths = tuple(_path(text, item) for text, item in _strings(fields["paths"], "paths")) if "paths" in fields else ()
    if mode is Mode.PASSTHROUGH and (paths or "methods" in fields):
        raise _Located(node, f"rule {rule_id!r}: passthrough is decided per host; paths and methods need inspect")
    ports = DEFAULT_PORTS
    if "ports" in fields:
        ports = frozenset(_port(text, item) for text, item in _strings(fields["ports"], "ports"))
    websocket = _bool(fields["websocket"]) if "websocket" in fields else False
    groups = frozenset(_names(fields, "groups", lower=True))
    inmates = frozenset(_names(fields, "inmates", lower=False))
    courses = frozenset(_names(fields, "courses", lower=True))
    visit = _bool(fields["visit"]) if "visit" in fields else False
    terminals = frozenset(_names(fields, "terminals", lower=True))
    if bad := sorted(terminals - TERMINAL_KINDS):
        kinds = ", ".join(sorted(TERMINAL_KINDS))
        raise _Located(fields["terminals"], f"unknown terminal kind {bad[0]!r} (kinds: {kinds})")
    windows = []
    for text, item in _strings(fields["windows"], "windows") if "windows" in fields else []:
        try:
            windows.append(Window.parse(text))
        except ValueError as exc:
            raise _Located(item, str(exc)) from None
    valid_from = _moment(fields["valid_from"]) if "valid_from" in fields else None
    valid_until = _moment(fields["valid_until"]) if "valid_until" in fields else None
    if valid_from and valid_until and valid_until <= valid_from:
        raise _Located(fields["valid_until"], "valid_until must be after valid_from")
    quota = _category(fields["quota"]) if "quota" in fields else "general"
    description = str(fields["description"].value) if "description" in fields else ""
    return Rule(rule_id, effect, tuple(hosts), mode, methods, description, source, paths, ports, websocket,
                groups, inmates, terminals, tuple(windows), valid_from, valid_until, quota, _line(node), courses,
                visit)


def _path(text: str, node: yaml.Node) -> str:
    if not text.startswith("/"):
        raise _Located(node, f"path {text!r} must start with /")
    canonical = canonical_path(text)
    return canonical + "/" if text.endswith("/") and not canonical.endswith("/") else canonical


def _port(text: str, node: yaml.Node) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _Located(node, f"port {text!r} must be a number from 1 to 65535")
    return int(text)


def _bool(node: yaml.Node) -> bool:
    value = str(node.value).lower() if isinstance(node, yaml.ScalarNode) else ""
    if value not in ("true", "false", "yes", "no"):
        raise _Located(node, "must be true or false")
    return value in ("true", "yes")


def _names(fields: dict[str, yaml.Node], key: str, *, lower: bool) -> list[str]:
    if key not in fields:
        return []
    names = []
    for text, item in _strings(fields[key], key):
        if not NAME.match(text):
            raise _Located(item, f"{key}: {text!r} is not a valid name")
        names.append(text.lower() if lower else text.upper())
    return names


def _moment(node: yaml.Node) -> datetime:
    """A date (start of that day) or a date and time, in the facility's local time."""
    text = str(node.value)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise _Located(node, f"{text!r} is not a date (2026-12-24) or date and time (2026-12-24T18:00)") from None


def _hours(hours_node: yaml.Node | None, closed_node: yaml.Node | None) -> tuple[OpeningHours, dict[str, int]]:
    kinds: dict[str, tuple[Window, ...]] = {}
    lines: dict[str, int] = {}
    if hours_node is not None:
        if not isinstance(hours_node, yaml.MappingNode):
            raise _Located(hours_node, "hours maps a terminal kind to its windows, e.g. cell: [mon-sun 07:00-22:00]")
        for key_node, value_node in hours_node.value:
            kind = str(key_node.value)
            if kind not in TERMINAL_KINDS:
                kinds_text = ", ".join(sorted(TERMINAL_KINDS))
                raise _Located(key_node, f"hours: {kind!r} is not a terminal kind ({kinds_text})")
            windows = []
            for text, item in _strings(value_node, f"hours.{kind}"):
                try:
                    windows.append(Window.parse(text))
                except ValueError as exc:
                    raise _Located(item, str(exc)) from None
            kinds[kind], lines[kind] = tuple(windows), _line(key_node)
    closed: set[date] = set()
    if closed_node is not None:
        for text, item in _strings(closed_node, "closed"):
            try:
                closed.add(date.fromisoformat(text))
            except ValueError:
                raise _Located(item, f"closed: {text!r} is not a date like 2026-12-25") from None
    return OpeningHours(MappingProxyType(kinds), frozenset(closed)), lines


def _category(node: yaml.Node) -> str:
    text = str(node.value).strip().lower() if isinstance(node, yaml.ScalarNode) else ""
    if not NAME.match(text) or "/" in text:
        raise _Located(node, f"quota category {text!r} must be a name of letters, digits, '.', '_' or '-'")
    return text


def _profile(node: yaml.Node, what: str) -> Profile:
    if not isinstance(node, yaml.MappingNode):
        raise _Located(node, f"{what} maps quota categories to minutes a day, e.g. {{general: 60, jobs: unlimited}}")
    profile: dict[str, int | None] = {}
    for key_node, value_node in node.value:
        category = _category(key_node)
        if category in profile:
            raise _Located(key_node, f"{what}: category {category!r} is given twice")
        try:
            profile[category] = minutes(str(value_node.value) if isinstance(value_node, yaml.ScalarNode) else "")
        except ValueError as exc:
            raise _Located(value_node, f"{what}.{category}: {exc}") from None
    return MappingProxyType(profile)


def _budgets(node: yaml.Node) -> tuple[Budgets, dict[str, int]]:
    if not isinstance(node, yaml.MappingNode):
        raise _Located(node, "quotas has default, groups and inmates, e.g. default: {general: 60}")
    default: Profile = MappingProxyType({})
    named: dict[str, dict[str, Profile]] = {"groups": {}, "inmates": {}}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key == "default":
            default, lines["default"] = _profile(value_node, "quotas.default"), _line(key_node)
        elif key in named:
            if not isinstance(value_node, yaml.MappingNode):
                raise _Located(value_node, f"quotas.{key} maps a name to its budgets, e.g. school: {{general: 90}}")
            for name_node, profile_node in value_node.value:
                name = str(name_node.value)
                if not NAME.match(name):
                    raise _Located(name_node, f"quotas.{key}: {name!r} is not a valid name")
                name = name.lower() if key == "groups" else name.upper()
                if name in named[key]:
                    raise _Located(name_node, f"quotas.{key}: {name} is given twice")
                named[key][name] = _profile(profile_node, f"quotas.{key}.{name}")
                lines[f"{key[:-1]} {name}"] = _line(name_node)
        else:
            raise _Located(key_node, f"quotas: unknown key {key!r} (known: default, groups, inmates)")
    return Budgets(default, MappingProxyType(named["groups"]), MappingProxyType(named["inmates"])), lines


def parse_policy(text: str, source: str) -> ParseResult:
    """Every rule that parses and every error, each error with its line, so one run reports them all."""
    result = ParseResult()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        result.errors.append(PolicyError(source, line, f"YAML syntax: {exc.problem or exc}"))
        return result
    if root is None:
        return result
    if not isinstance(root, yaml.MappingNode):
        result.errors.append(PolicyError(source, _line(root), "a policy file is a mapping with a rules list"))
        return result
    rules_node = hours_node = closed_node = quotas_node = None
    for key_node, value_node in root.value:
        if key_node.value == "rules":
            rules_node = value_node
        elif key_node.value == "hours":
            hours_node = value_node
        elif key_node.value == "closed":
            closed_node = value_node
        elif key_node.value == "quotas":
            quotas_node = value_node
        else:
            result.errors.append(PolicyError(source, _line(key_node), f"unknown top-level key {key_node.value!r}"
                                             " (a policy file has rules, hours, closed and quotas)"))
    if quotas_node is not None:
        try:
            result.budgets, result.budgets_lines = _budgets(quotas_node)
        except _Located as exc:
            result.errors.append(PolicyError(source, _line(exc.node), str(exc)))
    if hours_node is not None or closed_node is not None:
        try:
            result.hours, result.hours_lines = _hours(hours_node, closed_node)
        except _Located as exc:
            result.errors.append(PolicyError(source, _line(exc.node), str(exc)))
    if rules_node is None:
        if not result.errors and hours_node is None and closed_node is None and quotas_node is None:
            result.errors.append(PolicyError(source, _line(root), "no rules list"))
        return result
    if not isinstance(rules_node, yaml.SequenceNode):
        result.errors.append(PolicyError(source, _line(rules_node), "rules must be a list"))
        return result
    seen: dict[str, int] = {}
    for node in rules_node.value:
        try:
            rule = _rule(node, source)
        except _Located as exc:
            result.errors.append(PolicyError(source, _line(exc.node), str(exc)))
            continue
        if rule.id in seen:
            result.errors.append(
                PolicyError(source, _line(node), f"rule id {rule.id!r} already used on line {seen[rule.id]}"))
            continue
        seen[rule.id] = _line(node)
        result.rules.append(rule)
        result.key_lines[rule.id] = {str(key.value): _line(key) for key, _value in node.value}
    return result
