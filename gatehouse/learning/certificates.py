"""The signed certificate of a completed course: an Open Badges 3.0 credential that anyone can check offline.

No database, no files and no clock: the caller passes the certificate, the facility's key, its published keys and
its revocations in, and gets bytes or a verdict out.

The credential is a W3C Verifiable Credential 2.0 shaped as an Open Badges 3.0 `OpenBadgeCredential`, secured by
an embedded `DataIntegrityProof` with the `eddsa-jcs-2022` cryptosuite: the proof options (the proof without its
`proofValue`, with the credential's `@context`) and the credential without its proof are each canonicalised with
JCS (RFC 8785) and hashed with SHA-256; Ed25519 signs the two hashes joined, options first; `proofValue` is the
signature in multibase base64url ("u" then base64url without padding). Where this differs from the standards:

- JCS here covers the values a certificate holds (strings, integers up to 2**53 - 1, booleans, null, lists and
  objects); numbers with a fraction are refused rather than written in the ECMAScript form RFC 8785 asks for, so
  hours are a string ("12.5").
- `verificationMethod` is the facility's key id, looked up in the keys it publishes (`public_key_document`, a JWK
  Set), not a DID or URL resolved over the network: prisons verify offline.
- The proof has no `created` time: the credential's `validFrom` (the issued date) is the time that matters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["CONTEXTS", "Certificate", "CertificateError", "Verdict", "canonical", "issue", "load_public_keys",
           "public_key_document", "short_code", "verify"]

CONTEXTS = ("https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json")
TYPES = ("VerifiableCredential", "OpenBadgeCredential")
PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_PURPOSE = "assertionMethod"
_PROOF_FIELDS = frozenset({"type", "cryptosuite", "verificationMethod", "proofPurpose", "proofValue"})
_MAX_SAFE_INTEGER = 2**53 - 1
_ONE_DECIMAL = Decimal("0.1")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class CertificateError(ValueError):
    """A certificate or key document that cannot be issued or read as given (a float in the signed part)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    id: uuid.UUID
    """A random (version 4) UUID chosen by the caller; it is also the key of the revocation list."""
    facility: str
    inmate_name: str
    inmate_number: str
    course_id: str
    course_title: str
    course_language: str
    hours: Decimal | float
    """Time spent, with at most one decimal (12.5); signed as the string "12.5"."""
    result: str | int
    """A score in percent (87) or a word ("completed")."""
    issued: date
    key_id: str
    """The id of the facility's key that signs it, as published in its key document."""


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str
    """One sentence for the person checking: why it holds, or why not."""
    certificate_id: str = ""


def _check(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise CertificateError(f"{where}: the integer {value} is too large to sign exactly (JCS, RFC 8785)")
        return
    if isinstance(value, float):
        raise CertificateError(f"{where}: the number {value!r} has a fraction; sign it as a string")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CertificateError(f"{where}: the key {key!r} is not a string")
            _check(item, f"{where}.{key}")
        return
    raise CertificateError(f"{where}: {type(value).__name__} is not a JSON value")


def _encode(value: object) -> str:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))  # RFC 8785 3.2.3: by UTF-16 code units
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_encode(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def canonical(value: object) -> bytes:
    """JCS (RFC 8785) for strings, integers, booleans, null, lists and objects; a float raises `CertificateError`."""
    _check(value, "$")
    try:
        return _encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise CertificateError("a string holds a lone surrogate, which is not Unicode text") from None


def _hours(hours: Decimal | float) -> str:
    if isinstance(hours, bool) or not isinstance(hours, Decimal | float | int):
        raise CertificateError(f"hours must be a number, not {hours!r}")
    try:
        exact = Decimal(str(hours)) if isinstance(hours, float) else Decimal(hours)
        if not exact.is_finite():
            raise InvalidOperation
        rounded = exact.quantize(_ONE_DECIMAL)
    except InvalidOperation:
        raise CertificateError(f"hours must be a finite number, not {hours!r}") from None
    if rounded != exact or rounded < 0:
        raise CertificateError(f"hours are 0 or more with at most one decimal, not {hours!r}")
    return str(rounded)


def _credential(cert: Certificate) -> dict[str, object]:
    if not isinstance(cert.id, uuid.UUID) or cert.id.version != 4:
        raise CertificateError(f"a certificate id is a random (version 4) UUID, not {cert.id!r}")
    if isinstance(cert.issued, datetime) or not isinstance(cert.issued, date):
        raise CertificateError(f"the issued date is a date without a time, not {cert.issued!r}")
    if not isinstance(cert.key_id, str) or not _KEY_ID.fullmatch(cert.key_id):
        raise CertificateError(f"the key id {cert.key_id!r} is not a key id")
    return {
        "@context": list(CONTEXTS),
        "id": cert.id.urn,
        "type": list(TYPES),
        "name": cert.course_title,
        "issuer": {"id": f"urn:gatehouse:key:{cert.key_id}", "type": ["Profile"], "name": cert.facility},
        "validFrom": f"{cert.issued.isoformat()}T00:00:00Z",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "name": cert.inmate_name,
            "identifier": [{"type": "IdentityObject", "identityType": "identifier", "hashed": False,
                            "identity": cert.inmate_number}],
            "achievement": {
                "id": f"urn:gatehouse:course:{cert.course_id}",
                "type": ["Achievement"],
                "name": cert.course_title,
                "inLanguage": cert.course_language,
                "criteria": {"narrative": f"Completed the course {cert.course_title!r}."},
                "hours": _hours(cert.hours),
            },
            "result": [{"type": ["Result"], "value": f"{cert.result}%" if isinstance(cert.result, int) and
                        not isinstance(cert.result, bool) else cert.result}],
        },
    }


def _signing_input(options: Mapping[str, object], unsecured: Mapping[str, object]) -> bytes:
    config = {**options, "@context": unsecured.get("@context")}
    return hashlib.sha256(canonical(config)).digest() + hashlib.sha256(canonical(dict(unsecured))).digest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _from_b64url(text: str) -> bytes:
    """Strict: only the alphabet, and only the one spelling of the bytes (no stray bits in the last character)."""
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64url(raw) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return raw


def issue(cert: Certificate, private_key: Ed25519PrivateKey) -> bytes:
    """The signed credential as canonical JSON (UTF-8, no spaces); raises `CertificateError` on a bad field."""
    if isinstance(cert.result, float) or not isinstance(cert.result, str | int):
        raise CertificateError(f"the result is a whole percent or a word; sign {cert.result!r} as a string")
    unsecured = _credential(cert)
    options = {"type": PROOF_TYPE, "cryptosuite": CRYPTOSUITE, "verificationMethod": cert.key_id,
               "proofPurpose": PROOF_PURPOSE}
    signature = private_key.sign(_signing_input(options, unsecured))
    return canonical({**unsecured, "proof": {**options, "proofValue": "u" + _b64url(signature)}})


def short_code(signed: bytes) -> str:
    """Ten Crockford base32 characters of the SHA-256 of the signed bytes, as XXXXX-XXXXX: 50 bits, read aloud on a
    phone call or typed from the printed page."""
    bits = int.from_bytes(hashlib.sha256(signed).digest()[:7], "big") >> 6
    chars = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in reversed(range(10)))
    return f"{chars[:5]}-{chars[5:]}"


def _not_a_certificate(what: str) -> Verdict:
    return Verdict(False, f"not a certificate: {what}")


def _shape(data: object) -> str:
    """'' when `data` has the shape of a credential this module issues, else what is wrong."""
    if not isinstance(data, dict):
        return "it is not a JSON object"
    if data.get("@context") != list(CONTEXTS):
        return "it does not name the Verifiable Credential and Open Badges 3.0 contexts"
    if data.get("type") != list(TYPES):
        return "it is not an OpenBadgeCredential"
    if not isinstance(data.get("id"), str):
        return "it has no id"
    proof = data.get("proof")
    if not isinstance(proof, dict):
        return "it has no proof"
    if set(proof) != _PROOF_FIELDS:
        return f"its proof has the fields {sorted(proof)}, not {sorted(_PROOF_FIELDS)}"
    if proof["type"] != PROOF_TYPE or proof["cryptosuite"] != CRYPTOSUITE or proof["proofPurpose"] != PROOF_PURPOSE:
        return f"its proof is not a {PROOF_TYPE} of the {CRYPTOSUITE} suite for {PROOF_PURPOSE}"
    if not isinstance(proof["verificationMethod"], str) or not isinstance(proof["proofValue"], str):
        return "its proof names no key or holds no signature"
    return ""


def _revocation(note: str) -> str:
    when, sep, why = note.partition(":")
    try:
        date.fromisoformat(when.strip())
    except ValueError:
        return f"revoked: {note}"
    return f"revoked on {when.strip()}: {why.strip()}" if sep else f"revoked on {when.strip()}"


def verify(signed: bytes, public_keys: Mapping[str, Ed25519PublicKey], revoked: Mapping[str, str]) -> Verdict:
    """Whether `signed` is a certificate signed by one of `public_keys` and not revoked; never raises on bad input.

    `revoked` maps a certificate id (the UUID, as text) to the facility's note, "<ISO date>: <reason>".
    """
    try:
        data = json.loads(signed.decode("utf-8") if isinstance(signed, bytes | bytearray) else signed)
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return _not_a_certificate("it is not JSON text in UTF-8")
    if what := _shape(data):
        return _not_a_certificate(what)
    proof = dict(data.pop("proof"))
    key_id, value = proof.pop("verificationMethod"), proof.pop("proofValue")
    key = public_keys.get(key_id)
    if key is None:
        return Verdict(False, f"signed with a key this facility does not publish ({key_id})")
    try:
        signature = _from_b64url(value[1:]) if value.startswith("u") else b""
        message = _signing_input({**proof, "verificationMethod": key_id}, data)
    except (ValueError, RecursionError):  # CertificateError is a ValueError: a float or a bad string in the file
        return Verdict(False, "the signature does not match: the certificate was changed after it was signed")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return Verdict(False, "the signature does not match: the certificate was changed after it was signed")
    cert_id = data["id"].removeprefix("urn:uuid:")
    if cert_id in revoked:
        return Verdict(False, _revocation(revoked[cert_id]), cert_id)
    return Verdict(True, f"signed by {key_id}, not changed", cert_id)


def public_key_document(key_id: str, public_key: Ed25519PublicKey) -> bytes:
    """The facility's key as a JWK Set (RFC 7517, OKP keys of RFC 8037), to publish for offline verification."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise CertificateError(f"the key id {key_id!r} is not a key id")
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": key_id, "use": "sig", "alg": "EdDSA"}
    return canonical({"keys": [jwk]})


def load_public_keys(document: bytes | str) -> dict[str, Ed25519PublicKey]:
    """The keys of a JWK Set written by `public_key_document` (or several joined); `CertificateError` if unreadable."""
    try:
        data = json.loads(document)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"the key document is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise CertificateError('the key document is a JSON object with a list "keys"')
    keys: dict[str, Ed25519PublicKey] = {}
    for i, jwk in enumerate(data["keys"]):
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise CertificateError(f"key {i} is not an Ed25519 key (kty OKP, crv Ed25519)")
        kid, x = jwk.get("kid"), jwk.get("x")
        if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
            raise CertificateError(f"key {i} has no valid kid")
        if kid in keys:
            raise CertificateError(f"the key id {kid!r} is listed twice")
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(_from_b64url(x if isinstance(x, str) else ""))
        except ValueError:
            raise CertificateError(f"key {kid!r}: x is not the base64url of a 32-byte Ed25519 key") from None
    return keys
