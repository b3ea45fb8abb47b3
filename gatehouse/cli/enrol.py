"""`gatehouse course enrol / withdraw`: the sites a course needs open and close with the enrolment, on every node.

The enrolment and its event are written in one transaction (every gateway node reads the event within half a
second, with or without Redis), published on the Redis bus when there is one, and recorded under the `--by`
account's name. Dates are days in the facility's time zone; `--until 2026-12-31` means through that day.
"""

from __future__ import annotations

import argparse
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.cli.control import announce
from gatehouse.cli.courses import educator
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.learning import enrolment
from gatehouse.learning.enrolment import day_start
from gatehouse.settings import load_settings


def register(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    p = actions.add_parser("enrol", parents=[common, by],
                           help="enrol an inmate or a whole group: the course's sites open for them at once")
    p.add_argument("--course", required=True, metavar="ID")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--inmate", metavar="NUMBER")
    who.add_argument("--group", metavar="GROUP")
    p.add_argument("--from", dest="starts", metavar="YYYY-MM-DD", help="first day (default: now)")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="last day, included (default: until completion)")
    p.set_defaults(handler=cmd_enrol)
    p = actions.add_parser("withdraw", parents=[common, by],
                           help="end an inmate's enrolment: the course's sites close for them at once")
    p.add_argument("--course", required=True, metavar="ID")
    p.add_argument("--inmate", required=True, metavar="NUMBER")
    p.add_argument("--reason", required=True, help="recorded, and shown to staff")
    p.set_defaults(handler=cmd_withdraw)


def _run(args: argparse.Namespace, tag: Tag, work: Any) -> int:
    settings = load_settings(args.data_dir)
    kernel = Kernel.open(settings)
    zone = ZoneInfo(settings["facility.timezone"])
    try:
        with kernel.factory.begin() as session:
            actor = educator(session, args.by)
            outcome: enrolment.Outcome = work(session, actor, zone)
        kernel.record_now(AuditEvent(tag, "cli", actor=actor, decision="allow", reason=outcome.summary))
        for row in outcome.enrolments:
            opened = tag is Tag.LEARNING_ENROLMENT_ADDED
            kernel.record_now(AuditEvent(Tag.LEARNING_GRANT_OPENED if opened else Tag.LEARNING_GRANT_CLOSED, "cli",
                                         actor=actor, decision="allow" if opened else "deny",
                                         reason=f"{row.inmate.number}: the sites of course {row.course.slug} "
                                                + ("open" if opened else "close")))
        announce(kernel, outcome.events)
    finally:
        kernel.engine.dispose()
    print(outcome.summary)
    for number, why in outcome.skipped:
        print(f"  not enrolled: {number}: {why}")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    def work(session: Session, actor: str, zone: ZoneInfo) -> enrolment.Outcome:
        starts = day_start(args.starts, zone, "--from") if args.starts else None
        ends = day_start(args.until, zone, "--until", after=True) if args.until else None
        if args.group:
            return enrolment.enrol_group(session, course=args.course, group=args.group, by=actor, now=utcnow(),
                                         starts_at=starts, ends_at=ends)
        return enrolment.enrol(session, course=args.course, inmate=args.inmate, by=actor, now=utcnow(),
                               starts_at=starts, ends_at=ends)
    return _run(args, Tag.LEARNING_ENROLMENT_ADDED, work)


def cmd_withdraw(args: argparse.Namespace) -> int:
    def work(session: Session, actor: str, zone: ZoneInfo) -> enrolment.Outcome:
        return enrolment.withdraw(session, course=args.course, inmate=args.inmate, reason=args.reason, by=actor,
                                  now=utcnow())
    return _run(args, Tag.LEARNING_ENROLMENT_WITHDRAWN, work)
