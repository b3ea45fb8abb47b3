"""`gatehouse suspend / resume / lockdown [lift] / terminal off / on`: cut access now, on every gateway node.

Each command changes the database and appends its event for the nodes in one transaction (a running
`gatehouse run` reads it within half a second, with or without Redis), publishes it on the Redis bus when
there is one (milliseconds), and records who did it, why and what it cut.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from gatehouse import control
from gatehouse.audit import AuditEvent, Tag
from gatehouse.bus import BusUnavailable, ControlEvent, bus_for
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.settings import load_settings


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default="", help="who acts (default: the login name running the command)")

    p = commands.add_parser("suspend", parents=[common, by], help="suspend an inmate now: sessions end everywhere")
    p.add_argument("--inmate", required=True, metavar="NUMBER")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_suspend)
    p = commands.add_parser("resume", parents=[common, by], help="let a suspended inmate log in again")
    p.add_argument("--inmate", required=True, metavar="NUMBER")
    p.set_defaults(handler=cmd_resume)

    p = commands.add_parser("lockdown", parents=[common, by],
                            help="cut access for a unit or the whole facility (`lockdown lift` ends it)")
    p.add_argument("action", nargs="?", choices=["lift"], help="lift the lockdown instead of starting one")
    p.add_argument("--facility", required=True)
    p.add_argument("--unit", default="", help="one unit (wing); without it the whole facility")
    p.add_argument("--reason", default="", help="required to start a lockdown")
    p.set_defaults(handler=cmd_lockdown)

    p = commands.add_parser("switch", parents=[common, by], help="switch a terminal off (or on again) now")
    p.add_argument("state", choices=["off", "on"])
    p.add_argument("--terminal", required=True, metavar="NAME")
    p.add_argument("--reason", default="", help="required to switch off")
    p.set_defaults(handler=cmd_switch)


def _actor(args: argparse.Namespace) -> str:
    return args.by or f"cli:{getpass.getuser()}"


def _act(args: argparse.Namespace, tag: Tag, action: Callable[[Session, str], control.Outcome], subject: str,
         why: str = "") -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    actor = _actor(args)
    try:
        with kernel.factory.begin() as session:
            outcome = action(session, actor)
        kernel.record_now(AuditEvent(tag, "control", actor=actor, decision="deny" if why else "allow",
                                     reason=f"{subject}: {outcome.summary}" + (f"; why: {why}" if why else "")))
        announce(kernel, outcome.events)
    finally:
        kernel.engine.dispose()
    print(outcome.summary)
    return 0


def announce(kernel: Kernel, events: Sequence[ControlEvent]) -> None:
    """Publish on the Redis bus too when there is one; the database event reaches every node anyway."""
    if not kernel.settings["redis.url"]:
        return

    async def publish() -> None:
        bus = bus_for(kernel.settings["redis.url"])
        try:
            for event in events:
                await bus.publish(event)
        finally:
            await bus.close()

    try:
        asyncio.run(publish())
    except BusUnavailable as exc:
        print(f"note: {exc}; the gateways read it from the database within a second", file=sys.stderr)


def cmd_suspend(args: argparse.Namespace) -> int:
    return _act(args, Tag.CONTROL_SUSPENDED, lambda s, by: control.suspend(s, args.inmate, args.reason, by, utcnow()),
                args.inmate, args.reason)


def cmd_resume(args: argparse.Namespace) -> int:
    return _act(args, Tag.CONTROL_RESUMED, lambda s, by: control.resume(s, args.inmate, by, utcnow()), args.inmate)


def cmd_lockdown(args: argparse.Namespace) -> int:
    scope = f"{args.facility}/{args.unit}" if args.unit else args.facility
    if args.action == "lift":
        return _act(args, Tag.CONTROL_LOCKDOWN_LIFTED,
                    lambda s, by: control.lift(s, args.facility, args.unit, by, utcnow()), scope)
    return _act(args, Tag.CONTROL_LOCKDOWN,
                lambda s, by: control.lock_down(s, args.facility, args.unit, args.reason, by, utcnow()), scope,
                args.reason or "-")


def cmd_switch(args: argparse.Namespace) -> int:
    if args.state == "off":
        return _act(args, Tag.CONTROL_TERMINAL_OFF,
                    lambda s, by: control.disable_terminal(s, args.terminal, args.reason, by, utcnow()),
                    args.terminal, args.reason or "-")
    return _act(args, Tag.CONTROL_TERMINAL_ON,
                lambda s, by: control.enable_terminal(s, args.terminal, by, utcnow()), args.terminal)
