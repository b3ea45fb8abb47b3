"""`gatehouse audit ...`: export, verify, keep checkpoints with a witness, prune. Each use is itself audited."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from gatehouse.audit import AuditEvent, Tag
from gatehouse.audit.exports import FORMATS, Export
from gatehouse.audit.prune import prune, prune_plan
from gatehouse.audit.signing import Checkpoint, Keyring, key_paths, load_public
from gatehouse.audit.verify import Report, stored_checkpoints, verify_database, verify_export
from gatehouse.db.engine import stored
from gatehouse.db.models import AuditRecord
from gatehouse.errors import InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings, load_settings

TRUSTED_KEYS_DIR = "audit-keys"


def _when(text: str) -> datetime:
    """An ISO 8601 time or date; without an offset it is UTC. Returned as naive UTC, as stored."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-22T08:00") from None
    return stored(value)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", parents=[common], help="audit log: export, verify, checkpoints, prune")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    p = actions.add_parser("export", parents=[common], help="write audit records with their chain fields")
    p.add_argument("--format", choices=sorted(FORMATS), default="jsonl",
                   help="jsonl (default; with checkpoints), csv, squid (access.log) or ecs (SIEM JSON)")
    p.add_argument("--since", type=_when, help="first time to include (ISO 8601, UTC unless an offset is given)")
    p.add_argument("--until", type=_when, help="time to stop before (ISO 8601)")
    p.add_argument("--output", type=Path, help="write to this file instead of standard output")
    p.set_defaults(handler=cmd_export)

    p = actions.add_parser("verify", parents=[common],
                           help="check the chain: modified, deleted, truncated and reordered records (and list "
                                "the torn lines a node cut after a crash)")
    p.add_argument("--since", type=_when, help="check records from this time on (ISO 8601)")
    p.add_argument("--witness", type=Path, help="checkpoint file kept apart (gatehouse audit checkpoint export)")
    p.add_argument("--key", type=Path, action="append", default=[],
                   help=f"another node's audit-signing.pub to trust (also: <data-dir>/{TRUSTED_KEYS_DIR}/*.pub)")
    p.add_argument("--file", type=Path, help="check an exported copy (jsonl, csv or ecs) instead of the database")
    p.set_defaults(handler=cmd_verify)

    checkpoint = actions.add_parser("checkpoint", parents=[common], help="signed checkpoints")
    cp_actions = checkpoint.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)
    p = cp_actions.add_parser("export", parents=[common],
                              help="write every signed checkpoint to a witness file (appends what it lacks)")
    p.add_argument("--output", type=Path, help="witness file; standard output if not given")
    p.set_defaults(handler=cmd_checkpoint_export)

    p = actions.add_parser("prune", parents=[common],
                           help="remove records before a date, leaving a signed anchor (verifies first)")
    p.add_argument("--before", type=_when, required=True, help="remove records older than this (ISO 8601)")
    p.add_argument("--yes", action="store_true", help="do it; without this, only show what would go")
    p.set_defaults(handler=cmd_prune)


def keyring(settings: Settings, extra: list[Path]) -> Keyring:
    ring = Keyring()
    _, own = key_paths(settings.data_dir)
    paths = ([own] if own.exists() else []) + sorted((settings.data_dir / TRUSTED_KEYS_DIR).glob("*.pub")) + extra
    for path in paths:
        ring.add(load_public(path))
    return ring


def read_witness(path: Path) -> list[Checkpoint]:
    points = []
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        points.append(Checkpoint.from_json(line))
                    except ValueError as exc:
                        raise InvalidInput(f"{path}:{number}: not a checkpoint ({exc})") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror})") from None
    return points


def _stored_points(kernel: Kernel) -> list[Checkpoint]:
    with kernel.factory() as session:
        return stored_checkpoints(session)


def cmd_export(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    query = select(AuditRecord).order_by(AuditRecord.node, AuditRecord.seq)
    if args.since:
        query = query.where(AuditRecord.at >= args.since)
    if args.until:
        query = query.where(AuditRecord.at < args.until)
    out: TextIO = args.output.open("w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        with kernel.factory() as session:
            export = Export(session.scalars(query.execution_options(yield_per=2000)), args.format,
                            lambda: _stored_points(kernel))
            for line in export:
                out.write(line)
            count = export.count
    finally:
        if args.output:
            out.close()
    kernel.record_now(AuditEvent(Tag.AUDIT_EXPORTED, "cli", actor="cli",
                                 reason=f"{count} records {args.format}" + _range(args)))
    kernel.engine.dispose()
    if args.output:
        print(f"wrote {count} records to {args.output} ({args.format})", file=sys.stderr)
    return 0


def _range(args: argparse.Namespace) -> str:
    parts = [f"since {args.since.isoformat()}" if args.since else "", f"until {args.until.isoformat()}"
             if args.until else ""]
    text = " ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _print(report: Report) -> None:
    for line in report.lines():
        print(line)


def cmd_verify(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    ring = keyring(settings, args.key)
    witness = read_witness(args.witness) if args.witness else None
    if args.file:
        report = verify_export(args.file, ring, witness)
        _print(report)
        return 1 if report.findings else 0
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            report = verify_database(session, ring, since=args.since, witness=witness, audit_dir=settings.audit_dir)
        _print(report)
        kernel.record_now(AuditEvent(Tag.AUDIT_VERIFIED, "cli", actor="cli", decision="deny" if report.findings
                                     else "allow", reason=report.lines()[-1]))
    finally:
        kernel.engine.dispose()
    return 1 if report.findings else 0


def cmd_checkpoint_export(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        points = _stored_points(kernel)
        if args.output:
            have = set()
            if args.output.exists():
                have = {(p.node, p.kind, p.seq) for p in read_witness(args.output)}
            new = [p for p in points if (p.node, p.kind, p.seq) not in have]
            with args.output.open("ab") as f:
                for point in new:
                    f.write(point.line())
            print(f"{args.output}: {len(new)} new checkpoints appended ({len(have) + len(new)} in the file); "
                  "keep a copy away from this machine")
        else:
            new = points
            for point in points:
                sys.stdout.write(point.line().decode("utf-8"))
        kernel.record_now(AuditEvent(Tag.AUDIT_CHECKPOINTS_EXPORTED, "cli", actor="cli",
                                     reason=f"{len(new)} checkpoints"))
    finally:
        kernel.engine.dispose()
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            plan = prune_plan(session, args.before)
            if not plan:
                print(f"nothing is older than {args.before.isoformat()}")
                return 0
            for node, up_to in sorted(plan.items()):
                print(f"node {node}: records up to #{up_to} would go")
            report = verify_database(session, keyring(settings, []), audit_dir=settings.audit_dir)
        if report.findings:
            _print(report)
            print("prune refused: the log does not verify; pruning now would hide these problems", file=sys.stderr)
            return 1
        if not args.yes:
            print("nothing removed; run again with --yes to prune")
            return 0
        with kernel.factory.begin() as session:
            done = prune(session, kernel.signer(), plan, settings.audit_dir)
        for item in done:
            print(f"node {item.node}: removed {item.records} records up to #{item.up_to} "
                  f"({item.segment_files} segment files); a signed anchor keeps the rest verifiable")
        kernel.record_now(AuditEvent(Tag.AUDIT_PRUNED, "cli", actor="cli", reason=f"before {args.before.isoformat()}: "
                                     + ", ".join(f"{d.node} up to #{d.up_to}" for d in done)))
    finally:
        kernel.engine.dispose()
    return 0
