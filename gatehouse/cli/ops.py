"""Commands that set up and run an installation: init, db, run, demo, policy, audit."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatehouse.audit.signing import ensure_signing_key, key_paths
from gatehouse.ca import ca_cert_file, create_ca
from gatehouse.db.engine import make_engine, session_factory, upgrade
from gatehouse.errors import InvalidInput
from gatehouse.explain import explain
from gatehouse.facility import ensure_facility
from gatehouse.kernel import Kernel, write_secret
from gatehouse.policy_store import check_files, dormant
from gatehouse.settings import CONFIG_NAME, Resolve, Settings, default_config_text, load_settings

EXAMPLE_POLICY = """\
# Policy rules: allow or deny hosts. Deny wins over allow; a host no rule allows is denied.
# `*.example.org` covers every name below example.org (not example.org itself).
# Allowed hosts are inspected (TLS re-signed with the facility CA, only GET and HEAD pass) unless a rule
# says `mode: passthrough` (no inspection) or lists more `methods`.
rules: []
#  - id: khan-academy
#    allow: [www.khanacademy.org, "*.kastatic.org"]
#  - id: no-mail
#    deny: [mail.example.org]
# Daily minutes per quota category (a rule's `quota`, default general); unnamed categories are unlimited.
# quotas:
#   default: {general: 60, jobs: 120, learning: unlimited}
#   groups:
#     school: {general: 90}
"""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("init", parents=[common], help="create a data dir: settings, database, facility CA")
    p.add_argument("--facility", help="facility name written into the settings")
    p.add_argument("--timezone", help="facility time zone, e.g. Europe/Brussels")
    p.set_defaults(handler=cmd_init)

    db = commands.add_parser("db", parents=[common], help="database schema").add_subparsers(
        dest="db_command", metavar="ACTION", required=True)
    db.add_parser("upgrade", parents=[common], help="apply pending migrations").set_defaults(handler=cmd_db_upgrade)

    p = commands.add_parser("run", parents=[common], help="run the portal and the gateway in one process")
    add_run_options(p)
    p.add_argument("--only", choices=["gateway", "portal", "visits"],
                   help="run one plane alone (several gateway nodes, portals apart from them, or the visitors' public "
                        "listener; needs redis.url)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="gateway processes sharing the proxy port (SO_REUSEPORT); more than 1 needs redis.url")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser("demo", parents=[common],
                            help="start a throw-away demo facility with a built-in content site")
    add_run_options(p)
    p.add_argument("--keep", action="store_true", help="keep the demo data dir after exit")
    p.set_defaults(handler=cmd_demo)

    policy = commands.add_parser("policy", parents=[common], help="policy files").add_subparsers(
        dest="policy_command", metavar="ACTION", required=True)
    p = policy.add_parser("check", parents=[common], help="validate policy files; errors as file:line: message")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(handler=cmd_policy_check)

    p = policy.add_parser("explain", parents=[common], help="show the decision for an inmate and a URL, and why")
    p.add_argument("--inmate", required=True, help="inmate number")
    p.add_argument("--url", required=True, help="http:// or https:// URL")
    p.add_argument("--terminal", help="terminal name (its kind matters to some rules)")
    p.add_argument("--at", type=_when_local, help="time in the facility's zone, ISO 8601 (default: now)")
    p.add_argument("--method", default="GET", help="HTTP method (default GET)")
    p.set_defaults(handler=cmd_policy_explain)


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--portal-host", help="portal listen address (default 127.0.0.1)")
    p.add_argument("--portal-port", type=int, help="portal port (default 8080)")
    p.add_argument("--proxy-host", help="gateway listen address (default 127.0.0.1)")
    p.add_argument("--proxy-port", type=int, help="gateway port (default 3128)")
    p.add_argument("--visits-port", type=int, help="port of the visitors' public listener (default 8090)")
    p.add_argument("--resolve", action="append", default=[], metavar="HOST=ADDR:PORT",
                   help="send HOST to ADDR:PORT, like curl --resolve (repeatable)")


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for option, name in (("portal_host", "portal.host"), ("portal_port", "portal.port"),
                         ("proxy_host", "proxy.host"), ("proxy_port", "proxy.port"), ("visits_port", "visits.port")):
        if getattr(args, option) is not None:
            changes[name.replace(".", "__")] = getattr(args, option)
    return changes


def apply_run_options(settings: Settings, args: argparse.Namespace) -> Settings:
    settings = settings.replace(**run_overrides(args))
    if args.resolve:
        try:
            extra = tuple(Resolve.parse(spec) for spec in args.resolve)
        except ValueError as exc:
            raise InvalidInput(f"--resolve: {exc}") from None
        settings = settings.replace(proxy__resolve=[str(r) for r in settings["proxy.resolve"] + extra])
    return settings


def initialise(data_dir: Path, overrides: dict[str, Any] | None = None, *, quiet: bool = False) -> Settings:
    """Create what a data dir needs; keep whatever exists (safe to run twice)."""
    def say(text: str) -> None:
        if not quiet:
            print(text)

    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / CONFIG_NAME
    if not config.exists():
        config.write_text(default_config_text(overrides), encoding="utf-8")
        say(f"wrote {config}")
    settings = load_settings(data_dir)
    if write_secret(settings):
        say(f"wrote {settings.secret_file} (keep it private)")
    if ensure_signing_key(data_dir):
        private, public = key_paths(data_dir)
        say(f"wrote {private} (signs audit checkpoints; keep it private) and {public}")
    settings.policy_dir.mkdir(exist_ok=True)
    example = settings.policy_dir / "example.yaml"
    if not any(settings.policy_dir.iterdir()):
        example.write_text(EXAMPLE_POLICY, encoding="utf-8")
        say(f"wrote {example}")
    if create_ca(settings.ca_dir, settings["facility.name"]):
        say(f"created the facility CA; terminals must trust {ca_cert_file(settings.ca_dir)}")
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with session_factory(engine).begin() as session:
            ensure_facility(session, settings)
    finally:
        engine.dispose()
    say(f"database ready ({settings.database_url.split('://')[0]})")
    return settings


def cmd_init(args: argparse.Namespace) -> int:
    overrides = {}
    if args.facility:
        overrides["facility.name"] = args.facility
    if args.timezone:
        overrides["facility.timezone"] = args.timezone
    initialise(args.data_dir, overrides)
    print(f"next: gatehouse terminal add --data-dir {args.data_dir} ...; then gatehouse run --data-dir {args.data_dir}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    print("database schema is up to date")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gatehouse.cli.serve import serve
    from gatehouse.cli.workers import Workers

    settings = apply_run_options(load_settings(args.data_dir), args)
    if args.only and not settings["redis.url"]:
        raise InvalidInput(f"--only {args.only}: the planes of separate processes meet through Redis; set redis.url "
                           "(or GATEHOUSE_REDIS_URL), or run both planes in one process without --only")
    if args.only == "gateway" and not settings["portal.public_url"]:
        raise InvalidInput("--only gateway: set portal.public_url (or GATEHOUSE_PORTAL_PUBLIC_URL) to the portal's "
                           "address as terminals reach it; block pages link there")
    if args.workers < 1:
        raise InvalidInput(f"--workers {args.workers}: give 1 or more gateway processes")
    if args.workers > 1 and not settings["redis.url"]:
        raise InvalidInput(f"--workers {args.workers}: worker processes share minutes and the control bus through "
                           "Redis; set redis.url (or GATEHOUSE_REDIS_URL), or run one process")
    if args.workers > 1 and args.only in ("portal", "visits"):
        raise InvalidInput(f"--workers counts gateway processes; --only {args.only} runs none")
    workers = Workers(args.workers, args.worker, tuple(args.resolve)) if args.workers > 1 or args.worker else None
    return serve(settings, only=args.only or "", workers=workers)


def cmd_demo(args: argparse.Namespace) -> int:
    from gatehouse.demo.run import run_demo

    return run_demo(args)


def cmd_policy_check(args: argparse.Namespace) -> int:
    missing = [p for p in args.files if not p.is_file()]
    for path in missing:
        print(f"{path}:1: no such file", file=sys.stderr)
    result = check_files(p for p in args.files if p.is_file())
    warnings = dormant(result)
    for line in sorted([*result.errors, *warnings], key=lambda e: (e.source, e.line)):
        print(line, file=sys.stderr)
    if result.errors or missing:
        print(f"{len(result.errors) + len(missing)} error(s); nothing was changed", file=sys.stderr)
        return 1
    noted = f", {len(warnings)} warning(s)" if warnings else ""
    print(f"ok: {len(result.rules)} rule(s) in {len(args.files)} file(s){noted}")
    return 0


def _when_local(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-23T09:30") from None


def cmd_policy_explain(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        if not kernel.policies.load():
            for error in kernel.policies.errors:
                print(error, file=sys.stderr)
            print("the policy has errors; fix them first (gatehouse policy check)", file=sys.stderr)
            return 1
        at = args.at or datetime.now(UTC)
        with kernel.factory() as session:
            result = explain(session, kernel.policies.snapshot, inmate=args.inmate, url=args.url,
                             terminal=args.terminal, at=at, method=args.method)
        print("\n".join(result.lines()))
    finally:
        kernel.engine.dispose()
    return 0 if result.final.allowed else 1
