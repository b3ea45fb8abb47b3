"""Signed checkpoints: a node's Ed25519 key, kept in its data dir and never in the database, signs the head of its
chain (sequence number and hash) at a fixed interval, on shutdown, and when records are pruned (an anchor).

Anyone holding the public key can check a checkpoint; nobody who can only write to the database can make one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from gatehouse.audit.chain import canonical
from gatehouse.audit.segments import cut_torn_tail, last_line
from gatehouse.errors import GatehouseError

CHECKPOINT = "checkpoint"
ANCHOR = "anchor"
KINDS = (CHECKPOINT, ANCHOR)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """`kind` checkpoint: the chain of `node` reached `seq` with `hash`. `kind` anchor: records up to `seq` were
    pruned and the next one links to `hash`."""

    node: str
    kind: str
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return canonical({"node": self.node, "kind": self.kind, "seq": self.seq, "hash": self.hash, "at": self.at,
                          "key_id": self.key_id})

    def line(self) -> bytes:
        return canonical(asdict(self)) + b"\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a checkpoint is a JSON object")
        try:
            point = cls(str(data["node"]), str(data["kind"]), int(data["seq"]), str(data["hash"]), str(data["at"]),
                        str(data["key_id"]), str(data["signature"]))
        except KeyError as exc:
            raise ValueError(f"a checkpoint needs the field {exc.args[0]!r}") from None
        if point.kind not in KINDS:
            raise ValueError(f"unknown checkpoint kind {point.kind!r}")
        return point


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, node: str, kind: str, seq: int, digest: str, at: str) -> Checkpoint:
        unsigned = Checkpoint(node, kind, seq, digest, at, self.key_id)
        signature = self._private.sign(unsigned.signed_bytes()).hex()
        return Checkpoint(node, kind, seq, digest, at, self.key_id, signature)


class Keyring:
    """Public keys a verifier trusts, by key id."""

    def __init__(self, keys: list[Ed25519PublicKey] | None = None) -> None:
        self.keys = {key_id(k): k for k in keys or []}

    def add(self, key: Ed25519PublicKey) -> None:
        self.keys[key_id(key)] = key

    def check(self, point: Checkpoint) -> str:
        """'' when the signature holds, else why not."""
        key = self.keys.get(point.key_id)
        if key is None:
            return f"signed by key {point.key_id}, which is not trusted here (add its .pub with --key)"
        try:
            key.verify(bytes.fromhex(point.signature), point.signed_bytes())
        except (InvalidSignature, ValueError):
            return "its signature does not hold: it was made or changed without the node's key"
        return ""


def key_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "audit-signing.key", data_dir / "audit-signing.pub"


def ensure_signing_key(data_dir: Path) -> bool:
    """Create the node's key pair if missing; True when created."""
    private_path, public_path = key_paths(data_dir)
    if private_path.exists():
        if not public_path.exists():
            public_path.write_bytes(public_pem(load_signer(data_dir).public))
        return False
    data_dir.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_path.write_bytes(public_pem(private.public_key()))
    return True


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def load_signer(data_dir: Path) -> Signer:
    private_path, _ = key_paths(data_dir)
    try:
        private = load_pem_private_key(private_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise GatehouseError(f"{private_path} is missing; run `gatehouse init --data-dir {data_dir}`") from None
    except ValueError as exc:
        raise GatehouseError(f"{private_path} is not a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise GatehouseError(f"{private_path} is not an Ed25519 key")
    return Signer(private)


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise GatehouseError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise GatehouseError(f"{path}: not an Ed25519 public key")
    return key


def checkpoint_file(node_folder: Path) -> Path:
    return node_folder / "checkpoints.jsonl"


def append_checkpoint(node_folder: Path, point: Checkpoint) -> None:
    node_folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_file(node_folder)
    if path.exists():
        cut_torn_tail(path)  # a line cut short by a crash would swallow this one
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, point.line())
        os.fsync(fd)
    finally:
        os.close(fd)


def last_checkpoint_seq(node_folder: Path) -> int:
    """The sequence number the node's latest checkpoint signs (0 when it has none)."""
    path = checkpoint_file(node_folder)
    line = last_line(path) if path.exists() else None
    return Checkpoint.from_json(line).seq if line else 0
