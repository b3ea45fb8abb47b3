"""Certificates of completed courses: issued once per enrolment, as the signed credential and as a signed PDF.

The facility's certificate key is an Ed25519 key in the data dir (`certificate-key.pem`, mode 0600), made on first
use; its key id is derived from the public key, and the key document (`key_document`, a JWK Set) is what
`gatehouse certificate keys` writes for employers and other facilities (the portal's verification page, still
to be built, is to serve it at `/verify/keys.json`).

A certificate PDF is the page reportlab draws, then two comment lines after its `%%EOF` (PDF readers and
pdftotext ignore them):

```
%GATEHOUSE-CREDENTIAL <the signed Open Badges credential, base64url>
%GATEHOUSE-SIGNATURE <key id> <Ed25519 signature, base64url>
```

The signature is over `PDF_CONTEXT` followed by every byte of the file before the signature line, so changing any
one byte of the PDF (page, credential or signature line) makes `verify_document` refuse it; the credential inside
is then checked as a JSON certificate would be (signature, key, revocation).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.errors import Conflict, GatehouseError, InvalidInput, NotFound
from gatehouse.learning import certificates
from gatehouse.learning.certificates import Verdict
from gatehouse.learning.models import Enrolment, IssuedCertificate
from gatehouse.pdf import fonts
from gatehouse.settings import Settings

__all__ = ["KEY_FILE", "PDF_CONTEXT", "certificate_json", "certificate_pdf", "credential_of", "facility_keys",
           "issue_certificate", "key_document", "lookup", "revocations", "revoke", "signing_key", "verify_bytes",
           "verify_document", "verify_url"]

KEY_FILE = "certificate-key.pem"
PDF_CONTEXT = b"gatehouse certificate pdf v1\n"
"""Prefixed to the signed bytes, so a PDF signature can never be taken for a signature of anything else."""
_CREDENTIAL_LINE = b"%GATEHOUSE-CREDENTIAL "
_SIGNATURE_LINE = b"\n%GATEHOUSE-SIGNATURE "
_SIGNATURE = re.compile(rb"([A-Za-z0-9._:-]{1,100}) ([A-Za-z0-9_-]{86})\n")
_CREDENTIAL = re.compile(rb"\n%GATEHOUSE-CREDENTIAL ([A-Za-z0-9_-]+)\n")
_CHANGED = "the signature does not match: the certificate was changed after it was signed"


# -- the facility's key -------------------------------------------------------------------------------------

def _key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "gatehouse-" + hashlib.sha256(raw).hexdigest()[:16]


def signing_key(settings: Settings) -> tuple[str, Ed25519PrivateKey]:
    """The facility's certificate key and its id; made (mode 0600) the first time a certificate is issued."""
    path = _key_path(settings)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption())
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(partial, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise GatehouseError(f"{path} does not hold an Ed25519 key; move it away and a new one is made")
    return _key_id(key.public_key()), key


def facility_keys(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The keys this facility's certificates verify against (none before the first certificate)."""
    if not _key_path(settings).exists():
        return {}
    key_id, key = signing_key(settings)
    return {key_id: key.public_key()}


def key_document(settings: Settings) -> bytes:
    """The JWK Set to publish: what someone outside the facility verifies a certificate with."""
    key_id, key = signing_key(settings)
    return certificates.public_key_document(key_id, key.public_key())


# -- issuing ------------------------------------------------------------------------------------------------

def issue_certificate(session: Session, settings: Settings, enrolment: Enrolment, *, hours: Decimal,
                      result: str | int, now: datetime) -> IssuedCertificate:
    """The enrolment's certificate, signed now; the one it has already if it has one."""
    existing = session.scalar(select(IssuedCertificate).where(IssuedCertificate.enrolment_id == enrolment.id))
    if existing is not None:
        return existing
    version = enrolment.version
    if version is None:
        raise Conflict(f"enrolment {enrolment.id} was never active; it has no course version to certify")
    key_id, key = signing_key(settings)
    issued = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(settings["facility.timezone"])).date()
    cert = certificates.Certificate(
        id=uuid.uuid4(), facility=settings["facility.name"], inmate_name=enrolment.inmate.name,
        inmate_number=enrolment.inmate.number, course_id=enrolment.course.slug, course_title=version.title,
        course_language=version.language, hours=hours, result=result, issued=issued, key_id=key_id)
    try:
        signed = certificates.issue(cert, key)
    except certificates.CertificateError as exc:
        raise InvalidInput(f"cannot issue the certificate: {exc}") from None
    row = IssuedCertificate(id=str(cert.id), enrolment_id=enrolment.id, short_code=certificates.short_code(signed),
                            signed=signed, issued_at=now, revoked_by="", revoke_reason="")
    session.add(row)
    session.flush()
    return row


def certificate_json(certificate: IssuedCertificate) -> bytes:
    """The signed Open Badges 3.0 credential, exactly as signed."""
    return certificate.signed


def credential_of(signed: bytes) -> dict[str, Any]:
    """The fields a person reads on a certificate, from its signed credential."""
    data = json.loads(signed)
    subject = data["credentialSubject"]
    return {"id": data["id"].removeprefix("urn:uuid:"), "name": subject["name"],
            "number": subject["identifier"][0]["identity"], "course": subject["achievement"]["name"],
            "course_id": subject["achievement"]["id"].removeprefix("urn:gatehouse:course:"),
            "language": subject["achievement"]["inLanguage"], "hours": subject["achievement"]["hours"],
            "result": subject["result"][0]["value"], "date": data["validFrom"][:10],
            "facility": data["issuer"]["name"]}


def lookup(session: Session, code: str) -> IssuedCertificate | None:
    """The certificate with this short code (as printed, any case, with or without the dash)."""
    clean = re.sub(r"[\s-]", "", code.upper()).translate(str.maketrans("OIL", "011"))
    if not re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{10}", clean):
        return None
    return session.scalar(select(IssuedCertificate).where(
        IssuedCertificate.short_code == f"{clean[:5]}-{clean[5:]}").limit(1))


def revoke(session: Session, certificate_id: str, *, reason: str, by: str, now: datetime) -> IssuedCertificate:
    """Revoke a certificate: verification says so from now on, with the date and this reason."""
    if not reason.strip():
        raise InvalidInput("give the reason for revoking the certificate (--reason); verification shows it")
    row = session.get(IssuedCertificate, certificate_id.strip().removeprefix("urn:uuid:"))
    if row is None:
        raise NotFound(f"no certificate {certificate_id}")
    if row.revoked_at is not None:
        raise Conflict(f"certificate {row.id} was revoked on {row.revoked_at:%Y-%m-%d} by {row.revoked_by}: "
                       f"{row.revoke_reason}")
    row.revoked_at, row.revoked_by, row.revoke_reason = now, by, reason.strip()
    session.flush()
    return row


def revocations(session: Session) -> dict[str, str]:
    """Revoked certificate ids with the note verification shows ("<date>: <reason>")."""
    rows = session.execute(select(IssuedCertificate.id, IssuedCertificate.revoked_at, IssuedCertificate.revoke_reason)
                           .where(IssuedCertificate.revoked_at.is_not(None)))
    return {cid: f"{when:%Y-%m-%d}: {why}" for cid, when, why in rows}


# -- the PDF ------------------------------------------------------------------------------------------------

def verify_url(settings: Settings, code: str) -> str:
    return f"{settings.portal_url.rstrip('/')}/verify?code={quote(code)}"


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _from_b64url(text: bytes) -> bytes:
    raw = base64.b64decode(text + b"=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64url(raw) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return raw


def _page(settings: Settings, fields: Mapping[str, str], code: str) -> bytes:
    from reportlab.graphics import renderPDF  # type: ignore[import-untyped]
    from reportlab.graphics.barcode.qr import QrCodeWidget  # type: ignore[import-untyped]
    from reportlab.graphics.shapes import Drawing  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    regular, bold = fonts()
    width, height = landscape(A4)
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=(width, height), invariant=True, pageCompression=1)
    page.setTitle(f"Certificate: {fields['course']}")
    page.setAuthor(fields["facility"])
    page.setSubject(f"Verification code {code}")
    page.setLineWidth(2)
    page.rect(15 * mm, 15 * mm, width - 30 * mm, height - 30 * mm)
    page.setFont(bold, 30)
    page.drawCentredString(width / 2, height - 45 * mm, "Certificate of completion")
    page.setFont(regular, 14)
    page.drawCentredString(width / 2, height - 62 * mm, "This certifies that")
    page.setFont(bold, 22)
    page.drawCentredString(width / 2, height - 76 * mm, fields["name"])
    page.setFont(regular, 12)
    page.drawCentredString(width / 2, height - 85 * mm, f"Inmate number {fields['number']}")
    page.setFont(regular, 14)
    page.drawCentredString(width / 2, height - 98 * mm, "has completed the course")
    page.setFont(bold, 20)
    page.drawCentredString(width / 2, height - 111 * mm, fields["course"])
    page.setFont(regular, 13)
    lines = [f"Hours of study: {fields['hours']}", f"Result: {fields['result']}", f"Date: {fields['date']}",
             f"Facility: {fields['facility']}"]
    for i, line in enumerate(lines):
        page.drawString(30 * mm, 62 * mm - i * 8 * mm, line)
    url = verify_url(settings, code)
    qr = QrCodeWidget(url, barLevel="M")
    left, bottom, right, top = qr.getBounds()
    size = 42 * mm
    drawing = Drawing(size, size, transform=[size / (right - left), 0, 0, size / (top - bottom), 0, 0])
    drawing.add(qr)
    renderPDF.draw(drawing, page, width - 30 * mm - size, 30 * mm)
    page.setFont(bold, 13)
    page.drawRightString(width - 30 * mm - size - 6 * mm, 62 * mm, f"Verification code: {code}")
    page.setFont(regular, 9)
    page.drawRightString(width - 30 * mm - size - 6 * mm, 54 * mm, "Check this certificate at")
    page.drawRightString(width - 30 * mm - size - 6 * mm, 49 * mm, url)
    page.drawRightString(width - 30 * mm - size - 6 * mm, 42 * mm, f"Certificate {fields['id']}")
    page.showPage()
    page.save()
    return out.getvalue()


def certificate_pdf(session: Session, settings: Settings, certificate: IssuedCertificate) -> bytes:
    """The printable certificate, carrying its signed credential and signed as a whole by the facility's key."""
    body = _page(settings, credential_of(certificate.signed), certificate.short_code)
    if not body.endswith(b"\n"):
        body += b"\n"
    body += _CREDENTIAL_LINE + _b64url(certificate.signed) + b"\n"
    key_id, key = signing_key(settings)
    signature = key.sign(PDF_CONTEXT + body)
    return body + _SIGNATURE_LINE[1:] + key_id.encode("ascii") + b" " + _b64url(signature) + b"\n"


# -- verifying ----------------------------------------------------------------------------------------------

def _verify_pdf(data: bytes, keys: Mapping[str, Ed25519PublicKey], revoked: Mapping[str, str]) -> Verdict:
    at = data.rfind(_SIGNATURE_LINE)
    if at < 0:
        if _CREDENTIAL_LINE in data:
            return Verdict(False, _CHANGED)
        return Verdict(False, "not a certificate: a PDF that does not carry a certificate of this facility")
    body = data[:at + 1]
    line = _SIGNATURE.fullmatch(data, at + len(_SIGNATURE_LINE))
    if line is None:
        return Verdict(False, _CHANGED)
    key_id = line.group(1).decode("ascii")
    key = keys.get(key_id)
    if key is None:
        return Verdict(False, f"signed with a key this facility does not publish ({key_id})")
    try:
        key.verify(_from_b64url(line.group(2)), PDF_CONTEXT + body)
    except (InvalidSignature, ValueError):
        return Verdict(False, _CHANGED)
    inside = data.rfind(b"\n" + _CREDENTIAL_LINE, 0, at + 1)
    credential = _CREDENTIAL.fullmatch(body, inside) if inside >= 0 else None
    if credential is None:
        return Verdict(False, "not a certificate: the PDF is signed but holds no credential")
    try:
        signed = _from_b64url(credential.group(1))
    except ValueError:
        return Verdict(False, _CHANGED)
    return certificates.verify(signed, keys, revoked)


def verify_document(data: bytes, keys: Mapping[str, Ed25519PublicKey], revoked: Mapping[str, str]) -> Verdict:
    """A JSON credential or one of our PDFs, checked against `keys` and `revoked`; never raises on bad input."""
    if not isinstance(data, bytes | bytearray):
        return Verdict(False, "not a certificate: not a file's bytes")
    data = bytes(data)
    if data.startswith(b"%PDF") or _SIGNATURE_LINE in data or _CREDENTIAL_LINE in data:
        return _verify_pdf(data, keys, revoked)
    return certificates.verify(data, keys, revoked)


def verify_bytes(session: Session, settings: Settings, data: bytes) -> Verdict:
    """A JSON credential or one of our PDFs, against this facility's keys and revocations; never raises on bad
    input."""
    return verify_document(data, facility_keys(settings), revocations(session))
