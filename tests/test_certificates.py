"""Signed course certificates: issue then verify, every changed byte refused, keys, revocations, bad input."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.learning.certificates import (
    CONTEXTS,
    Certificate,
    CertificateError,
    canonical,
    issue,
    load_public_keys,
    public_key_document,
    short_code,
    verify,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEYS = {"hasselt-2026": KEY.public_key()}
CERT_ID = uuid.UUID("0b6f3a4e-8d7c-4f1a-9b2e-5c6d7e8f9a0b")
CHANGED = "the signature does not match: the certificate was changed after it was signed"


def certificate(**changes: Any) -> Certificate:
    cert = Certificate(id=CERT_ID, facility="Gevangenis Hasselt", inmate_name="Jan Peeters", inmate_number="H-2041",
                       course_id="nl-basis", course_title="Nederlands, basis", course_language="nl",
                       hours=Decimal("12.5"), result=87, issued=date(2026, 11, 30), key_id="hasselt-2026")
    return dataclasses.replace(cert, **changes)


SIGNED = issue(certificate(), KEY)


def resign(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def test_issue_then_verify_is_valid() -> None:
    verdict = verify(SIGNED, KEYS, {})
    assert verdict.valid, verdict.reason
    assert verdict.reason == "signed by hasselt-2026, not changed"
    assert verdict.certificate_id == str(CERT_ID)


def test_the_credential_is_open_badges_3_shaped() -> None:
    data = json.loads(SIGNED)
    assert data["@context"] == list(CONTEXTS)
    assert data["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert data["id"] == f"urn:uuid:{CERT_ID}"
    assert data["issuer"]["name"] == "Gevangenis Hasselt"
    assert data["validFrom"] == "2026-11-30T00:00:00Z"
    subject = data["credentialSubject"]
    assert subject["achievement"]["name"] == "Nederlands, basis"
    assert subject["achievement"]["hours"] == "12.5"
    assert subject["result"][0]["value"] == "87%"
    proof = data["proof"]
    assert (proof["type"], proof["cryptosuite"], proof["verificationMethod"]) == \
        ("DataIntegrityProof", "eddsa-jcs-2022", "hasselt-2026")
    assert proof["proofValue"].startswith("u") and len(proof["proofValue"]) == 87
    assert SIGNED == canonical(data), "issued bytes are their own canonical form"


@pytest.mark.parametrize(("changes", "holds"), [
    ({}, True),
    ({"result": "completed"}, True),
    ({"hours": 3.0}, True),
    ({"hours": 40}, True),
    ({"inmate_name": "Zoë Ağaoğlu 😀"}, True),
    ({"course_language": "ar", "course_title": "العربية"}, True),
])
def test_issue_then_verify_table(changes: dict[str, Any], holds: bool) -> None:
    assert verify(issue(certificate(**changes), KEY), KEYS, {}).valid is holds


def test_hours_are_written_with_one_decimal() -> None:
    for hours, text in [(3.0, "3.0"), (40, "40.0"), (Decimal("0.5"), "0.5"), (12.5, "12.5")]:
        data = json.loads(issue(certificate(hours=hours), KEY))
        assert data["credentialSubject"]["achievement"]["hours"] == text


def test_every_changed_byte_is_refused() -> None:
    signed = issue(certificate(facility="F", inmate_name="N", inmate_number="1", course_id="c", course_title="T",
                               course_language="nl", result="completed"), KEY)
    assert verify(signed, KEYS, {}).valid
    for i in range(len(signed)):
        for new in {signed[i] ^ 0x01, signed[i] ^ 0x20, ord(" "), ord("0")} - {signed[i]}:
            changed = signed[:i] + bytes([new]) + signed[i + 1:]
            verdict = verify(changed, KEYS, {})
            assert not verdict.valid, (i, bytes([new]), verdict)


def test_a_removed_or_added_byte_is_refused() -> None:
    for i in range(0, len(SIGNED), 7):
        assert not verify(SIGNED[:i] + SIGNED[i + 1:], KEYS, {}).valid, i
        assert not verify(SIGNED[:i] + b"x" + SIGNED[i:], KEYS, {}).valid, i


@pytest.mark.parametrize(("path", "value"), [
    (("credentialSubject", "name"), "Piet Peeters"),
    (("credentialSubject", "achievement", "hours"), "125.0"),
    (("credentialSubject", "result", 0, "value"), "100%"),
    (("credentialSubject", "identifier", 0, "identity"), "H-2042"),
    (("issuer", "name"), "Gevangenis Brugge"),
    (("validFrom",), "2025-11-30T00:00:00Z"),
    (("id",), f"urn:uuid:{uuid.uuid4()}"),
    (("name",), "Nederlands, gevorderd"),
    (("proof", "proofPurpose"), "authentication"),
    (("proof", "proofValue"), "u" + "A" * 86),
])
def test_a_field_changed_and_reserialised_is_invalid(path: tuple[Any, ...], value: str) -> None:
    data = json.loads(SIGNED)
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    verdict = verify(resign(data), KEYS, {})
    assert not verdict.valid
    assert verdict.reason in (CHANGED, "not a certificate: its proof is not a DataIntegrityProof of the "
                                       "eddsa-jcs-2022 suite for assertionMethod")


def test_a_reformatted_file_still_verifies() -> None:
    """The signature covers the canonical form, so indentation and key order added by an editor do not matter."""
    data = json.loads(SIGNED)
    pretty = json.dumps(dict(reversed(data.items())), indent=2, ensure_ascii=True).encode()
    assert verify(pretty, KEYS, {}).valid


def test_another_key_is_refused() -> None:
    forged = issue(certificate(), OTHER)
    assert verify(forged, KEYS, {}).reason == CHANGED
    unknown = issue(certificate(key_id="brugge-2026"), OTHER)
    verdict = verify(unknown, KEYS, {})
    assert not verdict.valid
    assert verdict.reason.startswith("signed with a key this facility does not publish")
    assert verify(unknown, {**KEYS, "brugge-2026": OTHER.public_key()}, {}).valid


def test_the_key_id_cannot_be_swapped_to_another_published_key() -> None:
    data = json.loads(SIGNED)
    data["proof"]["verificationMethod"] = "brugge-2026"
    assert verify(resign(data), {**KEYS, "brugge-2026": KEY.public_key()}, {}).reason == CHANGED


@pytest.mark.parametrize(("note", "reason"), [
    ("2026-12-01: issued to the wrong person", "revoked on 2026-12-01: issued to the wrong person"),
    ("2026-12-01", "revoked on 2026-12-01"),
    ("issued twice", "revoked: issued twice"),
])
def test_a_revoked_id_says_revoked_with_its_reason(note: str, reason: str) -> None:
    verdict = verify(SIGNED, KEYS, {str(CERT_ID): note, str(uuid.uuid4()): "other"})
    assert not verdict.valid
    assert verdict.reason == reason
    assert verify(SIGNED, KEYS, {str(uuid.uuid4()): note}).valid


def _without_proof() -> bytes:
    data = json.loads(SIGNED)
    del data["proof"]
    return resign(data)


def _edit(**fields: Any) -> bytes:
    data = json.loads(SIGNED)
    data.update(fields)
    return resign(data)


def _proof(**fields: Any) -> bytes:
    data = json.loads(SIGNED)
    data["proof"].update(fields)
    return resign(data)


@pytest.mark.parametrize(("signed", "what"), [
    (b"", "not JSON"),
    (b"{", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
    (b"[" * 100_000, "not JSON"),
    (b"null", "not a JSON object"),
    (b"[]", "not a JSON object"),
    (b'"certificate"', "not a JSON object"),
    (b"{}", "contexts"),
    (_edit(**{"@context": "https://www.w3.org/ns/credentials/v2"}), "contexts"),
    (_edit(type=["VerifiableCredential"]), "OpenBadgeCredential"),
    (_edit(id=12), "no id"),
    (_without_proof(), "no proof"),
    (_edit(proof="signed"), "no proof"),
    (_edit(proof=[]), "no proof"),
    (_proof(extra=1), "fields"),
    (_proof(cryptosuite="eddsa-rdfc-2022"), "eddsa-jcs-2022"),
    (_proof(type="Ed25519Signature2020"), "DataIntegrityProof"),
    (_proof(verificationMethod=["hasselt-2026"]), "names no key"),
    (_proof(proofValue=None), "holds no signature"),
])
def test_malformed_input_is_not_a_certificate(signed: bytes, what: str) -> None:
    verdict = verify(signed, KEYS, {})
    assert not verdict.valid
    assert verdict.reason.startswith("not a certificate: ") and what in verdict.reason, verdict.reason


@pytest.mark.parametrize("signed", [
    _proof(proofValue=""),
    _proof(proofValue="zNotBase64url"),
    _proof(proofValue="u***"),
    _proof(proofValue="u" + "A" * 85),
    _edit(credentialSubject={"hours": 12.5}),
    _edit(credentialSubject={"count": 2**60}),
    json.dumps({**json.loads(SIGNED), "name": "\ud800"}).encode(),
])
def test_a_bad_signature_or_unsignable_content_is_a_verdict(signed: bytes) -> None:
    verdict = verify(signed, KEYS, {})
    assert (verdict.valid, verdict.reason) == (False, CHANGED)


def test_canonical_json_of_reordered_keys_is_identical() -> None:
    a = {"b": [1, {"z": "é", "a": None}], "a": True, "é": "x", "\U0001f600": 1, "\ufb01": 2}
    b = {"\ufb01": 2, "\U0001f600": 1, "é": "x", "a": True, "b": [1, {"a": None, "z": "é"}]}
    assert canonical(a) == canonical(b)
    # RFC 8785 sorts by UTF-16 code units: the emoji (surrogates D83D...) comes before U+FB01
    assert canonical(a) == '{"a":true,"b":[1,{"a":null,"z":"é"}],"é":"x","\U0001f600":1,"\ufb01":2}'.encode()


@pytest.mark.parametrize("value", [
    {"hours": 12.5}, [1.0], {"a": {"b": [float("nan")]}}, {"n": 2**53}, {1: "x"}, {"d": Decimal("1")},
])
def test_canonical_refuses_what_it_cannot_sign_exactly(value: object) -> None:
    with pytest.raises(CertificateError):
        canonical(value)


def test_short_code_is_stable_and_changes_with_the_bytes() -> None:
    code = short_code(SIGNED)
    assert code == short_code(bytes(SIGNED))
    assert len(code) == 11 and code[5] == "-"
    assert set(code.replace("-", "")) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert short_code(issue(certificate(inmate_number="H-2042"), KEY)) != code
    assert short_code(SIGNED[:-1] + b" ") != code
    assert short_code(b"") == "WERC8-GMRZG"  # the first 50 bits of SHA-256 of nothing, e3b0c44298fc1c


@pytest.mark.parametrize(("changes", "message"), [
    ({"result": 87.5}, "sign 87.5 as a string"),
    ({"hours": 12.25}, "at most one decimal"),
    ({"hours": Decimal("NaN")}, "finite"),
    ({"hours": float("inf")}, "finite"),
    ({"hours": Decimal("1E+30")}, "finite"),
    ({"hours": -1.0}, "0 or more"),
    ({"hours": True}, "number"),
    ({"inmate_number": 2041.0}, "has a fraction"),
    ({"facility": 3.5}, "has a fraction"),
    ({"id": uuid.uuid1()}, "version 4"),
    ({"id": str(CERT_ID)}, "version 4"),
    ({"issued": datetime(2026, 11, 30, 12)}, "without a time"),
    ({"key_id": "has space"}, "key id"),
])
def test_issue_refuses_floats_and_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        issue(certificate(**changes), KEY)


def test_published_keys_round_trip_and_verify_offline() -> None:
    document = public_key_document("hasselt-2026", KEY.public_key())
    keys = load_public_keys(document)
    assert list(keys) == ["hasselt-2026"]
    assert verify(SIGNED, keys, {}).valid
    both = json.dumps({"keys": [*json.loads(document)["keys"],
                                *json.loads(public_key_document("brugge-2026", OTHER.public_key()))["keys"]]})
    assert set(load_public_keys(both)) == {"hasselt-2026", "brugge-2026"}


@pytest.mark.parametrize("document", [
    b"", b"[]", b'{"keys": {}}', b'{"keys": [1]}',
    b'{"keys": [{"kty": "RSA", "crv": "Ed25519", "kid": "k", "x": ""}]}',
    b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}',
    b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]}',
    b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k"}]}',
])
def test_a_bad_key_document_is_refused(document: bytes) -> None:
    with pytest.raises(CertificateError):
        load_public_keys(document)


def test_a_key_listed_twice_is_refused() -> None:
    jwk = json.loads(public_key_document("k", KEY.public_key()))["keys"][0]
    with pytest.raises(CertificateError, match="twice"):
        load_public_keys(json.dumps({"keys": [jwk, jwk]}))
