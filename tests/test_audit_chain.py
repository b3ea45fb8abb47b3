"""The audit chain on SQLite and PostgreSQL: a clean log verifies; each kind of tampering is named by `verify`
with its record numbers; checkpoints kept in a witness file catch what the database alone cannot; exported
copies carry the chain and verify; pruning leaves a signed anchor so what remains still verifies."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, text, update

from gatehouse.audit import AuditEvent, Tag
from gatehouse.audit.chain import link
from gatehouse.cli import main
from gatehouse.cli.ops import initialise
from gatehouse.db.engine import utcnow
from gatehouse.db.models import AuditCheckpoint, AuditRecord
from gatehouse.kernel import Kernel
from gatehouse.settings import Settings

RECORDS = 20
NODE = "gw-test"


def open_settings(tmp_path: Path, database_url: str, **extra: object) -> Settings:
    return initialise(tmp_path / "data", {"database.url": database_url, "audit.node": NODE, **extra}, quiet=True)


async def write_chain(settings: Settings, count: int = RECORDS, *, checkpoint_every: int = 5,
                      start: datetime | None = None) -> None:
    """`count` gateway records, a signed checkpoint after every `checkpoint_every`, shipped to the database."""
    kernel = Kernel.open(settings)
    await kernel.start()
    assert kernel.audit is not None
    try:
        for n in range(1, count + 1):
            at = (start + timedelta(minutes=n)) if start else utcnow()
            await kernel.audit.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", actor="A100", terminal="cell-1",
                                                method="GET", host="allowed.test", path=f"/page/{n}",
                                                decision="allow", status=200, at=at))
            if n % checkpoint_every == 0:
                assert await kernel.audit.checkpoint()
    finally:
        await kernel.close()


def verify(capsys: pytest.CaptureFixture[str], settings: Settings, *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["audit", "verify", "--data-dir", str(settings.data_dir), *args])
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if line.startswith(("MODIFIED", "DELETED", "TRUNCATED",
                                                                         "REORDERED", "CHECKPOINT"))]


def sql(settings: Settings, *statements: object) -> None:
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as session:
            for statement in statements:
                session.execute(statement)  # type: ignore[call-overload]
    finally:
        kernel.engine.dispose()


def where(seq: int) -> object:
    return (AuditRecord.node == NODE) & (AuditRecord.seq == seq)


def row(settings: Settings, seq: int) -> AuditRecord:
    kernel = Kernel.open(settings)
    try:
        with kernel.factory() as session:
            found = session.scalar(select(AuditRecord).where(where(seq)))  # type: ignore[arg-type]
            assert found is not None
            session.expunge(found)
            return found
    finally:
        kernel.engine.dispose()


async def test_a_clean_log_verifies_and_the_check_is_audited(tmp_path: Path, database_url: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings)
    code, problems = verify(capsys, settings)
    assert (code, problems) == (0, [])
    kernel = Kernel.open(settings)
    with kernel.factory() as session:
        tags = list(session.scalars(select(AuditRecord.tag).where(AuditRecord.node == f"{NODE}-cli")))
        checkpoints = list(session.scalars(select(AuditCheckpoint.seq).where(AuditCheckpoint.node == NODE)
                                           .order_by(AuditCheckpoint.seq)))
    kernel.engine.dispose()
    assert tags == [Tag.AUDIT_VERIFIED]
    assert checkpoints == [5, 10, 15, 20]


async def test_each_kind_of_tampering_is_named(tmp_path: Path, database_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings)
    shutil.rmtree(settings.audit_dir / NODE)  # the database alone: what an auditor gets from a backup

    sql(settings, update(AuditRecord).where(where(3)).values(path="/nothing-to-see"))
    code, problems = verify(capsys, settings)
    assert code == 1 and problems == [f"MODIFIED   {NODE} #3: its content does not match its hash"]

    sql(settings, update(AuditRecord).where(where(3)).values(path="/page/3"),
        delete(AuditRecord).where(where(7)))
    code, problems = verify(capsys, settings)
    assert code == 1 and problems == [f"DELETED    {NODE} #7: missing between #6 and #8"]

    # swap two records' places in storage: everything but the row id moves
    a, b = row(settings, 11), row(settings, 12)
    columns = [c.key for c in AuditRecord.__table__.columns if c.key != "id"]
    sql(settings, update(AuditRecord).where(AuditRecord.id == a.id).values(seq=-1),
        update(AuditRecord).where(AuditRecord.id == b.id).values({c: getattr(a, c) for c in columns}),
        update(AuditRecord).where(AuditRecord.id == a.id).values({c: getattr(b, c) for c in columns}))
    code, problems = verify(capsys, settings)
    assert code == 1 and problems == [f"DELETED    {NODE} #7: missing between #6 and #8",
                                      f"REORDERED  {NODE} #11: stored after #12; it belongs before it"]

    sql(settings, delete(AuditRecord).where((AuditRecord.node == NODE) & (AuditRecord.seq >= 18)))
    code, problems = verify(capsys, settings)
    assert code == 1 and problems[-1].startswith(f"TRUNCATED  {NODE} #18-#20: the tail after #17 is gone although "
                                                 "the checkpoint signed at ")
    assert len(problems) == 3


async def test_a_rewritten_chain_is_caught_by_the_signed_checkpoints(tmp_path: Path, database_url: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Someone who can write the database can recompute every hash, but cannot sign a checkpoint."""
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings)
    shutil.rmtree(settings.audit_dir / NODE)
    kernel = Kernel.open(settings)
    with kernel.factory.begin() as session:
        rows = list(session.scalars(select(AuditRecord).where(AuditRecord.node == NODE).order_by(AuditRecord.seq)))
        prev, forged_hashes = rows[5].prev_hash, {}
        for record in rows[5:]:  # from #6 on, with one path changed and every later hash recomputed
            if record.seq == 6:
                record.path = "/rewritten"
            body = {c: getattr(record, c) for c in ("plane", "tag", "actor", "terminal", "client_addr", "method",
                                                    "host", "path", "decision", "reason", "status", "bytes_up",
                                                    "bytes_down", "duration_ms")}
            body["at"] = record.at.isoformat(timespec="microseconds")
            forged = link(NODE, record.seq, prev, body)
            record.prev_hash, record.hash, prev = prev, forged.hash, forged.hash
            forged_hashes[record.seq] = forged.hash
    kernel.engine.dispose()
    code, problems = verify(capsys, settings)
    assert code == 1
    assert [re.sub(r"signed at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "signed at T", p) for p in problems] == [
        f"MODIFIED   {NODE} #{n}: differs from the checkpoint signed at T: the chain up to here was rewritten"
        for n in (10, 15, 20)]

    # a checkpoint rewritten to match is refused: its signature does not hold
    sql(settings, update(AuditCheckpoint).where((AuditCheckpoint.node == NODE) & (AuditCheckpoint.seq == 10))
        .values(hash=forged_hashes[10]))
    code, problems = verify(capsys, settings)
    assert any(p.startswith(f"CHECKPOINT {NODE} #10: checkpoint of ") and "signature does not hold" in p
               for p in problems)


async def test_a_witness_file_catches_checkpoints_removed_with_the_tail(tmp_path: Path, database_url: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings)
    witness = tmp_path / "witness.jsonl"
    assert main(["audit", "checkpoint", "export", "--data-dir", str(settings.data_dir), "--output",
                 str(witness)]) == 0
    lines = witness.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines if json.loads(line)["node"] == NODE] == [5, 10, 15, 20]
    # exporting again appends only what is new (the CLI chain's own checkpoints)
    assert main(["audit", "checkpoint", "export", "--data-dir", str(settings.data_dir), "--output",
                 str(witness)]) == 0
    assert len(witness.read_text().splitlines()) == len(lines) + 1

    shutil.rmtree(settings.audit_dir / NODE)
    sql(settings, delete(AuditRecord).where((AuditRecord.node == NODE) & (AuditRecord.seq > 12)),
        delete(AuditCheckpoint).where((AuditCheckpoint.node == NODE) & (AuditCheckpoint.seq > 12)))
    code, problems = verify(capsys, settings)
    assert (code, problems) == (0, []), "without a witness, a clean cut after a checkpoint looks like a quiet node"
    code, problems = verify(capsys, settings, "--witness", str(witness))
    assert code == 1
    assert [p.split(":")[0] for p in problems] == [f"TRUNCATED  {NODE} #13-#20", f"CHECKPOINT {NODE} #15",
                                                   f"CHECKPOINT {NODE} #20"]


async def test_exports_carry_the_chain_and_copies_verify(tmp_path: Path, database_url: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url, **{"audit.privileged_hosts": ["lawyer.test"]})
    await write_chain(settings, 8, checkpoint_every=4)
    data = str(settings.data_dir)
    copies = {}
    for fmt, name in (("jsonl", "log.jsonl"), ("csv", "log.csv"), ("ecs", "log.ecs.json"), ("squid", "access.log")):
        copies[fmt] = tmp_path / name
        assert main(["audit", "export", "--data-dir", data, "--format", fmt, "--output", str(copies[fmt])]) == 0

    with copies["csv"].open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["node"] == NODE]
    assert [r["path"] for r in rows] == [f"/page/{n}" for n in range(1, 9)] and rows[0]["prev_hash"] == "0" * 64
    ecs = [json.loads(line) for line in copies["ecs"].read_text().splitlines()]
    first = next(d for d in ecs if d["observer"]["name"] == NODE)
    assert first["url"]["path"] == "/page/1" and first["event"]["outcome"] == "success"
    assert first["@timestamp"].endswith("Z") and first["gatehouse"]["chain"]["seq"] == 1
    squid = [line.split() for line in copies["squid"].read_text().splitlines() if f"node={NODE}" in line]
    assert squid[0][3:7] == ["TCP_MISS/200", "0", "GET", "allowed.test/page/1"] and squid[0][7] == "A100"
    assert float(squid[0][0]) > 1.7e9 and squid[0][11] == "seq=1"

    for fmt in ("jsonl", "csv", "ecs"):
        code, problems = verify(capsys, settings, "--file", str(copies[fmt]))
        assert (fmt, code, problems) == (fmt, 0, [])

    # a copy edited or shuffled is caught like the database
    lines = copies["jsonl"].read_text().splitlines(keepends=True)
    third = next(i for i, line in enumerate(lines) if '"seq": 3' in line and NODE in line)
    edited = lines.copy()
    edited[third] = edited[third].replace("/page/3", "/page/33")
    shuffled = lines.copy()
    shuffled[third], shuffled[third + 1] = shuffled[third + 1], shuffled[third]
    (tmp_path / "edited.jsonl").write_text("".join(edited))
    (tmp_path / "shuffled.jsonl").write_text("".join(shuffled))
    assert verify(capsys, settings, "--file", str(tmp_path / "edited.jsonl")) == (
        1, [f"MODIFIED   {NODE} #3: its content does not match its hash"])
    assert verify(capsys, settings, "--file", str(tmp_path / "shuffled.jsonl")) == (
        1, [f"REORDERED  {NODE} #3: stored after #4; it belongs before it"])


async def test_privileged_hosts_are_recorded_without_paths(tmp_path: Path) -> None:
    settings = open_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}",
                             **{"audit.privileged_hosts": ["Lawyer.Test."]})
    kernel = Kernel.open(settings)
    await kernel.start()
    assert kernel.audit is not None
    for host in ("lawyer.test", "allowed.test"):
        await kernel.audit.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", host=host, path="/case/123",
                                            decision="allow"))
    await kernel.close()
    kernel = Kernel.open(settings)
    with kernel.factory() as session:
        paths = {host: path for host, path in session.execute(select(AuditRecord.host, AuditRecord.path))}
    kernel.engine.dispose()
    assert paths == {"lawyer.test": "", "allowed.test": "/case/123"}


async def test_prune_leaves_a_signed_anchor_and_the_rest_verifies(tmp_path: Path, database_url: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url)
    start = datetime(2025, 1, 1, 8, 0)
    await write_chain(settings, start=start)  # record n at 08:00 + n minutes
    witness = tmp_path / "witness.jsonl"
    assert main(["audit", "checkpoint", "export", "--data-dir", str(settings.data_dir), "--output",
                 str(witness)]) == 0
    data = str(settings.data_dir)
    capsys.readouterr()
    assert main(["audit", "prune", "--data-dir", data, "--before", "2025-01-01T08:12:30"]) == 0
    assert f"node {NODE}: records up to #12 would go" in capsys.readouterr().out
    assert main(["audit", "prune", "--data-dir", data, "--before", "2025-01-01T08:12:30", "--yes"]) == 0
    assert f"node {NODE}: removed 12 records up to #12" in capsys.readouterr().out

    kernel = Kernel.open(settings)
    with kernel.factory() as session:
        left = list(session.scalars(select(AuditRecord.seq).where(AuditRecord.node == NODE)
                                    .order_by(AuditRecord.seq)))
        anchors = list(session.execute(select(AuditCheckpoint.seq).where(
            (AuditCheckpoint.node == NODE) & (AuditCheckpoint.kind == "anchor"))).scalars())
    kernel.engine.dispose()
    assert left == list(range(13, 21)) and anchors == [12]
    assert verify(capsys, settings) == (0, [])
    assert verify(capsys, settings, "--witness", str(witness)) == (0, [])

    # deleting the next records without an anchor is still named
    sql(settings, delete(AuditRecord).where(where(13)))
    code, problems = verify(capsys, settings)
    assert code == 1 and problems[0].startswith(f"DELETED    {NODE} #13: missing from the start of the chain")
    # and prune refuses to launder it
    capsys.readouterr()
    assert main(["audit", "prune", "--data-dir", data, "--before", "2025-01-01T08:15:30", "--yes"]) == 1
    assert "prune refused" in capsys.readouterr().err


async def test_verify_reads_segment_files_where_the_node_kept_them(tmp_path: Path, database_url: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """On the node itself, a record edited in the database differs from its segment file; a tail dropped from
    the database is said to survive there."""
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings)
    sql(settings, update(AuditRecord).where(where(4)).values(decision="deny"),
        text("DELETE FROM audit_records WHERE node = :n AND seq > 16").bindparams(n=NODE))
    code, problems = verify(capsys, settings)
    assert code == 1
    assert f"MODIFIED   {NODE} #4: the database copy differs from the node's segment file" in problems
    assert any(p.startswith(f"TRUNCATED  {NODE} #17-#20") and p.endswith("the node's segment files still hold them")
               for p in problems)


async def test_a_full_disk_refuses_records_and_leaves_the_segment_whole(tmp_path: Path) -> None:
    """When the segment cannot grow (here: a file size limit, as a full disk), writes are refused with a clear
    reason, nothing half-written stays behind, and once there is room the chain carries on without a gap."""
    import resource
    import signal

    from gatehouse.audit import AuditUnavailable, SegmentAuditWriter
    from gatehouse.audit.segments import read_segment, segment_files

    folder = tmp_path / "audit" / NODE
    writer = SegmentAuditWriter(folder, NODE)
    await writer.start()
    big = "x" * 400

    async def write(n: int) -> None:
        await writer.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", host="allowed.test", path=f"/{n}",
                                      reason=big))

    await write(1)
    size = segment_files(folder)[0].stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + size // 2, hard))
    try:
        with pytest.raises(AuditUnavailable, match="the audit segment cannot be written"):
            await asyncio.gather(*(write(n) for n in range(2, 6)))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert segment_files(folder)[0].stat().st_size == size, "a refused batch leaves nothing behind"
    await write(6)
    await writer.close()
    records = [record for path in segment_files(folder) for record, _ in read_segment(path)]
    assert [(r.seq, r.body["path"]) for r in records] == [(1, "/1"), (2, "/6")]
    assert records[1].prev_hash == records[0].hash and all(r.intact for r in records)


def test_recovery_cuts_a_torn_tail_and_finds_the_last_record_from_the_end(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A crash mid-write leaves part of a line: recovery cuts it, records the cut (in the log and in the chain),
    and resumes after the last whole record, even when records are longer than the window it reads backwards
    with."""
    from gatehouse.audit.segments import TAIL_CHUNK, SegmentAppender, read_segment, recover, segment_files
    from gatehouse.audit.signing import Checkpoint, Signer, append_checkpoint, last_checkpoint_seq

    folder = tmp_path / NODE
    appender = SegmentAppender(folder)
    prev, records = "0" * 64, []
    for n, size in enumerate((10, 3 * TAIL_CHUNK, 20), start=1):
        record = link(NODE, n, prev, {"path": "/" + "p" * size, "n": n})
        records.append(record)
        prev = record.hash
    appender.append(records)
    appender.close()
    path = segment_files(folder)[0]
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(records[1].line()[: TAIL_CHUNK + 7])  # torn, and longer than one backwards read
    caplog.set_level(logging.WARNING, "gatehouse.audit")
    seq, digest = recover(folder)
    kept = [r for r, _ in read_segment(path)]
    assert [r.seq for r in kept] == [1, 2, 3, 4] and (seq, digest) == (4, kept[-1].hash)
    assert path.read_bytes()[:whole] == b"".join(r.line() for r in records), "the whole records stay as they were"
    repair = kept[-1]
    assert repair.prev_hash == records[-1].hash and repair.intact and repair.body["tag"] == Tag.AUDIT_REPAIRED
    cut = f"{TAIL_CHUNK + 7} bytes at offset {whole} of {path.name}"
    assert cut in repair.body["reason"] and repair.body["path"] == path.name
    logged = [r.getMessage() for r in caplog.records if f"{TAIL_CHUNK + 7} bytes at offset {whole}" in r.getMessage()]
    assert len(logged) == 1 and str(path) in logged[0]
    assert recover(folder) == (4, kept[-1].hash), "a whole tail is not touched"

    # a last segment holding nothing but a torn line goes; the cut is recorded in the one before it
    second = folder / "000000000005.jsonl"
    second.write_bytes(b'{"body":{"at":"2026-')
    seq, digest = recover(folder)
    assert not second.exists() and seq == 5
    last = [r for r, _ in read_segment(path)][-1]
    assert last.prev_hash == kept[-1].hash and f"20 bytes at offset 0 of {second.name}" in last.body["reason"]
    path.write_bytes(b"")
    assert recover(folder) == (0, "0" * 64) and not path.exists(), "an empty last segment is removed"


    signer = Signer(Ed25519PrivateKey.generate())
    append_checkpoint(folder, signer.sign(NODE, "checkpoint", 2, records[1].hash, "2026-11-23T10:00:00"))
    with (folder / "checkpoints.jsonl").open("ab") as f:
        f.write(b'{"at":"2026-11-23T10:01:00","hash":"')  # a crash mid-append
    append_checkpoint(folder, signer.sign(NODE, "checkpoint", 3, records[2].hash, "2026-11-23T10:02:00"))
    lines = (folder / "checkpoints.jsonl").read_bytes().splitlines()
    assert [Checkpoint.from_json(line).seq for line in lines] == [2, 3] and last_checkpoint_seq(folder) == 3


def _segment(settings: Settings) -> Path:
    from gatehouse.audit.segments import segment_files

    files = segment_files(settings.audit_dir / NODE)
    assert len(files) == 1
    return files[0]


def _edit_lines(path: Path, edit: str) -> None:
    """Change a segment file as someone with access to the node's disk could: by record numbers (1-based)."""
    lines = path.read_bytes().splitlines(keepends=True)
    if edit.startswith("delete "):
        gone = {int(n) for n in edit.removeprefix("delete ").split(",")}
        lines = [line for n, line in enumerate(lines, start=1) if n not in gone]
    elif edit.startswith("swap "):
        a, b = (int(n) - 1 for n in edit.removeprefix("swap ").split(","))
        lines[a], lines[b] = lines[b], lines[a]
    elif edit.startswith("garble "):
        lines[int(edit.removeprefix("garble ")) - 1] = b'{"body": not json at all\n'
    elif edit.startswith("change "):
        n = int(edit.removeprefix("change ")) - 1
        lines[n] = lines[n].replace(b"/page/", b"/elsewhere/")
    elif edit.startswith("twice "):
        n = int(edit.removeprefix("twice ")) - 1
        lines.insert(n + 1, lines[n])
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(("edit", "expected"), [
    ("delete 7", [f"DELETED    {NODE} #7: missing from the node's segment files; the database still has it"]),
    ("delete 7,8,9", [f"DELETED    {NODE} #7-#9: missing from the node's segment files; the database still has them"]),
    ("delete 1", [f"DELETED    {NODE} #1: missing from the node's segment files; the database still has it"]),
    ("delete 20", [f"DELETED    {NODE} #20: missing from the node's segment files; the database still has it"]),
    ("delete 3,12", [f"DELETED    {NODE} #3: missing from the node's segment files; the database still has it",
                     f"DELETED    {NODE} #12: missing from the node's segment files; the database still has it"]),
    ("swap 11,12", [f"REORDERED  {NODE} #11: stored after #12 in 000000000001.jsonl; it belongs before it"]),
    ("twice 5", [f"REORDERED  {NODE} #5: stored twice in 000000000001.jsonl"]),
    ("garble 5", [f"MODIFIED   {NODE} #5: line 5 of 000000000001.jsonl is not a readable record"]),
    ("change 6", [f"MODIFIED   {NODE} #6: the database copy differs from the node's segment file"]),
])
async def test_a_segment_file_changed_with_the_database_intact_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, expected: list[str]) -> None:
    """The database alone verifies, so only the comparison with the segment files can tell; every record missing
    from either side is named by its number."""
    settings = open_settings(tmp_path, f"sqlite:///{tmp_path / 'seg.db'}")
    await write_chain(settings)
    _edit_lines(_segment(settings), edit)
    assert verify(capsys, settings) == (1, expected)


async def test_records_in_the_segment_files_only_are_named_and_checked(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A tail not shipped yet is no problem but is named; one of those records changed on disk is."""
    settings = open_settings(tmp_path, f"sqlite:///{tmp_path / 'seg.db'}")
    await write_chain(settings, checkpoint_every=10)
    sql(settings, delete(AuditRecord).where((AuditRecord.node == NODE) & (AuditRecord.seq > 17)),
        delete(AuditCheckpoint).where((AuditCheckpoint.node == NODE) & (AuditCheckpoint.seq > 17)))
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(settings.data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"note: node {NODE}: records #18-#20 are in its segment files only (not shipped to the database yet, " \
           "or removed from it)" in out
    _edit_lines(_segment(settings), "change 19")
    assert verify(capsys, settings) == (1, [f"MODIFIED   {NODE} #19: its content in the segment file does not match "
                                            "its hash"])


async def test_a_node_restarted_after_a_crash_signs_a_checkpoint_at_once(tmp_path: Path) -> None:
    """Records written since the last checkpoint before a crash are signed when the node starts again, not an
    interval later (a second crash meanwhile would leave them covered by none)."""
    from gatehouse.audit import SegmentAuditWriter
    from gatehouse.audit.segments import segment_files
    from gatehouse.audit.signing import Signer, last_checkpoint_seq

    folder = tmp_path / "audit" / NODE
    signer = Signer(Ed25519PrivateKey.generate())
    writer = SegmentAuditWriter(folder, NODE, signer=signer, checkpoint_seconds=3600)
    await writer.start()
    for n in range(7):
        await writer.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", path=f"/{n}"))
    assert await writer.checkpoint() and last_checkpoint_seq(folder) == 7
    for n in range(7, 10):
        await writer.write(AuditEvent(Tag.GATEWAY_REQUEST_ALLOWED, "gateway", path=f"/{n}"))
    # a crash: no closing checkpoint, and a batch half written
    assert writer._task is not None and writer._checkpointing is not None
    writer._task.cancel()
    writer._checkpointing.cancel()
    writer._appender.close()
    with segment_files(folder)[-1].open("ab") as f:
        f.write(b'{"body":{"at":"2026-12-02T10:00:00')

    again = SegmentAuditWriter(folder, NODE, signer=signer, checkpoint_seconds=3600)
    await again.start()
    try:
        assert again.seq == 11, "ten records and the record of the cut"
        assert last_checkpoint_seq(folder) == 11, "signed at start, not an interval later"
    finally:
        await again.close()
    restarted = SegmentAuditWriter(folder, NODE, signer=signer, checkpoint_seconds=3600)
    await restarted.start()  # after a clean stop nothing is left to sign
    await restarted.close()
    lines = (folder / "checkpoints.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [7, 11]


async def test_verify_reports_a_repair_apart_from_tampering(tmp_path: Path, database_url: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, database_url)
    await write_chain(settings, 10)
    segment = _segment(settings)
    offset = segment.stat().st_size
    torn = b'{"body":{"at":"2026-12-02T10:00:00.000000","bytes_down":null'
    with segment.open("ab") as f:
        f.write(torn)  # a crash mid-write
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(settings.data_dir)]) == 0  # while the node is down
    assert f"the last line of {segment.name} is torn ({len(torn)} bytes" in capsys.readouterr().out
    await write_chain(settings, 5)  # the node starts again: the cut is #11, then five records
    capsys.readouterr()
    code = main(["audit", "verify", "--data-dir", str(settings.data_dir)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert [line for line in out if line.startswith("REPAIRED")] == [
        f"REPAIRED   {NODE} #11: a torn last line was cut when the node started: {len(torn)} bytes at offset "
        f"{offset} of {segment.name}, a write a crash interrupted (never acknowledged)"]
    assert out[-1] == "verify: the chain is intact (1 repair after a crash, listed above)"
    assert not any(line.startswith(("MODIFIED", "DELETED", "TRUNCATED", "REORDERED", "CHECKPOINT")) for line in out)

    # an export carries the repair too
    copy = tmp_path / "copy.jsonl"
    assert main(["audit", "export", "--data-dir", str(settings.data_dir), "--output", str(copy)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(settings.data_dir), "--file", str(copy)]) == 0
    assert any(line.startswith(f"REPAIRED   {NODE} #11:") for line in capsys.readouterr().out.splitlines())


async def test_a_check_from_a_date_compares_the_segment_files_from_there(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    settings = open_settings(tmp_path, f"sqlite:///{tmp_path / 'seg.db'}")
    await write_chain(settings, start=datetime(2025, 1, 1, 8, 0))  # record n at 08:00 + n minutes
    _edit_lines(_segment(settings), "delete 3,15")
    assert verify(capsys, settings, "--since", "2025-01-01T08:10:30") == (
        1, [f"DELETED    {NODE} #15: missing from the node's segment files; the database still has it"])
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(settings.data_dir), "--since", "2025-01-01T08:10:30"]) == 1
    assert "segment files only" not in capsys.readouterr().out, "records before the date are not compared"
