"""Checking the audit chain: which records were changed, removed, cut off the tail, or moved, each named by its
node and sequence number.

A chain is checked in sequence order (hashes, links, gaps, the signed checkpoints and anchor) and in stored
order (records out of sequence). Sources: the database, a node's segment files, or an exported JSONL/CSV copy.
Where the node's segment files are at hand, they and the database are compared record by record, so a record
missing from either side is named.
"""

from __future__ import annotations

import csv
import enum
import json
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gatehouse.audit.chain import BODY_FIELDS, GENESIS, Linked
from gatehouse.audit.records import Tag
from gatehouse.audit.segments import segment_files
from gatehouse.audit.signing import ANCHOR, CHECKPOINT, Checkpoint, Keyring
from gatehouse.db.models import AuditCheckpoint, AuditRecord
from gatehouse.errors import InvalidInput

LEGACY = "legacy"
INT_FIELDS = ("status", "bytes_up", "bytes_down", "duration_ms")


class Problem(enum.StrEnum):
    MODIFIED = "modified"
    DELETED = "deleted"
    TRUNCATED = "truncated"
    REORDERED = "reordered"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True, slots=True)
class Finding:
    problem: Problem
    node: str
    first: int
    last: int
    message: str

    def __str__(self) -> str:
        where = f"#{self.first}" if self.first == self.last else f"#{self.first}-#{self.last}"
        return f"{self.problem.value.upper():<10} {self.node} {where}: {self.message}"


@dataclass
class NodeSummary:
    node: str
    records: int = 0
    first: int = 0
    last: int = 0
    checkpoints: int = 0
    anchored_at: int = 0
    signed_up_to: int = 0


@dataclass(frozen=True, slots=True)
class Repair:
    """A cut the node made and recorded in its chain (a torn last line after a crash): no tampering."""

    node: str
    seq: int
    message: str

    def __str__(self) -> str:
        return f"{'REPAIRED':<10} {self.node} #{self.seq}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    nodes: list[NodeSummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)

    def add(self, problem: Problem, node: str, first: int, last: int, message: str) -> None:
        self.findings.append(Finding(problem, node, first, last, message))

    def counts(self) -> dict[Problem, int]:
        counts: dict[Problem, int] = defaultdict(int)
        for finding in self.findings:
            counts[finding.problem] += 1
        return dict(counts)

    def lines(self) -> list[str]:
        out = []
        for summary in self.nodes:
            span = f"#{summary.first}-#{summary.last}" if summary.records else "none"
            extra = f", pruned up to #{summary.anchored_at} (signed anchor)" if summary.anchored_at else ""
            out.append(f"node {summary.node}: {summary.records} records ({span}), {summary.checkpoints} signed "
                       f"checkpoints up to #{summary.signed_up_to}{extra}")
        out += [str(f) for f in sorted(self.findings, key=lambda f: (f.node, f.first, f.problem.value))]
        out += [str(r) for r in sorted(self.repairs, key=lambda r: (r.node, r.seq))]
        out += [f"note: {n}" for n in self.notes]
        repaired = ""
        if self.repairs:
            n = len(self.repairs)
            repaired = f" ({n} repair{'s' if n > 1 else ''} after a crash, listed above)"
        if self.findings:
            counts = ", ".join(f"{n} {p.value}" for p, n in sorted(self.counts().items()))
            out.append(f"verify: {len(self.findings)} problems ({counts}){repaired}")
        else:
            out.append(f"verify: the chain is intact{repaired}")
        return out

    def note_repair(self, record: Linked) -> None:
        """A record of a cut made at start, if `record` is one (only an intact record counts as the node's)."""
        if record.body.get("tag") == Tag.AUDIT_REPAIRED and record.intact:
            self.repairs.append(Repair(record.node, record.seq, str(record.body.get("reason", ""))))


def body_of_row(row: AuditRecord) -> dict[str, Any]:
    body = {name: getattr(row, name) for name in BODY_FIELDS}
    body["at"] = row.at.isoformat(timespec="microseconds")
    return body


def linked_of_row(row: AuditRecord) -> Linked:
    return Linked(row.node, row.seq, row.prev_hash, row.hash, body_of_row(row))


# --- the checks, independent of where records come from ------------------------------------------------------


def check_order(report: Report, node: str, seqs_in_stored_order: Iterable[int]) -> None:
    """Records stored out of sequence order: each one stored after a later record is reported."""
    highest = 0
    for seq in seqs_in_stored_order:
        if seq < highest:
            report.add(Problem.REORDERED, node, seq, seq, f"stored after #{highest}; it belongs before it")
        else:
            highest = seq


def check_points(report: Report, node: str, points: list[Checkpoint], keyring: Keyring,
                 stored: set[tuple[str, int]] | None = None,
                 pruned_up_to: int = 0) -> tuple[Checkpoint | None, dict[int, Checkpoint]]:
    """Signatures of a node's checkpoints; returns the latest valid anchor and the valid checkpoints by seq.

    `stored` (kind, seq) pairs are what the database holds: a witness checkpoint missing there was removed
    (unless a signed anchor at `pruned_up_to` covers it).
    """
    anchor: Checkpoint | None = None
    valid: dict[int, Checkpoint] = {}
    for point in points:
        why = keyring.check(point)
        if why:
            report.add(Problem.CHECKPOINT, node, point.seq, point.seq, f"{point.kind} of {point.at}: {why}")
            continue
        if stored is not None and (point.kind, point.seq) not in stored and point.seq >= pruned_up_to:
            report.add(Problem.CHECKPOINT, node, point.seq, point.seq,
                       f"the witness holds a {point.kind} of {point.at} that the database no longer has")
        if point.kind == ANCHOR:
            if anchor is None or point.seq > anchor.seq:
                anchor = point
        else:
            earlier = valid.get(point.seq)
            if earlier is not None and earlier.hash != point.hash:
                report.add(Problem.CHECKPOINT, node, point.seq, point.seq,
                           "two validly signed checkpoints disagree on this record's hash")
            valid[point.seq] = point
    return anchor, valid


def check_chain(report: Report, node: str, records: Iterable[Linked], *, anchor: Checkpoint | None,
                checkpoints: dict[int, Checkpoint], partial: bool = False,
                elsewhere: set[int] | None = None) -> NodeSummary:
    """Hashes, links and gaps in sequence order, checked against the signed checkpoints.

    `partial`: the records start at a chosen time, so the first one's link is taken as given.
    `elsewhere`: sequence numbers found only outside this source (segments), to say where a tail survives.
    """
    summary = NodeSummary(node, anchored_at=anchor.seq if anchor else 0)
    start_seq, last_hash = (anchor.seq + 1, anchor.hash) if anchor else (1, GENESIS)
    expected, previous_intact = start_seq, True
    for record in records:
        if anchor is not None and record.seq <= anchor.seq:
            report.add(Problem.MODIFIED, node, record.seq, record.seq,
                       f"present although the signed anchor says records up to #{anchor.seq} were pruned")
            continue
        intact = record.intact
        if summary.records == 0:
            summary.first = record.seq
            if partial:
                expected, last_hash = record.seq, record.prev_hash
        summary.records += 1
        summary.last = record.seq
        if record.seq > expected:
            if summary.records == 1 and not partial:
                report.add(Problem.DELETED, node, expected, record.seq - 1,
                           "missing from the start of the chain" + ("" if anchor else " (no signed anchor covers "
                                                                     "them, so they were not pruned)"))
            else:
                report.add(Problem.DELETED, node, expected, record.seq - 1,
                           f"missing between #{expected - 1} and #{record.seq}")
        elif record.prev_hash != last_hash and intact and previous_intact:
            report.add(Problem.MODIFIED, node, record.seq - 1, record.seq - 1,
                       f"changed and rehashed: #{record.seq} does not link to it")
        if not intact:
            report.add(Problem.MODIFIED, node, record.seq, record.seq, "its content does not match its hash")
        point = checkpoints.get(record.seq)
        if point is not None and point.hash != record.hash and intact:
            report.add(Problem.MODIFIED, node, record.seq, record.seq,
                       f"differs from the checkpoint signed at {point.at}: the chain up to here was rewritten")
        expected, last_hash, previous_intact = record.seq + 1, record.hash, intact
    summary.checkpoints = len(checkpoints)
    summary.signed_up_to = max(checkpoints, default=0)
    if checkpoints and summary.signed_up_to > summary.last and summary.signed_up_to >= expected:
        point = checkpoints[summary.signed_up_to]
        survive = ""
        if elsewhere and all(seq in elsewhere for seq in range(expected, summary.signed_up_to + 1)):
            survive = "; the node's segment files still hold them"
        report.add(Problem.TRUNCATED, node, expected, summary.signed_up_to,
                   f"the tail after #{expected - 1} is gone although the checkpoint signed at {point.at} covers "
                   f"up to #{summary.signed_up_to}{survive}")
    return summary


@dataclass(frozen=True, slots=True)
class SegmentLine:
    """One line of a node's segment file: its record, or None when the line is not a readable record."""

    file: str
    number: int
    record: Linked | None


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted sequence numbers as runs: 3, 4, 5, 9 -> (3, 5), (9, 9)."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}-#{last}"


def compare_segments(report: Report, node: str, database: Iterator[Linked], segments: Iterable[SegmentLine], *,
                     from_seq: int = 1) -> set[int]:
    """The database and the node's segment files must hold the same records: a record missing from the segment
    files (the database has it), one stored there out of order or twice, an unreadable line, and a copy that
    differs are each named. Returns the sequence numbers only the segment files hold (not shipped yet, or
    removed from the database; `check_chain` names those below the database's last record).

    Records before `from_seq` (pruned under an anchor, or before the time checked from) are not compared. The
    database is read first: anything it holds was in a segment file before it was shipped, so a record being
    written while this runs cannot look missing from the segment files.
    """
    only_in_segments: set[int] = set()
    missing: list[int] = []
    stray: dict[int, Linked | None] = {}
    highest = 0
    current = next(database, None)
    try:
        for line in segments:
            record = line.record
            seq = record.seq if record is not None else highest + 1
            if record is None:
                report.add(Problem.MODIFIED, node, seq, seq, f"line {line.number} of {line.file} is not a readable "
                           "record")
            if seq < from_seq:
                highest = max(highest, seq)
                continue
            if seq <= highest:
                where = f"stored twice in {line.file}" if seq == highest else \
                    f"stored after #{highest} in {line.file}; it belongs before it"
                report.add(Problem.REORDERED, node, seq, seq, where)
                if seq != highest:
                    stray[seq] = record
                continue
            highest = seq
            while current is not None and current.seq < seq:
                missing.append(current.seq)
                current = next(database, None)
            if current is not None and current.seq == seq:
                if record is not None and (current.hash, current.prev_hash, current.body) != \
                        (record.hash, record.prev_hash, record.body):
                    report.add(Problem.MODIFIED, node, seq, seq, "the database copy differs from the node's "
                               "segment file")
                current = next(database, None)
            elif record is not None:
                only_in_segments.add(seq)
                if not record.intact:
                    report.add(Problem.MODIFIED, node, seq, seq, "its content in the segment file does not match "
                               "its hash")
        while current is not None:
            missing.append(current.seq)
            current = next(database, None)
    finally:
        if isinstance(database, Generator):
            database.close()
    for seq, record in stray.items():  # found out of place: not missing, but its content is checked on its own
        if record is not None and not record.intact:
            report.add(Problem.MODIFIED, node, seq, seq, "its content in the segment file does not match its hash")
    for first, last in _ranges(seq for seq in missing if seq not in stray):
        report.add(Problem.DELETED, node, first, last, "missing from the node's segment files; the database still "
                   + ("has it" if first == last else "has them"))
    return only_in_segments


def segment_lines(folder: Path, notes: list[str] | None = None) -> Iterator[SegmentLine]:
    """Every line of a node's segment files, in file order; a torn last line (a crash mid-write, cut and recorded
    by the node when it starts) is left out and noted."""
    for path in segment_files(folder):
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.endswith(b"\n"):
                    if notes is not None:
                        notes.append(f"node {folder.name}: the last line of {path.name} is torn ({len(raw)} bytes: "
                                     "a write in progress, or one a crash interrupted, which the node cuts and "
                                     "records when it starts)")
                    break
                try:
                    record: Linked | None = Linked.from_line(raw)
                except (ValueError, KeyError, TypeError):
                    record = None
                yield SegmentLine(path.name, number, record)


# --- the database ------------------------------------------------------------------------------------------


def stored_checkpoints(session: Session, node: str | None = None) -> list[Checkpoint]:
    """Checkpoints and anchors in the database, of one node or of all, in node and sequence order."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.node, AuditCheckpoint.seq, AuditCheckpoint.kind)
    if node is not None:
        query = query.where(AuditCheckpoint.node == node)
    return [Checkpoint(r.node, r.kind, r.seq, r.hash, r.at, r.key_id, r.signature) for r in session.scalars(query)]


def verify_database(session: Session, keyring: Keyring, *, since: datetime | None = None,
                    witness: list[Checkpoint] | None = None, audit_dir: Path | None = None) -> Report:
    report = Report()
    nodes = set(session.scalars(select(AuditRecord.node).distinct()))
    nodes |= set(session.scalars(select(AuditCheckpoint.node).distinct()))
    witnessed: dict[str, list[Checkpoint]] = defaultdict(list)
    for point in witness or []:
        witnessed[point.node].append(point)
    nodes |= set(witnessed)
    if LEGACY in nodes:
        nodes.discard(LEGACY)
        count = session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.node == LEGACY))
        report.notes.append(f"{count} records from before the chain existed (node {LEGACY}) cannot be verified")
    for node in sorted(nodes):
        stored_points = stored_checkpoints(session, node)
        stored = {(p.kind, p.seq) for p in stored_points}
        anchor, checkpoints = check_points(report, node, stored_points, keyring)
        if witnessed[node]:
            w_anchor, w_points = check_points(report, node, witnessed[node], keyring, stored,
                                              anchor.seq if anchor else 0)
            if w_anchor is not None and (anchor is None or w_anchor.seq > anchor.seq):
                anchor = w_anchor
            checkpoints = {**w_points, **checkpoints}
        if anchor is not None:
            checkpoints = {seq: p for seq, p in checkpoints.items() if seq > anchor.seq}
        base = select(AuditRecord).where(AuditRecord.node == node)
        first: int | None = None
        if since is not None:
            first = session.scalar(select(AuditRecord.seq).where(AuditRecord.node == node, AuditRecord.at >= since)
                                   .order_by(AuditRecord.seq).limit(1))
            base = base.where(AuditRecord.seq >= (first if first is not None else 2**62))
            checkpoints = {seq: p for seq, p in checkpoints.items() if first is not None and seq >= first}
        seqs = session.scalars(base.with_only_columns(AuditRecord.seq).order_by(AuditRecord.id)
                               .execution_options(yield_per=5000))
        check_order(report, node, seqs)
        seqs.close()

        def in_seq_order(query: Any = base) -> Iterator[Linked]:
            result = session.scalars(query.order_by(AuditRecord.seq).execution_options(yield_per=2000))
            try:
                for row in result:
                    yield linked_of_row(row)
            finally:
                result.close()  # a server-side cursor on PostgreSQL

        folder = audit_dir / node if audit_dir is not None else None
        elsewhere: set[int] = set()
        if folder is not None and folder.is_dir():
            from_seq = anchor.seq + 1 if anchor else 1
            if since is not None:  # only what the database part checks
                from_seq = max(from_seq, first if first is not None else 2**62)
            elsewhere = compare_segments(report, node, in_seq_order(), segment_lines(folder, report.notes),
                                         from_seq=from_seq)
            if elsewhere:
                spans = ", ".join(_span(a, b) for a, b in _ranges(sorted(elsewhere)))
                report.notes.append(f"node {node}: records {spans} are in its segment files only (not shipped to "
                                    "the database yet, or removed from it)")
        summary = check_chain(report, node, in_seq_order(), anchor=anchor, checkpoints=checkpoints,
                              partial=since is not None, elsewhere=elsewhere)
        report.nodes.append(summary)
        for row in session.scalars(base.where(AuditRecord.tag == str(Tag.AUDIT_REPAIRED)).order_by(AuditRecord.seq)):
            report.note_repair(linked_of_row(row))
    return report


# --- exported copies ------------------------------------------------------------------------------------------


def _typed_body(raw: dict[str, Any], where: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in BODY_FIELDS:
        if name not in raw:
            raise InvalidInput(f"{where}: the field {name!r} is missing")
        value = raw[name]
        if name in INT_FIELDS:
            value = None if value in (None, "") else int(value)
        elif value is None:
            value = ""
        body[name] = value
    return body


def read_export(path: Path) -> tuple[list[tuple[int, Linked]], list[Checkpoint]]:
    """Records of an exported JSONL or CSV file with their line numbers; JSONL may also hold checkpoints."""
    records: list[tuple[int, Linked]] = []
    points: list[Checkpoint] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                for number, row in enumerate(csv.DictReader(f), start=2):
                    records.append((number, _linked(row, f"{path}:{number}")))
            else:
                for number, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InvalidInput(f"{path}:{number}: not JSON ({exc.msg})") from None
                    if isinstance(data, dict) and isinstance(data.get("gatehouse"), dict):
                        data = data["gatehouse"].get("record", {})  # an ECS document carries the record
                    if isinstance(data, dict) and data.get("kind") in (CHECKPOINT, ANCHOR):
                        points.append(Checkpoint.from_json(line))
                    elif isinstance(data, dict):
                        records.append((number, _linked(data, f"{path}:{number}")))
                    else:
                        raise InvalidInput(f"{path}:{number}: expected a JSON object")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror})") from None
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    return records, points


def _linked(raw: dict[str, Any], where: str) -> Linked:
    for name in ("node", "seq", "prev_hash", "hash"):
        if not raw.get(name):
            raise InvalidInput(f"{where}: the chain field {name!r} is missing (export with a current gatehouse)")
    try:
        return Linked(str(raw["node"]), int(raw["seq"]), str(raw["prev_hash"]), str(raw["hash"]),
                      _typed_body(raw, where))
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def verify_export(path: Path, keyring: Keyring, witness: list[Checkpoint] | None = None) -> Report:
    """An exported copy: its records in file order and in sequence order, against the checkpoints it carries
    and those of a witness file. A copy of a time range is checked from its first record."""
    records, points = read_export(path)
    report = Report()
    by_node: dict[str, list[Linked]] = defaultdict(list)
    for _, record in records:
        by_node[record.node].append(record)
    all_points: dict[str, list[Checkpoint]] = defaultdict(list)
    for point in points + (witness or []):
        all_points[point.node].append(point)
    for node in sorted(by_node):
        chain = by_node[node]
        check_order(report, node, (r.seq for r in chain))
        anchor, checkpoints = check_points(report, node, all_points[node], keyring)
        ordered = sorted(chain, key=lambda r: r.seq)
        partial = anchor is None and ordered[0].seq != 1
        if partial:
            report.notes.append(f"node {node}: the copy starts at #{ordered[0].seq}; checked from there")
            checkpoints = {s: p for s, p in checkpoints.items() if s >= ordered[0].seq}
        report.nodes.append(check_chain(report, node, ordered, anchor=anchor, checkpoints=checkpoints,
                                        partial=partial))
        for record in ordered:
            report.note_repair(record)
    return report
