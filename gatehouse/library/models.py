"""The library domain's tables: which ZIM files are on the shelf, who sees each, and what staff hid in them.

The ZIM file itself lives in `<data-dir>/library/<name>.zim`; a row names it and keeps its metadata, read once
when the file was added, so the catalogue is drawn without opening every archive.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatehouse.db.models import Base, intpk, str64, str255, utc


class Library(Base):
    __tablename__ = "library_libraries"
    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    """The slug in `/library/<name>/...` and the file's name in the library folder."""
    title: Mapped[str255]
    language: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    article_count: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Inmate groups that see it; empty: every inmate."""
    added_by: Mapped[str64] = mapped_column(default="")
    added_at: Mapped[utc]

    hidden: Mapped[list[Hidden]] = relationship(back_populates="library", cascade="all, delete-orphan",
                                                order_by="Hidden.path")


class Hidden(Base):
    """An article (or with `prefix`, every path under it) that the facility keeps out of reading and search."""

    __tablename__ = "library_hidden"
    __table_args__ = (Index("uq_library_hidden_library_path", "library_id", "path", "prefix", unique=True),)
    id: Mapped[intpk]
    library_id: Mapped[int] = mapped_column(ForeignKey("library_libraries.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    prefix: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    hidden_by: Mapped[str64] = mapped_column(default="")
    hidden_at: Mapped[datetime]

    library: Mapped[Library] = relationship(back_populates="hidden")
