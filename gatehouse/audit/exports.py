"""Audit records in the formats other tools read: JSONL, CSV, Squid's native access.log, and Elastic Common
Schema (ECS) JSON for a SIEM. Every format carries the chain fields (node, seq, prev_hash, hash); JSONL and CSV
carry every field of the record, so `gatehouse audit verify --file` can check a copy.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from typing import Any

from gatehouse.audit.chain import BODY_FIELDS
from gatehouse.audit.signing import Checkpoint
from gatehouse.audit.verify import body_of_row
from gatehouse.db.models import AuditRecord

CHAIN_FIELDS = ("node", "seq", "prev_hash", "hash")
CSV_FIELDS = ("id", *BODY_FIELDS, *CHAIN_FIELDS)


def record_dict(row: AuditRecord) -> dict[str, Any]:
    """A record as its chain hashed it, plus its database id and chain fields."""
    return {"id": row.id, **body_of_row(row), "node": row.node, "seq": row.seq, "prev_hash": row.prev_hash,
            "hash": row.hash}


def jsonl_lines(rows: Iterable[AuditRecord], checkpoints: Iterable[Checkpoint] = ()) -> Iterator[str]:
    for row in rows:
        yield json.dumps({"kind": "record", **record_dict(row)}, ensure_ascii=False) + "\n"
    for point in checkpoints:
        yield point.line().decode("utf-8")


def csv_lines(rows: Iterable[AuditRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in record_dict(row).items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _squid_action(row: AuditRecord) -> str:
    if row.plane != "gateway":
        return "NONE"
    if row.decision == "deny":
        return "TCP_DENIED"
    if row.method == "CONNECT":
        return "TCP_TUNNEL"
    return "TCP_MISS"


def squid_lines(rows: Iterable[AuditRecord]) -> Iterator[str]:
    """Squid's native format: time elapsed client action/code size method URL user hierarchy type, then the
    chain fields as key=value (Squid log readers ignore trailing fields)."""
    for row in rows:
        when = row.at.replace(tzinfo=UTC).timestamp()
        status = row.status if row.status is not None else (403 if row.decision == "deny" else 200)
        size = (row.bytes_down or 0) + (row.bytes_up or 0)
        if row.method == "CONNECT":
            url = row.host + (row.path or "")
        elif row.host:
            url = f"{row.host}{row.path or '/'}"
        else:
            url = "-"
        hierarchy = "HIER_NONE/-" if row.decision == "deny" else "HIER_DIRECT/" + (row.host or "-")
        yield (f"{when:.3f} {row.duration_ms or 0:6d} {row.client_addr or '-'} {_squid_action(row)}/{status:03d} "
               f"{size} {row.method or '-'} {url.replace(' ', '%20')} {row.actor or '-'} {hierarchy} - "
               f"node={row.node} seq={row.seq} prev_hash={row.prev_hash} hash={row.hash} tag={row.tag}\n")


def _prune(value: Any) -> Any:
    """Drop empty fields from nested ECS objects."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", {}, [])}
    return value


def ecs_document(row: AuditRecord) -> dict[str, Any]:
    outcome = {"allow": "success", "deny": "failure"}.get(row.decision, "unknown")
    plane, _, action = row.tag.partition(":")
    document: dict[str, Any] = _prune({
        "@timestamp": row.at.replace(tzinfo=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "category": ["network", "web"] if plane == "gateway" else ["web"],
                  "action": row.tag, "outcome": outcome, "reason": row.reason, "module": "gatehouse",
                  "dataset": f"gatehouse.{plane}", "sequence": row.seq,
                  "duration": row.duration_ms * 1_000_000 if row.duration_ms is not None else None},
        "source": {"ip": row.client_addr or None, "bytes": row.bytes_up},
        "destination": {"domain": row.host, "bytes": row.bytes_down},
        "url": {"domain": row.host, "path": row.path},
        "http": {"request": {"method": row.method}, "response": {"status_code": row.status}},
        "user": {"name": row.actor},
        "observer": {"name": row.node, "type": "proxy" if plane == "gateway" else "portal",
                     "product": "Gatehouse"},
        "labels": {"terminal": row.terminal, "plane": row.plane, "decision": row.decision,
                   "action": action},
    })
    # the record exactly as hashed (empty fields included), so a SIEM copy can be verified
    document["gatehouse"] = {"chain": {"node": row.node, "seq": row.seq, "prev_hash": row.prev_hash,
                                       "hash": row.hash}, "record": record_dict(row)}
    return document


def ecs_lines(rows: Iterable[AuditRecord]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(ecs_document(row), ensure_ascii=False) + "\n"


FORMATS: dict[str, Callable[[Iterable[AuditRecord]], Iterator[str]]] = {
    "jsonl": jsonl_lines, "csv": csv_lines, "squid": squid_lines, "ecs": ecs_lines,
}


class Export:
    """The lines of a copy in `fmt`, counting records as they go; a JSONL copy ends with the stored checkpoints
    that sign its records, so it verifies on its own. `checkpoints` is asked once every record is out."""

    def __init__(self, rows: Iterable[AuditRecord], fmt: str, checkpoints: Callable[[], Iterable[Checkpoint]]
                 ) -> None:
        self._rows, self._fmt, self._checkpoints = rows, fmt, checkpoints
        self.count = 0
        self._spans: dict[str, tuple[int, int]] = {}

    def _tracked(self) -> Iterator[AuditRecord]:
        for row in self._rows:
            low, high = self._spans.get(row.node, (row.seq, row.seq))
            self._spans[row.node] = (min(low, row.seq), max(high, row.seq))
            self.count += 1
            yield row

    def __iter__(self) -> Iterator[str]:
        yield from FORMATS[self._fmt](self._tracked())
        if self._fmt == "jsonl":
            for point in self._checkpoints():
                span = self._spans.get(point.node)
                if span and span[0] <= point.seq <= span[1]:
                    yield point.line().decode("utf-8")
