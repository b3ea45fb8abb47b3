"""Certificates as the facility issues, prints, revokes and others verify them, and the signed learning record
taken to another facility; through the services and `gatehouse certificate ...` on a real data dir."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.cli import main
from gatehouse.db.engine import utcnow
from gatehouse.db.models import Inmate
from gatehouse.kernel import Kernel
from gatehouse.learning import awards, catalog, certificates, record
from gatehouse.learning.models import Enrolment, IssuedCertificate, LessonProgress
from gatehouse.learning.package import load_package
from gatehouse.settings import Settings, load_settings
from tests.helpers import INMATE, OTHER_INMATE
from tests.test_course_package import GOOD, build
from tests.test_learning_catalog import Run, audit_tags, in_process, learning_data_dir

NOW = utcnow()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = learning_data_dir(tmp_path_factory.mktemp("awards") / "data")
    course = load_package(build(tmp_path_factory.mktemp("pkg"), GOOD))
    kernel = Kernel.open(load_settings(path))
    try:
        with kernel.factory.begin() as session:
            catalog.import_course(session, course, by="teacher", now=NOW)
    finally:
        kernel.engine.dispose()
    return path


@pytest.fixture(scope="module")
def settings(data_dir: Path) -> Settings:
    return load_settings(data_dir)


@pytest.fixture(scope="module")
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    kernel = Kernel.open(settings)
    yield kernel.factory
    kernel.engine.dispose()


@pytest.fixture
def cli(data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    return in_process(data_dir, capsys, monkeypatch)


def completed(session: Session, number: str, *, seconds: int = 5400) -> Enrolment:
    """A finished enrolment in the course, with `seconds` of active time on its lessons."""
    inmate = session.scalar(select(Inmate).where(Inmate.number == number))
    assert inmate is not None
    live = catalog.published(session, "job-letters")
    enrolment = Enrolment(course_id=live.course_id, version_id=live.id, inmate_id=inmate.id, status="completed",
                          starts_at=NOW, completed_at=NOW, closed_at=NOW, created_at=NOW, created_by="teacher",
                          decided_by="teacher", reason="", last_lesson="")
    session.add(enrolment)
    session.flush()
    for i, lesson in enumerate(["lessons/intro.md", "lessons/tone.md", "lessons/letter.md"]):
        session.add(LessonProgress(enrolment_id=enrolment.id, lesson=lesson, opened_at=NOW, completed_at=NOW,
                                   active_seconds=seconds // 3 + (seconds % 3 if i == 0 else 0),
                                   last_activity_at=NOW))
    session.flush()
    return enrolment


def issued(factory: sessionmaker[Session], settings: Settings, number: str) -> tuple[str, bytes, bytes]:
    """A new certificate for `number`: its id, PDF and JSON."""
    with factory.begin() as session:
        enrolment = completed(session, number)
        hours = record.hours_of(session, enrolment.id)
        cert = awards.issue_certificate(session, settings, enrolment, hours=hours, result=87, now=NOW)
        return cert.id, awards.certificate_pdf(session, settings, cert), awards.certificate_json(cert)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "c.pdf"
    path.write_bytes(data)
    return subprocess.run(["/usr/bin/pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def test_issue_is_once_per_enrolment_and_signs_what_it_is_given(factory: sessionmaker[Session],
                                                                 settings: Settings) -> None:
    with factory.begin() as session:
        enrolment = completed(session, INMATE, seconds=5500)
        assert record.hours_of(session, enrolment.id) == Decimal("1.5")
        first = awards.issue_certificate(session, settings, enrolment, hours=Decimal("1.5"), result=87, now=NOW)
        again = awards.issue_certificate(session, settings, enrolment, hours=Decimal("9.0"), result=10, now=NOW)
        assert again is first
        shown = awards.credential_of(first.signed)
        assert (shown["name"], shown["number"], shown["course"], shown["hours"], shown["result"]) == \
            ("Jan Peeters", INMATE, "Writing a job letter", "1.5", "87%")
        assert first.short_code == certificates.short_code(first.signed)
        assert awards.lookup(session, first.short_code.lower().replace("-", "")) is first
        assert awards.lookup(session, "not a code") is None
        assert awards.verify_bytes(session, settings, first.signed).valid
    key = settings.data_dir / awards.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key_id = next(iter(awards.facility_keys(settings)))
    assert json.loads(awards.key_document(settings))["keys"][0]["kid"] == key_id == json.loads(
        first.signed)["proof"]["verificationMethod"]


def test_pdf_shows_the_certificate_and_its_code(factory: sessionmaker[Session], settings: Settings,
                                                tmp_path: Path) -> None:
    _, pdf, signed = issued(factory, settings, INMATE)
    text = " ".join(pdf_text(pdf, tmp_path).split())
    code = certificates.short_code(signed)
    for expected in ["Certificate of completion", "Jan Peeters", f"Inmate number {INMATE}", "Writing a job letter",
                     "Hours of study: 1.5", "Result: 87%", f"Date: {NOW:%Y-%m-%d}", "Facility: Demo Facility",
                     f"Verification code: {code}", f"/verify?code={code}"]:
        assert expected in text, expected
    assert pdf.startswith(b"%PDF-") and b"%%EOF\n%GATEHOUSE-CREDENTIAL " in pdf
    assert pdf.splitlines()[-1].startswith(b"%GATEHOUSE-SIGNATURE gatehouse-")


def positions(data: bytes) -> list[int]:
    """Byte positions across a file: start, header, middle, the credential line, the signature line, the end."""
    credential = data.find(b"%GATEHOUSE-CREDENTIAL")
    signature = data.find(b"%GATEHOUSE-SIGNATURE")
    picked = [0, 3, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1]
    if credential >= 0:
        picked += [credential - 1, credential, credential + 30, signature - 2, signature - 1, signature,
                   signature + 25, signature + 40, data.find(b"/Title"), data.find(b"%%EOF")]
    return sorted(set(picked))


def test_cli_verify_accepts_both_forms_and_refuses_any_changed_byte(cli: Run, factory: sessionmaker[Session],
                                                                    settings: Settings, tmp_path: Path) -> None:
    cert_id, pdf, signed = issued(factory, settings, OTHER_INMATE)
    for name, data in [("c.pdf", pdf), ("c.json", signed)]:
        (tmp_path / name).write_bytes(data)
        code, out, _ = cli("certificate", "verify", str(tmp_path / name))
        assert (code, out.splitlines()[1]) == (0, f"certificate {cert_id}"), out
        assert out.startswith("valid: signed by gatehouse-")
        for at in positions(data):
            changed = bytearray(data)
            changed[at] ^= 0x01 if chr(data[at]).isalnum() else 0x20
            (tmp_path / name).write_bytes(bytes(changed))
            code, out, _ = cli("certificate", "verify", str(tmp_path / name))
            assert code == 1 and out.startswith("NOT VALID: "), (name, at, out)
    code, out, _ = cli("certificate", "verify", str(tmp_path / "missing.pdf"))
    assert code == 2


def test_revoked_certificate_fails_with_the_reason(cli: Run, data_dir: Path, factory: sessionmaker[Session],
                                                   settings: Settings, tmp_path: Path) -> None:
    cert_id, pdf, _ = issued(factory, settings, INMATE)
    (tmp_path / "c.pdf").write_bytes(pdf)
    assert cli("certificate", "verify", str(tmp_path / "c.pdf"))[0] == 0
    code, _, err = cli("certificate", "revoke", cert_id, "--reason", "issued by mistake", "--by", "guard")
    assert code == 2 and "education role" in err
    code, out, _ = cli("certificate", "revoke", cert_id, "--reason", "issued by mistake", "--by", "teacher")
    assert (code, out) == (0, f"certificate {cert_id} revoked: issued by mistake\n")
    code, out, _ = cli("certificate", "verify", str(tmp_path / "c.pdf"))
    assert code == 1 and out.splitlines()[0] == f"NOT VALID: revoked on {NOW:%Y-%m-%d}: issued by mistake"
    code, _, err = cli("certificate", "revoke", cert_id, "--reason", "again", "--by", "teacher")
    assert code == 2 and "was revoked on" in err
    assert audit_tags(data_dir)[-1] == ("learning:certificate:revoked", "teacher",
                                        f"certificate {cert_id} revoked: issued by mistake")
    with factory() as session:
        row = session.get(IssuedCertificate, cert_id)
        assert row is not None and (row.revoked_by, row.revoke_reason) == ("teacher", "issued by mistake")


def test_verify_outside_the_facility_with_its_published_keys(cli: Run, factory: sessionmaker[Session],
                                                             settings: Settings, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _, pdf, signed = issued(factory, settings, OTHER_INMATE)
    assert cli("certificate", "keys", "--out", str(tmp_path / "keys.json"))[0] == 0
    assert cli("certificate", "keys", "--out", str(tmp_path / "keys.json"))[0] == 2  # never overwrites
    (tmp_path / "c.pdf").write_bytes(pdf)
    (tmp_path / "c.json").write_bytes(signed)
    elsewhere = tmp_path / "employer"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no data dir here, none given: only the key document
    for name in ["c.pdf", "c.json"]:
        assert main(["certificate", "verify", str(tmp_path / name), "--keys", str(tmp_path / "keys.json")]) == 0
        assert "revocation is not checked offline" in capsys.readouterr().out
    stranger = certificates.public_key_document("gatehouse-0000000000000000",
                                                Ed25519PrivateKey.generate().public_key())
    (tmp_path / "other.json").write_bytes(stranger)
    assert main(["certificate", "verify", str(tmp_path / "c.pdf"), "--keys", str(tmp_path / "other.json")]) == 1
    assert "a key this facility does not publish" in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []


def test_record_export_import_round_trip_and_tampering_refused(cli: Run, data_dir: Path, settings: Settings,
                                                               factory: sessionmaker[Session], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cert_id, _, _ = issued(factory, settings, OTHER_INMATE)
    out = tmp_path / "record.json"
    code, said, _ = cli("certificate", "record-export", "--inmate", OTHER_INMATE, "--out", str(out), "--by", "teacher")
    assert code == 0 and said.startswith(f"wrote {out}: learning record of {OTHER_INMATE} (Marie Dubois)")
    assert audit_tags(data_dir)[-1][:2] == ("learning:record:exported", "teacher")
    assert cli("certificate", "keys", "--out", str(tmp_path / "keys.json"))[0] == 0
    doc = json.loads(out.read_bytes())
    assert cert_id in [c["certificate"] for c in doc["courses"]] and len(doc["certificates"]) == len(doc["courses"])
    assert {c["hours"] for c in doc["courses"]} == {"1.5"}

    other = learning_data_dir(tmp_path / "other-facility")
    there = in_process(other, capsys, monkeypatch)
    code, said, err = there("certificate", "record-import", str(out), "--keys", str(tmp_path / "keys.json"),
                            "--by", "teacher")
    assert code == 0, err
    lines = said.splitlines()
    assert lines[0].startswith(f"valid: learning record of {OTHER_INMATE} (Marie Dubois) from Demo Facility")
    assert f"  job-letters: Writing a job letter - completed, 1.5 h, result 87%, completed {NOW:%Y-%m-%d}, " \
           f"certificate {cert_id}" in lines
    kept = Path(lines[-1].removeprefix("kept as "))
    assert kept.parent == other / "learning-records" and kept.read_bytes() == out.read_bytes()
    assert audit_tags(other)[-1][:2] == ("learning:record:imported", "teacher")

    text = out.read_text()
    for old, new in [("Marie Dubois", "Marie Duboiz"), ('"hours":"1.5"', '"hours":"9.5"'),
                     ('"status":"completed"', '"status":"withdrawn"')]:
        (tmp_path / "forged.json").write_text(text.replace(old, new, 1))
        code, said, err = there("certificate", "record-import", str(tmp_path / "forged.json"), "--keys",
                                str(tmp_path / "keys.json"), "--by", "teacher")
        assert (code, said) == (1, "") and "the record was changed after it was signed" in err, old
    stranger = certificates.public_key_document("gatehouse-0000000000000000",
                                                Ed25519PrivateKey.generate().public_key())
    (tmp_path / "other.json").write_bytes(stranger)
    code, _, err = there("certificate", "record-import", str(out), "--keys", str(tmp_path / "other.json"),
                         "--by", "teacher")
    assert code == 1 and "a key the given key document does not hold" in err
    assert [p.name for p in (other / "learning-records").iterdir()] == [kept.name]
