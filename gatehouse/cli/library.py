"""`gatehouse library add / list`: Kiwix ZIM files put on the portal's shelf in `<data-dir>/library/`.

Adding reads the file's metadata first, so a file that is not a ZIM is refused before anything is copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatehouse.audit import AuditEvent, Tag
from gatehouse.cli.courses import educator
from gatehouse.db.engine import utcnow
from gatehouse.kernel import Kernel
from gatehouse.library import shelf
from gatehouse.settings import load_settings


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    library = commands.add_parser("library", parents=[common],
                                  help="offline libraries: add Kiwix ZIM files to the portal, list them")
    actions = library.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    p = actions.add_parser("add", parents=[common],
                           help="put a ZIM file on the shelf (copied into <data-dir>/library/), read its metadata")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--name", default="", metavar="NAME",
                   help="the library's name in its address /library/NAME (default: from the file name)")
    p.add_argument("--link", action="store_true",
                   help="hard-link the file instead of copying it (same file system only)")
    p.add_argument("--by", default="", metavar="USER", help="an education staff account, recorded as who added it")
    p.set_defaults(handler=cmd_add)
    p = actions.add_parser("list", parents=[common], help="list the libraries, who sees them and what is hidden")
    p.set_defaults(handler=cmd_list)


def cmd_add(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            actor = educator(session, args.by) if args.by else "cli"
            added = shelf.add(session, settings.data_dir, args.file, name=args.name, by=actor, now=utcnow(),
                              link=args.link)
        line = (f"library {added.name}: {added.title} ({added.language or 'no language'}), "
                f"{added.article_count} articles")
        kernel.record_now(AuditEvent(Tag.LIBRARY_ADDED, "cli", actor=actor, decision="allow",
                                     reason=f"{line}; from {args.file.name}"))
    finally:
        kernel.engine.dispose()
    print(line)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            found = shelf.shelf(session, settings.data_dir)
    finally:
        kernel.engine.dispose()
    if not found:
        print("no libraries yet; add a ZIM file with `gatehouse library add FILE`")
    for one in found:
        seen = ", ".join(one.groups) or "everyone"
        print(f"{one.name}\t{one.language or '-'}\t{one.article_count} articles\tseen by {seen}\t"
              f"{len(one.hidden)} hidden\t{one.title}")
    return 0
