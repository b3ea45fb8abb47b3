"""Commands for visitors: add one (verified at once when a member of staff saw their identity document)."""

from __future__ import annotations

import argparse
from typing import Any

from gatehouse import staff as accounts
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.settings import load_settings
from gatehouse.visits import visitors


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("visitor", parents=[common], help="visitors of video visits (families, lawyers)")
    actions = group.add_subparsers(dest="visitor_command", metavar="ACTION", required=True)

    p = actions.add_parser("add", parents=[common],
                           help="add a visitor; they log in once they register on the public site with this address")
    p.add_argument("--name", required=True, help="the name as on their identity document")
    p.add_argument("--email", required=True, help="their e-mail address (the login)")
    p.add_argument("--verified-by", metavar="USER", help="the staff account that saw their identity document")
    p.add_argument("--document", default="", metavar="TEXT", help="the document's kind and number, as read")
    p.add_argument("--lawyer", action="store_true", help="a lawyer (legal visits; needs --verified-by)")
    p.set_defaults(handler=cmd_add)


def cmd_add(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        with kernel.factory.begin() as session:
            by = accounts.find_staff(session, args.verified_by).username if args.verified_by else None
            person = visitors.add_visitor(session, name=args.name, email=args.email, verified_by=by,
                                          document=args.document, lawyer=args.lawyer, now=utcnow())
            visitor_id, email = person.id, person.email
        kernel.record_now(AuditEvent(Tag.VISITS_VISITOR_ADDED, "cli", actor="cli",
                                     reason=f"visitor:{visitor_id} {email}"))
        if by:
            document = "given" if args.document else "none"
            kernel.record_now(AuditEvent(Tag.VISITS_VISITOR_VERIFIED, "cli", actor=by, reason=(
                f"visitor:{visitor_id} {email} document={document} lawyer={'yes' if args.lawyer else 'no'}")))
    finally:
        kernel.engine.dispose()
    state = f"verified by {by}" + (" as a lawyer" if args.lawyer else "") if by else "not verified"
    print(f"added visitor {visitor_id} {email} ({state}); they register at the public site with this address")
    return 0
