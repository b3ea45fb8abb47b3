"""Commands for staff accounts: add (prints the TOTP provisioning URI), list, roles, password, 2FA reset, unlock."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from gatehouse import logins, otp
from gatehouse import staff as accounts
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.ratelimit import RedisLimiter
from gatehouse.settings import LANGUAGES, load_settings

ROLES = [r.value for r in StaffRole]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("staff", parents=[common], help="staff accounts (roles, password, 2FA)")
    actions = group.add_subparsers(dest="staff_command", metavar="ACTION", required=True)

    p = actions.add_parser("add", parents=[common], help="add a staff account; prints the TOTP provisioning URI")
    p.add_argument("--username", required=True)
    p.add_argument("--role", action="append", required=True, choices=ROLES, help="role (repeatable)")
    p.add_argument("--name", default="", help="display name (default: the username)")
    p.add_argument("--language", default="en", choices=LANGUAGES)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(handler=cmd_add)

    actions.add_parser("list", parents=[common], help="list staff accounts").set_defaults(handler=cmd_list)

    p = actions.add_parser("set-roles", parents=[common], help="replace an account's roles")
    p.add_argument("--username", required=True)
    p.add_argument("--role", action="append", required=True, choices=ROLES, help="role (repeatable)")
    p.set_defaults(handler=cmd_set_roles)

    p = actions.add_parser("set-password", parents=[common],
                           help="set an account's password (ends its sessions)")
    p.add_argument("--username", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(handler=cmd_set_password)

    p = actions.add_parser("reset-2fa", parents=[common],
                           help="new TOTP secret to enrol at next login; recovery codes and sessions end")
    p.add_argument("--username", required=True)
    p.set_defaults(handler=cmd_reset_2fa)

    p = actions.add_parser("unlock", parents=[common],
                           help="lift an account's login limits (its wait, its failures from every address)")
    p.add_argument("username", metavar="NAME")
    p.set_defaults(handler=cmd_unlock)

    for name, disabled in (("disable", True), ("enable", False)):
        p = actions.add_parser(name, parents=[common], help=f"{name} an account (disabling ends its sessions)")
        p.add_argument("--username", required=True)
        p.set_defaults(handler=cmd_disable, disabled=disabled)


def _kernel(args: argparse.Namespace) -> Kernel:
    return Kernel.open(load_settings(args.data_dir))


def _read_password(from_stdin: bool) -> str:
    if not from_stdin and sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise InvalidInput("the two passwords are not the same")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise InvalidInput("no password on standard input")
    return line


def _issuer(kernel: Kernel) -> str:
    return f"Gatehouse {kernel.settings['facility.name']}"


def _print_enrolment(kernel: Kernel, username: str, secret: str) -> None:
    uri = otp.provisioning_uri(secret, username, _issuer(kernel))
    print(f"provisioning URI (add it to an authenticator app, or scan the QR code at first login):\n  {uri}")
    print(f"key: {otp.grouped(secret)}")
    if sys.stdout.isatty():
        import segno

        segno.make(uri, error="m").terminal(compact=True)


def cmd_add(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    password = _read_password(args.password_stdin)
    with kernel.factory.begin() as session:
        account = accounts.add_staff(session, username=args.username, roles=args.role, password=password,
                                     display_name=args.name, language=args.language, now=utcnow())
        username, secret, roles = account.username, account.totp_secret, ",".join(account.role_names)
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_ADDED, "cli", actor="cli", reason=f"{username} roles={roles}"))
    print(f"added staff account {username} ({roles})")
    _print_enrolment(kernel, username, secret)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory() as session:
        print(f"{'USERNAME':24} {'ROLES':36} {'2FA':8} {'STATE':8} NAME")
        for a in accounts.list_staff(session):
            print(f"{a.username:24} {','.join(a.role_names):36} "
                  f"{'enrolled' if a.totp_enrolled_at else 'pending':8} {'disabled' if a.disabled else 'active':8} "
                  f"{a.display_name}")
    return 0


def cmd_set_roles(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory.begin() as session:
        account = accounts.find_staff(session, args.username)
        before = ",".join(account.role_names)
        accounts.set_roles(account, args.role)
        session.flush()
        after = ",".join(account.role_names)
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_CHANGED, "cli", actor="cli",
                                 reason=f"{args.username} roles {before} -> {after}"))
    print(f"{args.username}: roles {after}")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    password = _read_password(args.password_stdin)
    now = utcnow()
    with kernel.factory.begin() as session:
        account = accounts.find_staff(session, args.username)
        accounts.change_password(session, account, password, now)
        accounts.end_sessions_of(session, account.id, accounts.EndReason.PASSWORD_CHANGED, now)
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_CHANGED, "cli", actor="cli", reason=f"{args.username} password"))
    print(f"{args.username}: password set; open sessions ended")
    return 0


def cmd_reset_2fa(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    with kernel.factory.begin() as session:
        account = accounts.find_staff(session, args.username)
        accounts.reset_totp(session, account, utcnow())
        username, secret = account.username, account.totp_secret
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_2FA_RESET, "cli", actor="cli", reason=username))
    print(f"{username}: two-factor reset; the account enrols a new app at next login")
    _print_enrolment(kernel, username, secret)
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    kernel = _kernel(args)
    now = utcnow()
    with kernel.factory.begin() as session:
        account = accounts.find_staff(session, args.username)
        account.disabled = args.disabled
        if args.disabled:
            accounts.end_sessions_of(session, account.id, accounts.EndReason.DISABLED, now)
    state = "disabled" if args.disabled else "enabled"
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_CHANGED, "cli", actor="cli", reason=f"{args.username} {state}"))
    print(f"{args.username}: {state}")
    return 0


async def _unlock(redis_url: str, limits: logins.LoginLimits, username: str) -> int:
    limiter = RedisLimiter.from_url(redis_url)
    try:
        return await logins.unlock(limiter, limits, username)
    finally:
        await limiter.close()


def cmd_unlock(args: argparse.Namespace) -> int:
    """The limits are counted in Redis when `redis.url` is set; otherwise in the memory of the running portal,
    which this process cannot reach: then the account's page in the portal lifts them."""
    kernel = _kernel(args)
    with kernel.factory() as session:
        username = accounts.find_staff(session, args.username).username
    url: str = kernel.settings["redis.url"]
    if not url:
        print(f"{username}: without redis.url the login limits live in the running portal's memory; lift them "
              "there (Staff accounts, the account's page, 'Lift login limits'), or restart the portal",
              file=sys.stderr)
        return 1
    cleared = asyncio.run(_unlock(url, logins.LoginLimits.of(kernel.settings), username))
    kernel.record_now(AuditEvent(Tag.ADMIN_STAFF_UNLOCKED, "cli", actor="cli",
                                 reason=f"{username} login limits lifted ({cleared} addresses)"))
    print(f"{username}: login limits lifted ({cleared} addresses had failures)")
    return 0
