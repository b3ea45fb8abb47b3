"""The hash chain: each record carries its node's sequence number and the hash of the record before it.

The hash covers the sequence number, the previous hash and every field of the record in one canonical JSON
form, so changing, removing or moving any record breaks the chain where it happened.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
BODY_FIELDS = ("at", "plane", "tag", "actor", "terminal", "client_addr", "method", "host", "path", "decision",
               "reason", "status", "bytes_up", "bytes_down", "duration_ms")


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(node: str, seq: int, prev_hash: str, body: dict[str, Any]) -> str:
    head = f"{node}\n{seq}\n{prev_hash}\n".encode()
    return hashlib.sha256(head + canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class Linked:
    """One record as the segment file and the database hold it."""

    node: str
    seq: int
    prev_hash: str
    hash: str
    body: dict[str, Any]

    def line(self) -> bytes:
        return canonical({"node": self.node, "seq": self.seq, "prev": self.prev_hash, "hash": self.hash,
                          "body": self.body}) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Linked:
        data = json.loads(line)
        return cls(data["node"], int(data["seq"]), data["prev"], data["hash"], data["body"])

    @property
    def intact(self) -> bool:
        return chain_hash(self.node, self.seq, self.prev_hash, self.body) == self.hash


def link(node: str, seq: int, prev_hash: str, body: dict[str, Any]) -> Linked:
    return Linked(node, seq, prev_hash, chain_hash(node, seq, prev_hash, body), body)
