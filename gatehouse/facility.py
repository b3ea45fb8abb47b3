"""The facility this installation serves; one row, made from the settings on first use."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gatehouse.db.models import Facility
from gatehouse.settings import Settings


def ensure_facility(session: Session, settings: Settings) -> Facility:
    name: str = settings["facility.name"]
    facility = session.scalar(select(Facility).where(Facility.name == name))
    if facility is None:
        facility = Facility(name=name, timezone=settings["facility.timezone"])
        session.add(facility)
        session.flush()
    return facility
