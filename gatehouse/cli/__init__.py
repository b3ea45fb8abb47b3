"""The `gatehouse` command: the composition root that can start both planes in one process."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import OperationalError

from gatehouse.cli import admin, audit, control, curation, learning, library, ops, resources, staff, visitors
from gatehouse.errors import GatehouseError
from gatehouse.settings import SettingsError

DEFAULT_DATA_DIR = "gatehouse-data"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS,
        help=f"folder with gatehouse.toml, the database and the CA "
             f"(env GATEHOUSE_DATA_DIR; default ./{DEFAULT_DATA_DIR})")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="gatehouse", parents=[common],
        description="Gatehouse: filtering gateway, portal and audit log for digital services in prisons.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ops.register(commands, common)
    admin.register(commands, common)
    audit.register(commands, common)
    staff.register(commands, common)
    control.register(commands, common)
    learning.register(commands, common)
    curation.register(commands, common)
    library.register(commands, common)
    resources.register(commands, common)
    visitors.register(commands, common)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Each command's own --help opens with the line the command list shows for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if sub.description is None:
                    sub.description = choice.help
                _describe(sub)


def data_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "data_dir", None) or os.environ.get("GATEHOUSE_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(given).expanduser().resolve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    serving = args.command in ("run", "demo")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO if serving else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for noisy in ("mitmproxy", "alembic", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    args.data_dir_given = bool(getattr(args, "data_dir", None) or os.environ.get("GATEHOUSE_DATA_DIR"))
    args.data_dir = data_dir(args)
    try:
        result: int = args.handler(args)
    except (GatehouseError, SettingsError) as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"gatehouse: cannot use the database: {exc.orig}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
