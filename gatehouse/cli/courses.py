"""`gatehouse course import / export / publish / list` and `gatehouse certificate verify / revoke / keys /
record-export / record-import`.

`--by` names an education staff account; every change is recorded in the audit log under that name.
`certificate verify` changes nothing and needs no account: it works offline from the data dir's keys, or, for
someone outside the facility, from the facility's published key document (`--keys`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from gatehouse import staff
from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.db.models import StaffRole
from gatehouse.errors import InvalidInput
from gatehouse.kernel import Kernel
from gatehouse.learning import awards, catalog, certificates, record
from gatehouse.learning.package import PackageError, load_package
from gatehouse.settings import load_settings

T = TypeVar("T")


def register_course(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    p = actions.add_parser("import", parents=[common, by],
                           help="import a course package (folder or .zip) as the course's next version")
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--draft", action="store_true",
                   help="keep the new version as a draft (default: publish it, retiring the one before)")
    p.set_defaults(handler=cmd_import)
    p = actions.add_parser("export", parents=[common, by], help="write a course version as a package folder or .zip")
    p.add_argument("course", metavar="ID", help="the course id (course.yaml's id)")
    p.add_argument("--out", required=True, type=Path, metavar="PATH", help="a new folder, or a file ending in .zip")
    p.add_argument("--version", type=int, metavar="N", help="the version number (default: the published one)")
    p.set_defaults(handler=cmd_export)
    p = actions.add_parser("publish", parents=[common, by],
                           help="publish a version of a course for new enrolments (the one before is retired)")
    p.add_argument("course", metavar="ID")
    p.add_argument("--version", type=int, required=True, metavar="N")
    p.set_defaults(handler=cmd_publish)
    p = actions.add_parser("list", parents=[common], help="list the courses and their versions")
    p.set_defaults(handler=cmd_list)


def register_certificate(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    p = actions.add_parser("verify", parents=[common],
                           help="check a certificate (PDF or JSON): exit 0 valid, 1 changed, unknown or revoked")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--keys", type=Path, metavar="FILE",
                   help="the issuing facility's published key document (keys.json), for checking outside it")
    p.set_defaults(handler=cmd_verify)
    p = actions.add_parser("revoke", parents=[common, by], help="revoke a certificate; verification then says why")
    p.add_argument("certificate", metavar="ID", help="the certificate id (a UUID)")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_revoke)
    p = actions.add_parser("keys", parents=[common],
                           help="write the facility's published key document (JWK Set) for offline verification")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(handler=cmd_keys)
    p = actions.add_parser("record-export", parents=[common, by],
                           help="write an inmate's signed learning record (at release or transfer)")
    p.add_argument("--inmate", required=True, metavar="NUMBER")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.set_defaults(handler=cmd_record_export)
    p = actions.add_parser("record-import", parents=[common, by],
                           help="check and keep a learning record another facility signed")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--keys", required=True, type=Path, metavar="KEYS",
                   help="the issuing facility's published key document (keys.json)")
    p.set_defaults(handler=cmd_record_import)


# -- helpers ------------------------------------------------------------------------------------------------

def educator(session: Session, username: str) -> str:
    """The acting account's name, if it is an enabled education account."""
    account = staff.find_staff(session, username)
    if account.disabled:
        raise InvalidInput(f"the staff account {account.username!r} is disabled")
    if StaffRole.EDUCATION.value not in account.role_names:
        raise InvalidInput(f"the staff account {account.username!r} does not have the education role")
    return account.username


def _acting(args: argparse.Namespace, tag: Tag, work: Callable[[Session, str], tuple[T, str]]) -> T:
    """Run `work` as the --by account in one transaction, then record what it did."""
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        with kernel.factory.begin() as session:
            actor = educator(session, args.by)
            result, summary = work(session, actor)
        kernel.record_now(AuditEvent(tag, "cli", actor=actor, decision="allow", reason=summary))
    finally:
        kernel.engine.dispose()
    return result


def _write_new(path: Path, data: bytes) -> None:
    if path.exists():
        raise InvalidInput(f"{path} exists already; choose a new file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """A facility's published key document (`gatehouse certificate keys`), or a clear error naming the file."""
    try:
        return certificates.load_public_keys(_read(path, "key document"))
    except certificates.CertificateError as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc.strerror}") from None


# -- course ---------------------------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    try:
        course = load_package(args.path)
    except PackageError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"gatehouse: {len(exc.errors)} problems in {args.path}; nothing was imported", file=sys.stderr)
        return 1

    def work(session: Session, actor: str) -> tuple[tuple[str, int, str], str]:
        made = catalog.import_course(session, course, by=actor, now=utcnow(), publish=not args.draft)
        lessons = sum(len(m.lessons) for m in course.modules)
        quizzes = sum(1 for m in course.modules if m.quiz is not None)
        line = (f"course {course.id} version {made.number} ({made.status}): {lessons} lessons, {quizzes} quizzes, "
                f"{len(course.media)} media files")
        return (course.id, made.number, line), f"{line}; from {args.path.name}"

    try:
        _, _, line = _acting(args, Tag.LEARNING_COURSE_IMPORTED, work)
    except PackageError as exc:
        for problem in exc.errors:
            print(problem, file=sys.stderr)
        print(f"gatehouse: {len(exc.errors)} problems in {args.path}; nothing was imported", file=sys.stderr)
        return 1
    print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    def work(session: Session, actor: str) -> tuple[str, str]:
        made = catalog.export_course(session, args.course, args.out, version_number=args.version)
        line = f"course {args.course} version {made.number} written to {args.out}"
        return line, f"course {args.course} version {made.number} exported"

    print(_acting(args, Tag.LEARNING_COURSE_EXPORTED, work))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    def work(session: Session, actor: str) -> tuple[str, str]:
        chosen = next((v for v in catalog.versions(session, args.course) if v.number == args.version), None)
        if chosen is None:
            raise InvalidInput(f"the course {args.course!r} has no version {args.version}")
        catalog.publish(session, chosen.id, by=actor, now=utcnow())
        line = f"course {args.course} version {args.version} published"
        return line, line

    print(_acting(args, Tag.LEARNING_COURSE_PUBLISHED, work))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kernel = Kernel.open(load_settings(args.data_dir))
    try:
        with kernel.factory() as session:
            rows = [(v.course.slug, v.number, v.status, v.language, v.title) for v in catalog.every_version(session)]
    finally:
        kernel.engine.dispose()
    if not rows:
        print("no courses; `gatehouse course import PATH --by USER` adds one")
        return 0
    width = max(2, *(len(r[0]) for r in rows))
    print(f"{'ID':<{width}}  VERSION  STATUS     LANG  TITLE")
    for slug, number, status, language, title in rows:
        print(f"{slug:<{width}}  {number:<7}  {status:<9}  {language:<4}  {title}")
    return 0


# -- certificate ----------------------------------------------------------------------------------------------

def cmd_verify(args: argparse.Namespace) -> int:
    data = _read(args.file, "certificate")
    if args.keys is not None:
        keys = _keys(args.keys)
        revoked: dict[str, str] = {}
        checked = False
        if args.data_dir_given:
            kernel = Kernel.open(load_settings(args.data_dir))
            try:
                with kernel.factory() as session:
                    revoked, checked = awards.revocations(session), True
            finally:
                kernel.engine.dispose()
        verdict = awards.verify_document(data, keys, revoked)
        if verdict.valid and not checked:
            verdict = type(verdict)(True, verdict.reason + "; revocation is not checked offline: the facility's "
                                    "verification page shows whether it was revoked", verdict.certificate_id)
    else:
        settings = load_settings(args.data_dir)
        kernel = Kernel.open(settings)
        try:
            with kernel.factory() as session:
                verdict = awards.verify_bytes(session, settings, data)
        finally:
            kernel.engine.dispose()
    print(("valid: " if verdict.valid else "NOT VALID: ") + verdict.reason)
    if verdict.certificate_id:
        print(f"certificate {verdict.certificate_id}")
    return 0 if verdict.valid else 1


def cmd_revoke(args: argparse.Namespace) -> int:
    def work(session: Session, actor: str) -> tuple[str, str]:
        row = awards.revoke(session, args.certificate, reason=args.reason, by=actor, now=utcnow())
        line = f"certificate {row.id} revoked: {row.revoke_reason}"
        return line, line

    print(_acting(args, Tag.LEARNING_CERTIFICATE_REVOKED, work))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    document = awards.key_document(load_settings(args.data_dir))
    _write_new(args.out, document + b"\n")
    print(f"wrote {args.out}: give it to whoever checks certificates (gatehouse certificate verify FILE --keys ...)")
    return 0


def cmd_record_export(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    if args.out.exists():
        raise InvalidInput(f"{args.out} exists already; choose a new file")

    def work(session: Session, actor: str) -> tuple[str, str]:
        data = record.export_record(session, settings, args.inmate, now=utcnow())
        shown = record.read_record(data, awards.facility_keys(settings))
        _write_new(args.out, data)
        return f"wrote {args.out}: {shown.summary()}", shown.summary()

    print(_acting(args, Tag.LEARNING_RECORD_EXPORTED, work))
    return 0


def cmd_record_import(args: argparse.Namespace) -> int:
    settings = load_settings(args.data_dir)
    data = _read(args.file, "learning record")
    keys = _keys(args.keys)
    try:
        shown = record.read_record(data, keys)
    except InvalidInput as exc:
        print(f"NOT VALID: {exc}", file=sys.stderr)
        return 1

    def work(session: Session, actor: str) -> tuple[Path, str]:
        kept = record.store_record(settings, shown, data)
        return kept, f"{shown.summary()}; kept as {kept.name}"

    kept = _acting(args, Tag.LEARNING_RECORD_IMPORTED, work)
    print(f"valid: {shown.summary()}")
    for line in shown.courses:
        print(f"  {line.course}: {line.title} - {line.status}, {line.hours} h"
              + (f", result {line.result}" if line.result else "")
              + (f", completed {line.completed}" if line.completed else "")
              + (f", certificate {line.certificate}" if line.certificate else ""))
    print(f"kept as {kept}")
    return 0
