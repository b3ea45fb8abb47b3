"""Commands for the register of terminals and inmates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.models import TerminalKind
from gatehouse.errors import InvalidInput
from gatehouse.facility import ensure_facility
from gatehouse.inmates import add_inmate, list_inmates, set_pin
from gatehouse.kernel import Kernel
from gatehouse.roster import apply_roster, parse_roster
from gatehouse.settings import LANGUAGES, load_settings
from gatehouse.terminals import add_terminal, list_terminals, remove_terminal


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    terminal = commands.add_parser("terminal", parents=[common], help="terminals (cell, classroom, ...)")
    actions = terminal.add_subparsers(dest="terminal_command", metavar="ACTION", required=True)
    p = actions.add_parser("add", parents=[common], help="register a terminal by its address")
    p.add_argument("--name", required=True)
    p.add_argument("--address", required=True, help="the IP address its traffic comes from")
    p.add_argument("--kind", required=True, choices=[k.value for k in TerminalKind])
    p.add_argument("--unit", default="", help="the unit (wing) it stands in")
    p.set_defaults(handler=cmd_terminal_add)
    actions.add_parser("list", parents=[common], help="list terminals").set_defaults(handler=cmd_terminal_list)
    p = actions.add_parser("remove", parents=[common], help="remove a terminal")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=cmd_terminal_remove)

    inmate = commands.add_parser("inmate", parents=[common], help="inmates")
    actions = inmate.add_subparsers(dest="inmate_command", metavar="ACTION", required=True)
    p = actions.add_parser("add", parents=[common], help="add one inmate")
    p.add_argument("--number", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--group", action="append", default=[], help="group (repeatable)")
    p.add_argument("--language", default="en", choices=LANGUAGES)
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    p.set_defaults(handler=cmd_inmate_add)
    actions.add_parser("list", parents=[common], help="list inmates").set_defaults(handler=cmd_inmate_list)
    p = actions.add_parser("import", parents=[common],
                           help="import a CSV roster; any bad row imports nothing and is named by line")
    p.add_argument("file", type=Path, metavar="CSV")
    p.set_defaults(handler=cmd_inmate_import)
    p.epilog = ROSTER_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p = actions.add_parser("set-pin", parents=[common], help="set an inmate's PIN (read from standard input)")
    p.add_argument("--number", required=True)
    p.set_defaults(handler=cmd_inmate_set_pin)


ROSTER_HELP = """\
The CSV is read as an offender management system exports it: comma or semicolon separated, UTF-8 (with or
without BOM), a header row naming the columns in any order and case:
  number (or inmate_number, offender_id)   required
  name (or first_name and last_name)       required
  language                                 en, nl, fr or de (default en)
  groups                                   separated by ; or | inside the cell
  pin                                      optional; usually set later with `gatehouse inmate set-pin`
Known numbers are updated, new ones added. Every bad row is reported as FILE:LINE: message.
"""


def _kernel(args: argparse.Namespace) -> Kernel:
    return Kernel.open(load_settings(args.data_dir))


def _read_pin() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("PIN: ")
    line = sys.stdin.readline()
    if not line.strip():
        raise InvalidInput("no PIN on standard input")
    return line.strip()


def cmd_terminal_add(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory.begin() as session:
        t = add_terminal(session, ensure_facility(session, kernel.settings), name=args.name,
                         address=args.address, kind=args.kind, unit=args.unit)
        summary = f"{t.name} {t.address} {t.kind} {t.unit}".strip()
    kernel.record_now(AuditEvent(Tag.ADMIN_TERMINAL_ADDED, "cli", actor="cli", terminal=args.name,
                                          reason=summary))
    print(f"added terminal {summary}")
    return 0


def cmd_terminal_list(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory() as session:
        rows = list_terminals(session)
        print(f"{'NAME':20} {'ADDRESS':39} {'KIND':10} UNIT")
        for t in rows:
            print(f"{t.name:20} {t.address:39} {t.kind:10} {t.unit}")
    return 0


def cmd_terminal_remove(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory.begin() as session:
        remove_terminal(session, args.name)
    kernel.record_now(AuditEvent(Tag.ADMIN_TERMINAL_REMOVED, "cli", actor="cli", terminal=args.name))
    print(f"removed terminal {args.name}")
    return 0


def cmd_inmate_add(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    pin = _read_pin() if args.pin_stdin else None
    with kernel.factory.begin() as session:
        inmate = add_inmate(session, ensure_facility(session, kernel.settings), number=args.number,
                            name=args.name, language=args.language, groups=args.group, pin=pin)
        number = inmate.number
    kernel.record_now(AuditEvent(Tag.ADMIN_INMATE_ADDED, "cli", actor="cli", reason=number))
    print(f"added inmate {number}" + ("" if pin else " (no PIN yet: gatehouse inmate set-pin)"))
    return 0


def cmd_inmate_list(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory() as session:
        print(f"{'NUMBER':12} {'NAME':30} {'LANG':4} {'STATUS':9} {'PIN':3} GROUPS")
        for i in list_inmates(session):
            print(f"{i.number:12} {i.name:30} {i.language:4} {i.status:9} {'yes' if i.pin_hash else 'no':3} "
                  f"{','.join(i.group_names)}")
    return 0


def cmd_inmate_import(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput(f"{args.file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{args.file}: not UTF-8 text (byte {exc.start}); save the export as UTF-8") from None
    report = parse_roster(text, str(args.file))
    if report.errors:
        for error in report.errors:
            print(error, file=sys.stderr)
        print(f"{len(report.errors)} bad row(s); nothing was imported", file=sys.stderr)
        return 1
    kernel = _kernel(args)

    def progress(done: int, total: int) -> None:
        if total >= 50 and (done % 50 == 0 or done == total):
            print(f"\r{done}/{total} rows", end="\n" if done == total else "", file=sys.stderr, flush=True)

    with kernel.factory.begin() as session:
        apply_roster(session, ensure_facility(session, kernel.settings), report, progress)
    kernel.record_now(AuditEvent(Tag.ADMIN_INMATE_IMPORTED, "cli", actor="cli",
                                          reason=f"{args.file.name}: {report.added} added, {report.updated} updated"))
    print(f"imported {args.file}: {report.added} added, {report.updated} updated")
    return 0


def cmd_inmate_set_pin(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    pin = _read_pin()
    with kernel.factory.begin() as session:
        number = set_pin(session, args.number, pin).number
    kernel.record_now(AuditEvent(Tag.ADMIN_INMATE_PIN_SET, "cli", actor="cli", reason=number))
    print(f"PIN set for {number}")
    return 0
