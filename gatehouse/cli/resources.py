"""`gatehouse resources import / export / check-links`: the directory of services for release, as Open Referral
HSDS 3.0 (its tabular data package, CSV files with a datapackage.json, or its JSON).

An import reads and checks the whole feed before it writes anything: every bad row is printed as FILE:LINE and
nothing is imported; a good feed goes in in one transaction, entries updated by their id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gatehouse.audit import AuditEvent, Tag
from gatehouse.cli.courses import educator
from gatehouse.db.engine import utcnow
from gatehouse.errors import InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.resources import directory, hsds, links
from gatehouse.resources.models import LinkState
from gatehouse.settings import load_settings


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    resources = commands.add_parser("resources", parents=[common],
                                    help="the directory of services for release (HSDS): import, export, check links")
    actions = resources.add_subparsers(dest="resources_command", metavar="ACTION", required=True)
    p = actions.add_parser("import", parents=[common],
                           help="read an HSDS feed: a data package folder, its datapackage.json, or an HSDS JSON file")
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--by", default="", metavar="USER", help="an education staff account, recorded as who imported")
    p.set_defaults(handler=cmd_import)
    p = actions.add_parser("export", parents=[common], help="write the directory as HSDS")
    p.add_argument("--out", type=Path, required=True, metavar="PATH",
                   help="a folder for the data package (CSV + datapackage.json), or a file ending in .json")
    p.set_defaults(handler=cmd_export)
    p = actions.add_parser("check-links", parents=[common],
                           help="visit every entry's website through the gateway's upstream checks; exit 1 when "
                                "one is dead or redirected")
    p.set_defaults(handler=cmd_check_links)


def cmd_import(args: argparse.Namespace) -> int:
    try:
        feed = hsds.read(args.path)
    except hsds.HsdsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {args.path}; nothing was imported", file=sys.stderr)
        return 1
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        with kernel.factory.begin() as session:
            actor = educator(session, args.by) if args.by else "cli"
            done = directory.import_directory(session, feed, now=utcnow())
        kernel.record_now(AuditEvent(Tag.RESOURCES_IMPORTED, "cli", actor=actor, decision="allow",
                                     reason=f"{done}; from {args.path.name}"))
    finally:
        kernel.engine.dispose()
    print(f"imported {args.path.name}: {done}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        with kernel.factory() as session:
            feed = directory.export_directory(session)
        out: Path = args.out
        if out.suffix.lower() == ".json":
            hsds.write_json(feed, out)
            written = [out]
        else:
            written = hsds.write_package(feed, out)
        kernel.record_now(AuditEvent(Tag.RESOURCES_EXPORTED, "cli", actor="cli", decision="allow",
                                     reason=f"{len(feed.services)} entries to {out.name}"))
    finally:
        kernel.engine.dispose()
    print(f"exported {len(feed.services)} entries ({len(feed.organizations)} organizations) to {out} "
          f"({len(written)} files)")
    return 0


def cmd_check_links(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        if not kernel.policies.load():  # the same address rules as the gateway, or none at all
            errors = "; ".join(str(e) for e in kernel.policies.errors[:5])
            raise InvalidInput(f"the policy has errors; fix them first (gatehouse policy check): {errors}")
        found = asyncio.run(links.check_links(kernel, utcnow()))
    finally:
        kernel.engine.dispose()
    if not found:
        print("no entry has a website to check")
        return 0
    for link in found:
        print(f"{link.state.value}\t{link.service_id}\t{link.url}" + (f"\t{link.detail}" if link.detail else ""))
    bad = [link for link in found if link.state is not LinkState.OK]
    print(f"{len(found)} websites visited, {len(bad)} dead or redirected")
    return 1 if bad else 0
