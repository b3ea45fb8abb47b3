"""Policy rules and their YAML form. Parsing is pure: text in, rules or located errors out."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import yaml

from policies.hosts import HostError, canonical_host


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class Mode(enum.StrEnum):
    INSPECT = "inspect"
    PASSTHROUGH = "passthrough"


SAFE_METHODS = frozenset({"GET", "HEAD"})
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RULE_KEYS = frozenset({"id", "allow", "deny", "mode", "methods", "description"})


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
        if wildcard and "." not in host:
            raise ValueError(f"{text!r} would cover a whole top-level domain")
        return cls(host, wildcard)

    def __str__(self) -> str:
        return f"*.{self.host}" if self.wildcard else self.host


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: Effect
    hosts: tuple[HostPattern, ...]
    mode: Mode = Mode.INSPECT
    methods: frozenset[str] = SAFE_METHODS
    description: str = ""
    source: str = ""


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
    methods = SAFE_METHODS
    if "methods" in fields:
        given = {m.upper() for m, _ in _strings(fields["methods"], "methods")}
        unknown = sorted(given - KNOWN_METHODS)
        if unknown:
            raise _Located(fields["methods"], f"unknown method {unknown[0]}")
        methods = frozenset(given)
    description = str(fields["description"].value) if "description" in fields else ""
    return Rule(rule_id, effect, tuple(hosts), mode, methods, description, source)


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
    rules_node = None
    for key_node, value_node in root.value:
        if key_node.value != "rules":
            result.errors.append(PolicyError(source, _line(key_node), f"unknown top-level key {key_node.value!r}"))
        else:
            rules_node = value_node
    if rules_node is None:
        if not result.errors:
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
    return result
