"""The hash chain: each record carries its node's sequence number and the hash of the record before it.

The hash covers the sequence number, the previous hash and every field of the record in one canonical JSON
form, so changing, removing or moving any record breaks the chain where it happened.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
BODY_FIELDS = ("at", "plane", "tag", "actor", "terminal", "client_addr", "method", "host", "path", "decision",
               "reason", "status", "bytes_up", "bytes_down", "duration_ms")


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(node: str, seq: int, prev_hash: str, body: dict[str, Any]) -> str:
    return _hash(node, seq, prev_hash, canonical(body))


def _hash(node: str, seq: int, prev_hash: str, encoded_body: bytes) -> str:
    head = f"{node}\n{seq}\n{prev_hash}\n".encode()
    return hashlib.sha256(head + encoded_body).hexdigest()


def _text(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Linked:
    """One record as the segment file and the database hold it."""

    node: str
    seq: int
    prev_hash: str
    hash: str
    body: dict[str, Any]
    encoded: bytes = field(default=b"", compare=False, repr=False)
    """The body's canonical form when the writer made it for the hash; the line reuses it."""

    def line(self) -> bytes:
        """The canonical JSON of node, seq, prev, hash and body (keys sorted: body, hash, node, prev, seq)."""
        body = self.encoded or canonical(self.body)
        return (b'{"body":' + body + b',"hash":' + _text(self.hash) + b',"node":' + _text(self.node) +
                b',"prev":' + _text(self.prev_hash) + b',"seq":' + str(self.seq).encode() + b"}\n")

    @classmethod
    def from_line(cls, line: bytes) -> Linked:
        data = json.loads(line)
        return cls(data["node"], int(data["seq"]), data["prev"], data["hash"], data["body"])

    @property
    def intact(self) -> bool:
        return chain_hash(self.node, self.seq, self.prev_hash, self.body) == self.hash


def link(node: str, seq: int, prev_hash: str, body: dict[str, Any]) -> Linked:
    encoded = canonical(body)
    return Linked(node, seq, prev_hash, _hash(node, seq, prev_hash, encoded), body, encoded)
