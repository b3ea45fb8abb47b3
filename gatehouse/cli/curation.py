"""`gatehouse curation list / propose / approve / refuse / recheck`: curated sites from a shell, on the portal's rules.

`--by` names an enabled staff account; its roles decide what it may do, as in the portal: education or security
staff propose, and a second person with the role a proposal needs approves it (four eyes). An approval writes the
rule and its control event in one transaction (every gateway node reads it within half a second), is announced on
the Redis bus after the commit (milliseconds), and is recorded under the account's name, as is a refused attempt.

Exit codes: 0 done; 1 refused (four eyes, a missing role, a decided proposal) or, for `recheck`, a page flagged;
2 bad input, each problem named by its option.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse import staff
from gatehouse.audit import AuditEvent, Tag
from gatehouse.cli.control import announce
from gatehouse.curation import asking, drift, proposals
from gatehouse.curation.models import AccessRequest, Proposal, ProposalKind
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.policy_store import check_files, policy_files
from gatehouse.settings import Settings, load_settings

CURATORS = frozenset({StaffRole.EDUCATION.value, StaffRole.SECURITY.value})
OPTION_OF = {"hosts": "--host", "paths": "--paths", "methods": "--methods", "mode": "--mode",
             "scope": "--inmate/--group/--course/--everyone", "terminals": "--terminals", "windows": "--window",
             "until": "--until", "quota": "--quota", "websocket": "--websocket", "ports": "--ports",
             "description": "--description"}
"""The option each Draft field comes from, so a problem is named as the person typed it."""
SCOPE_OPTIONS = {"inmate": "--inmate", "group": "--group", "course": "--course", "everyone": "--everyone"}
RULE_OPTIONS = {**{name: option for name, option in OPTION_OF.items() if name != "scope"},
                **{name: option for name, option in SCOPE_OPTIONS.items() if name != "everyone"},
                "everyone": "--everyone"}
"""The `propose` options that say what the rule is (its `args` attribute and the option)."""


class Refused(Exception):
    """What the account may not do; said on stderr, exit 1."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", required=True, metavar="USER", help="the staff account that acts (recorded)")
    curation = commands.add_parser("curation", parents=[common],
                                   help="requested and curated sites: propose, approve (four eyes), refuse, look again")
    actions = curation.add_subparsers(dest="curation_command", metavar="ACTION", required=True)

    p = actions.add_parser("list", parents=[common], help="open requests and proposals waiting for approval")
    p.add_argument("--all", action="store_true", help="every request and proposal, decided ones too")
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("propose", parents=[common, by],
                           help="propose a rule (or a change or removal of a curated one) for a second person")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--change", metavar="RULE", help="change this curated rule: the options given replace its own")
    what.add_argument("--remove", metavar="RULE", help="remove this curated rule")
    p.add_argument("--host", dest="hosts", action="append", metavar="HOST", help="a host to allow (repeatable)")
    p.add_argument("--paths", nargs="+", metavar="PATH", help="only these path prefixes (default: the whole site)")
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="HTTP methods (default: GET HEAD)")
    p.add_argument("--mode", metavar="inspect|passthrough", help="inspect each request (default) or pass through")
    whom = p.add_mutually_exclusive_group()
    whom.add_argument("--inmate", action="append", metavar="NUMBER", help="for this inmate (repeatable)")
    whom.add_argument("--group", action="append", metavar="GROUP", help="for this group's members")
    whom.add_argument("--course", action="append", metavar="ID", help="for this course's learners")
    whom.add_argument("--everyone", action="store_true", help="for every inmate")
    p.add_argument("--until", metavar="YYYY-MM-DD|never",
                   help="last day, included (default: curation.default_days from today)")
    p.add_argument("--terminals", nargs="+", metavar="KIND", help="only at these kinds of terminal")
    p.add_argument("--window", dest="windows", action="append", metavar="WINDOW",
                   help="only in this weekly window, e.g. 'mon-fri 08:00-17:00' (repeatable)")
    p.add_argument("--quota", metavar="CATEGORY", help="the quota category its minutes count in (default general)")
    p.add_argument("--ports", nargs="+", metavar="PORT", help="ports other than 80 and 443")
    p.add_argument("--websocket", action="store_true", help="allow WebSocket")
    p.add_argument("--description", metavar="TEXT", help="what the site is, as the inmate's home page shows it")
    p.add_argument("--request", type=int, metavar="ID", help="the inmate's request it answers")
    p.add_argument("--note", default="", metavar="TEXT", help="why, for the approver")
    p.set_defaults(handler=cmd_propose)

    p = actions.add_parser("approve", parents=[common, by], help="approve a proposal: it is policy on every node now")
    p.add_argument("proposal", type=int, metavar="ID")
    p.set_defaults(handler=cmd_approve)

    p = actions.add_parser("refuse", parents=[common, by],
                           help="refuse a proposal (or send it back to be changed, --back); the proposer reads why")
    p.add_argument("proposal", type=int, metavar="ID")
    p.add_argument("--reason", required=True, metavar="TEXT")
    p.add_argument("--back", action="store_true", help="send it back to the proposer to change")
    p.set_defaults(handler=cmd_refuse)

    p = actions.add_parser("recheck", parents=[common],
                           help="look again at the pages of curated rules now (exit 1 when one changed)")
    p.add_argument("--rule", default="", metavar="RULE",
                   help="this rule's page, whenever it was last looked at (default: those due)")
    p.set_defaults(handler=cmd_recheck)


# -- helpers ------------------------------------------------------------------------------------------------

def account(session: Session, username: str) -> tuple[str, frozenset[str]]:
    """The acting account's name and roles, if it is an enabled staff account."""
    found = staff.find_staff(session, username)
    if found.disabled:
        raise InvalidInput(f"the staff account {found.username!r} is disabled")
    return found.username, frozenset(found.role_names)


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return at.replace(tzinfo=UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else "-"


def describe(spec: Mapping[str, Any]) -> str:
    """A rule in one line for a person: what, for whom, how, until when."""
    whom = next((f"{key[:-1]} {', '.join(spec[key])}" for key in ("inmates", "groups", "courses") if spec.get(key)),
                "everyone")
    parts = [" ".join(spec.get("allow", [])) + (" " + " ".join(spec["paths"]) if spec.get("paths") else ""),
             f"for {whom}", " ".join(spec.get("methods", ["GET", "HEAD"])),
             "passthrough" if spec.get("mode") == "passthrough" else "inspected"]
    if spec.get("websocket"):
        parts.append("WebSocket")
    if spec.get("ports"):
        parts.append("ports " + " ".join(str(p) for p in spec["ports"]))
    until = str(spec.get("valid_until", ""))
    parts.append("no end" if not until else f"last day {proposals.Draft.from_spec(spec).until}" if len(until) == 10
                 else f"until {until.replace('T', ' ')}")
    return ", ".join(parts)


def needs_whom(proposal: Proposal) -> str:
    other = f"not {proposal.proposed_by}"
    if proposal.needs == StaffRole.SECURITY.value:
        return f"security staff ({other}), because {proposal.why_needs}"
    return f"education or security staff ({other})"


def _draft(args: argparse.Namespace, start: proposals.Draft, adding: bool) -> tuple[proposals.Draft, dict[str, str]]:
    """The options over `start` (a curated rule's own fields when changing one); problems spec_of cannot see."""
    draft = start
    if args.hosts:
        draft.hosts = " ".join(args.hosts)
    if args.paths:
        draft.paths = " ".join(args.paths)
    if args.methods:
        draft.methods = " ".join(args.methods)
    if args.mode is not None:
        draft.mode = args.mode
    scope = next((name for name in ("inmate", "group", "course") if getattr(args, name)), "")
    if scope:
        draft.scope, draft.target = scope, " ".join(getattr(args, scope))
    elif args.everyone:
        draft.scope, draft.target = "everyone", ""
    if args.until is not None:
        draft.until = args.until
    if args.terminals:
        draft.terminals = " ".join(args.terminals)
    if args.windows:
        draft.windows = "\n".join(args.windows)
    if args.quota is not None:
        draft.quota = args.quota
    if args.ports:
        draft.ports = " ".join(args.ports)
    if args.websocket:
        draft.websocket = True
    if args.description is not None:
        draft.description = args.description
    problems = {}
    if adding and not scope and not args.everyone:
        problems["scope"] = "say whom the rule is for: --inmate NUMBER, --group NAME, --course ID or --everyone"
    return draft, problems


def _say_problems(errors: Mapping[str, str], draft: proposals.Draft) -> int:
    for field, message in errors.items():
        option = SCOPE_OPTIONS.get(draft.scope, "--inmate") if field == "target" else OPTION_OF.get(field, field)
        print(f"{option}: {message}", file=sys.stderr)
    print("gatehouse: nothing was proposed", file=sys.stderr)
    return 2


def _record(kernel: Kernel, actor: str, records: Sequence[tuple[Tag, str, str]]) -> None:
    for tag, decision, reason in records:
        kernel.record_now(AuditEvent(tag, "cli", actor=actor, decision=decision, reason=reason))


def _open(args: argparse.Namespace) -> tuple[Settings, Kernel]:
    settings = load_settings(args.data_dir)
    return settings, Kernel.open(settings)


# -- commands -----------------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    settings, kernel = _open(args)
    zone = ZoneInfo(settings["facility.timezone"])
    try:
        with kernel.factory() as session:
            if args.all:
                requests = list(session.scalars(select(AccessRequest).order_by(AccessRequest.id)))
                waiting = list(session.scalars(select(Proposal).order_by(Proposal.id)))
            else:
                requests, waiting = asking.queue(session), proposals.pending(session)
            asked = [(str(r.id), r.inmate.number, _local(r.created_at, zone), r.purpose, r.status, r.url,
                      r.reason) for r in requests]
            proposed = [(str(p.id), p.kind, p.rule_id, p.proposed_by, _local(p.proposed_at, zone), p.status,
                         "needs: " + needs_whom(p) if p.status == "pending" else
                         f"{p.status} by {p.decided_by}" + (f": {p.answer}" if p.answer else ""),
                         describe(p.spec), p.request_id) for p in waiting]
    finally:
        kernel.engine.dispose()
    if not asked:
        print("no requests" if args.all else "no open requests")
    else:
        print("REQUESTS" + ("" if args.all else " (open: each waits for education staff to propose or refuse)"))
        _table(["ID", "INMATE", "ASKED", "PURPOSE", "STATUS", "URL"], [row[:6] for row in asked])
        for number, *_, why in asked:
            if why:
                print(f"  {number}: {why}")
    print()
    if not proposed:
        print("no proposals" if args.all else "no proposals waiting for approval")
        return 0
    print("PROPOSALS" + ("" if args.all else " (waiting for approval)"))
    _table(["ID", "KIND", "RULE", "BY", "PROPOSED", "STATUS"], [p[:6] for p in proposed])
    for number, *_, state, what, request in proposed:
        print(f"  {number}: {what}" + (f"; answers request {request}" if request else ""))
        print(f"  {' ' * len(number)}  {state}")
    return 0


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head) - 1)]
    for row in (head, *rows):
        print("  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1])) + "  " + row[-1])


def cmd_propose(args: argparse.Namespace) -> int:
    settings, kernel = _open(args)
    zone = ZoneInfo(settings["facility.timezone"])
    kind = ProposalKind.REMOVE if args.remove else ProposalKind.EDIT if args.change else ProposalKind.ADD
    rule_id = args.remove or args.change or ""
    try:
        start = proposals.Draft()
        if kind is ProposalKind.EDIT:
            with kernel.factory() as session:
                start = proposals.Draft.from_spec(proposals.curated(session, rule_id).spec)
        spec: dict[str, Any] = {}
        if kind is ProposalKind.REMOVE and (given := [option for name, option in RULE_OPTIONS.items()
                                                      if getattr(args, name) not in (None, False)]):
            print(f"{given[0]}: a removal takes the rule as it is; give only --remove RULE, --note, --request",
                  file=sys.stderr)
            return 2
        if kind is not ProposalKind.REMOVE:
            draft, problems = _draft(args, start, kind is ProposalKind.ADD)
            spec, errors = proposals.spec_of(draft, today=datetime.now(zone).date(),
                                             default_days=settings["curation.default_days"])
            if "scope" in problems:
                errors.pop("target", None)  # the same problem, said once
            if problems or errors:
                return _say_problems({**problems, **errors}, draft)
        taken = {rule.id for rule in check_files(policy_files(settings.policy_dir)).rules}
        with kernel.factory.begin() as session:
            actor, roles = account(session, args.by)
            if not roles & CURATORS:
                raise Refused(f"{actor} may not propose: only education or security staff do")
            made = proposals.propose(session, spec=spec, by=actor, now=utcnow(),
                                     triggers=settings["curation.security_approves"], note=args.note,
                                     request_id=args.request, kind=kind, rule_id=rule_id, taken=taken)
            said = f"proposal {made.id}: {made.kind} {made.rule_id}: {describe(made.spec)}"
            needs = needs_whom(made)
            reason = f"{said}; needs {made.needs}" + (f" ({made.why_needs})" if made.why_needs else "") + (
                f"; answers request {made.request_id}" if made.request_id else "")
        _record(kernel, actor, [(Tag.CURATION_PROPOSAL_MADE, "allow", reason)])
    except Refused as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 1
    finally:
        kernel.engine.dispose()
    print(said)
    print(f"needs: {needs}")
    return 0


def _decide(args: argparse.Namespace, verb: str) -> int:
    _, kernel = _open(args)
    actor = ""
    try:
        try:
            with kernel.factory.begin() as session:
                actor, roles = account(session, args.by)
                if verb == "approve":
                    done = proposals.approve(session, args.proposal, by=actor, roles=roles, now=utcnow())
                else:
                    done = proposals.refuse(session, args.proposal, reason=args.reason, by=actor, roles=roles,
                                            now=utcnow(), back=args.back)
                records, events, p = done.records(), list(done.events), done.proposal
                said = {"approved": f"proposal {p.id} approved: rule {p.rule_id} "
                                    + {"add": "added", "edit": "changed", "remove": "removed"}[p.kind]
                                    + "; every gateway node applies it within a second",
                        "refused": f"proposal {p.id} refused: {p.answer}",
                        "returned": f"proposal {p.id} sent back to {p.proposed_by}: {p.answer}"}[p.status]
        except proposals.Refused as exc:
            _record(kernel, actor, [(Tag.CURATION_PROPOSAL_DENIED, "deny",
                                     f"{verb} proposal {args.proposal} refused: {exc}")])
            print(f"gatehouse: {exc}", file=sys.stderr)
            return 1
        _record(kernel, actor, records)
        announce(kernel, events)
    finally:
        kernel.engine.dispose()
    print(said)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_refuse(args: argparse.Namespace) -> int:
    return _decide(args, "refuse")


def cmd_recheck(args: argparse.Namespace) -> int:
    settings, kernel = _open(args)
    try:
        if not kernel.policies.load():
            errors = "; ".join(str(e) for e in kernel.policies.errors[:5])
            raise InvalidInput(f"the policy has errors; fix them first (gatehouse policy check): {errors}")
        checked = asyncio.run(drift.recheck(kernel, datetime.now(UTC), rule_id=args.rule, plane="cli"))
    finally:
        kernel.engine.dispose()
    if not checked and args.rule:
        print(f"gatehouse: no enabled, inspected curated rule {args.rule!r} in force", file=sys.stderr)
        return 2
    if not checked:
        print(f"nothing is due (each page is looked at every {settings['curation.recheck_hours']} hours; "
              "--rule RULE looks now)")
        return 0
    for look in checked:
        state = "first look kept as the page approved" if look.baseline else \
            "FLAGGED: " + " ".join(look.drift) if look.flagged else "nothing new"
        print(f"{look.rule_id} {look.url}: {state}")
    return 1 if any(look.flagged for look in checked) else 0
