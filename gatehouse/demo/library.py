"""The demo's offline library: a small ZIM file written at start with libzim's Creator (a full-text index
included), put on the shelf as `reading-room` for every inmate."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from sqlalchemy.orm import Session

from gatehouse.audit import AuditEvent, Tag
from gatehouse.db.engine import utcnow
from gatehouse.library import shelf, zim

NAME = "reading-room"


def _png(rgb: bytes, size: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + rgb * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head><body>'
            f'<main><h1>{title}</h1>{body}<p><a href="Welcome">Back to the welcome page</a></p></main></body></html>')


ARTICLES = (
    ("Welcome", "Welcome to the reading room",
     "<p>This small library works without the internet. Read about <a href=\"Curriculum_vitae\">writing a CV</a>, "
     "<a href=\"Bank_account\">opening a bank account</a> or <a href=\"Tenancy\">renting a home</a>.</p>"
     '<p><img src="book.png" alt="An open book" width="64" height="64"></p>'),
    ("Curriculum_vitae", "Writing a CV",
     "<p>A curriculum vitae (CV) lists your work, training and skills. Keep it to two pages, start with your most "
     "recent job and name the courses you finished, with their certificates.</p>"
     '<p>Employment services publish examples, for instance at <a href="https://www.example.org/cv">example.org'
     "</a>; ask staff to open a site you need.</p>"),
    ("Bank_account", "Opening a bank account",
     "<p>Banks ask for an identity document and an address. A basic bank account cannot be refused; ask the social "
     "service which papers you need before release.</p>"),
    ("Tenancy", "Renting a home",
     "<p>A tenancy agreement names the rent, the deposit and how long it lasts. Read it whole before signing, and "
     "keep a copy.</p>"),
)


def build(data_dir: Path) -> Path:
    """The demo ZIM, written straight into the library folder."""
    sources = [zim.Source(path, title, "text/html", _page(title, body)) for path, title, body in ARTICLES]
    sources.append(zim.Source("book.png", "", "image/png", _png(b"\x1d\x4f\x91"), article=False))
    return zim.build(shelf.folder(data_dir) / f"{NAME}.zim", sources, title="Reading room", language="eng",
                     description="Guides for life after release: CVs, bank accounts, renting a home.",
                     main="Welcome")


def shelve(session: Session, data_dir: Path) -> AuditEvent:
    """Build the demo library and register it; what the CLI would record for it."""
    added = shelf.add(session, data_dir, build(data_dir), name=NAME, by="demo", now=utcnow())
    return AuditEvent(Tag.LIBRARY_ADDED, "cli", actor="demo", decision="allow",
                      reason=f"library {added.name}: {added.title}, {added.article_count} articles; demo start")
