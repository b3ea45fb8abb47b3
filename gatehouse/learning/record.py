"""An inmate's signed learning record: every course, its result, hours and certificate, taken along at release or
transfer and read by another facility against the issuing facility's published keys.

The record is one JSON object (canonical JCS, like a certificate) signed with the facility's certificate key:

```
{"type": "GatehouseLearningRecord", "format": 1, "facility": ..., "exported": "...Z",
 "inmate": {"number": ..., "name": ...},
 "courses": [{"course", "title", "language", "version", "status", "started", "completed", "hours", "result",
              "certificate"}, ...],
 "certificates": [<each signed Open Badges credential, whole>],
 "proof": {"type": "Ed25519Signature", "verificationMethod": <key id>, "proofValue": "u<base64url>"}}
```

The signature is Ed25519 over `RECORD_CONTEXT` and the SHA-256 of the record without its proof, canonicalised.
Each certificate inside stays verifiable on its own. A facility that imports a record keeps the file as it came
(`learning-records/` in its data dir) and an audit event naming it; revocations made later at the issuing facility
are not in the file: its verification page says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.db.models import Inmate
from gatehouse.errors import InvalidInput, NotFound
from gatehouse.learning import awards, certificates
from gatehouse.learning.models import Attempt, Enrolment, IssuedCertificate, LessonProgress
from gatehouse.settings import Settings

__all__ = ["RECORD_CONTEXT", "CourseLine", "LearningRecord", "export_record", "hours_of", "read_record",
           "store_record"]

RECORD_CONTEXT = b"gatehouse learning record v1\n"
RECORD_TYPE = "GatehouseLearningRecord"
FORMAT = 1
FOLDER = "learning-records"
_COURSE_KEYS = {"course", "title", "language", "version", "status", "started", "completed", "hours", "result",
                "certificate"}


@dataclass(frozen=True, slots=True)
class CourseLine:
    course: str
    title: str
    status: str
    started: str
    completed: str | None
    hours: str
    result: str | None
    certificate: str | None


@dataclass(frozen=True, slots=True)
class LearningRecord:
    facility: str
    exported: str
    inmate_number: str
    inmate_name: str
    key_id: str
    courses: tuple[CourseLine, ...]
    certificates: tuple[str, ...] = field(default=())
    """The ids of the certificates inside, each checked against the same keys."""

    def summary(self) -> str:
        done = sum(1 for c in self.courses if c.completed)
        return (f"learning record of {self.inmate_number} ({self.inmate_name}) from {self.facility}, "
                f"exported {self.exported}: {len(self.courses)} courses, {done} completed, "
                f"{len(self.certificates)} certificates; signed by {self.key_id}")


def hours_of(session: Session, enrolment_id: int) -> Decimal:
    """Active time on the enrolment's lessons, in hours to one decimal."""
    seconds = session.scalar(select(func.coalesce(func.sum(LessonProgress.active_seconds), 0))
                             .where(LessonProgress.enrolment_id == enrolment_id)) or 0
    return (Decimal(int(seconds)) / 3600).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signing_input(unsigned: Mapping[str, Any]) -> bytes:
    return RECORD_CONTEXT + hashlib.sha256(certificates.canonical(dict(unsigned))).digest()


def _line(session: Session, enrolment: Enrolment, cert: IssuedCertificate | None) -> dict[str, Any]:
    if cert is not None:
        shown = awards.credential_of(cert.signed)
        hours, result = shown["hours"], shown["result"]
    else:
        hours = str(hours_of(session, enrolment.id))
        best = session.scalar(select(func.max(Attempt.score)).where(Attempt.enrolment_id == enrolment.id,
                                                                    Attempt.finished_at.is_not(None)))
        result = None if best is None else f"{best}%"
    version = enrolment.version
    return {"course": enrolment.course.slug, "title": version.title if version else enrolment.course.slug,
            "language": version.language if version else "", "version": version.number if version else 0,
            "status": enrolment.status, "started": f"{enrolment.starts_at:%Y-%m-%d}",
            "completed": None if enrolment.completed_at is None else f"{enrolment.completed_at:%Y-%m-%d}",
            "hours": hours, "result": result, "certificate": None if cert is None else cert.id}


def export_record(session: Session, settings: Settings, inmate_number: str, *, now: datetime) -> bytes:
    """The inmate's learning record, signed with the facility's certificate key (canonical JSON)."""
    inmate = session.scalar(select(Inmate).where(Inmate.number == inmate_number.strip()))
    if inmate is None:
        raise NotFound(f"no inmate {inmate_number.strip()}")
    enrolments = list(session.scalars(select(Enrolment).where(Enrolment.inmate_id == inmate.id)
                                      .order_by(Enrolment.starts_at, Enrolment.id)))
    issued = {c.enrolment_id: c for c in session.scalars(select(IssuedCertificate).where(
        IssuedCertificate.enrolment_id.in_([e.id for e in enrolments])))} if enrolments else {}
    key_id, key = awards.signing_key(settings)
    unsigned: dict[str, Any] = {
        "type": RECORD_TYPE, "format": FORMAT, "facility": settings["facility.name"],
        "exported": f"{now:%Y-%m-%dT%H:%M:%S}Z", "inmate": {"number": inmate.number, "name": inmate.name},
        "courses": [_line(session, e, issued.get(e.id)) for e in enrolments if e.status not in ("requested",
                                                                                               "refused")],
        "certificates": [json.loads(c.signed) for c in sorted(issued.values(), key=lambda c: c.issued_at)],
    }
    proof = {"type": "Ed25519Signature", "verificationMethod": key_id,
             "proofValue": "u" + _b64url(key.sign(_signing_input(unsigned)))}
    return certificates.canonical({**unsigned, "proof": proof})


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"not a learning record: {what} is missing or not text")
    return value


def read_record(data: bytes, keys: Mapping[str, Ed25519PublicKey]) -> LearningRecord:
    """The record if it is signed by one of `keys` and unchanged, with every certificate inside valid; else
    InvalidInput saying what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, TypeError, RecursionError):
        raise InvalidInput("not a learning record: the file is not JSON text in UTF-8") from None
    if not isinstance(doc, dict) or doc.get("type") != RECORD_TYPE:
        raise InvalidInput(f"not a learning record: the file is not a {RECORD_TYPE}")
    if doc.get("format") != FORMAT:
        raise InvalidInput(f"a learning record of format {doc.get('format')!r}; this version reads {FORMAT}")
    proof = doc.pop("proof", None)
    if not isinstance(proof, dict) or set(proof) != {"type", "verificationMethod", "proofValue"} \
            or proof["type"] != "Ed25519Signature":
        raise InvalidInput("not a learning record: it has no Ed25519 signature")
    key_id, value = _text(proof["verificationMethod"], "the key id"), _text(proof["proofValue"], "the signature")
    key = keys.get(key_id)
    if key is None:
        raise InvalidInput(f"the record is signed with a key the given key document does not hold ({key_id}); "
                           "ask the issuing facility for its published keys")
    try:
        raw = value[1:]
        signature = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
        if not value.startswith("u") or _b64url(signature) != raw:
            raise ValueError(raw)
        key.verify(signature, _signing_input(doc))
    except (ValueError, InvalidSignature, RecursionError):  # CertificateError is a ValueError
        raise InvalidInput("the signature does not match: the record was changed after it was signed") from None
    inmate, courses, held = doc.get("inmate"), doc.get("courses"), doc.get("certificates")
    if not isinstance(inmate, dict) or not isinstance(courses, list) or not isinstance(held, list):
        raise InvalidInput("not a learning record: inmate, courses or certificates missing")
    ids = []
    for i, credential in enumerate(held):
        verdict = certificates.verify(certificates.canonical(credential), keys, {})
        if not verdict.valid:
            raise InvalidInput(f"certificate {i + 1} in the record does not verify: {verdict.reason}")
        ids.append(verdict.certificate_id)
    lines = []
    for item in courses:
        if not isinstance(item, dict) or set(item) != _COURSE_KEYS:
            raise InvalidInput("not a learning record: a course line has other fields than expected")
        lines.append(CourseLine(item["course"], item["title"], item["status"], item["started"], item["completed"],
                                item["hours"], item["result"], item["certificate"]))
    return LearningRecord(_text(doc.get("facility"), "the facility"), _text(doc.get("exported"), "the date"),
                          _text(inmate.get("number"), "the inmate number"), _text(inmate.get("name"), "the name"),
                          key_id, tuple(lines), tuple(ids))


def store_record(settings: Settings, record: LearningRecord, data: bytes) -> Path:
    """Keep the file as it came, under the data dir's learning-records/, named by inmate, facility and date."""
    folder = settings.data_dir / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    stem = "-".join(re.sub(r"[^A-Za-z0-9]+", "_", part).strip("_") or "x"
                    for part in (record.inmate_number, record.facility, record.exported))
    target = folder / f"{stem}.json"
    target.write_bytes(data)
    target.chmod(0o600)
    return target
