"""The directory's tables: HSDS organizations and services, the facets inmates filter by, and what staff decided
about a service's website.

A service keeps HSDS's own fields as columns (what is shown, edited and searched) and its nested objects (phones,
schedules, languages, areas, documents, costs, locations, attributes) as the HSDS JSON they came in, so an export
gives back what was imported. Facets are a table of their own, one row per (service, kind, value), so a filter is
an indexed lookup on SQLite and PostgreSQL alike. The full-text index is not a model: its shape differs per
database (an FTS5 table on SQLite, tsvectors per dictionary on PostgreSQL); `search.py` keeps it.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatehouse.db.models import Base, str64, str255, utc

id100 = String(100)
"""HSDS ids are UUIDs in the standard, but feeds use their own; they are kept as given."""


class Website(enum.StrEnum):
    CLOSED = "closed"
    """Shown as an address; the gateway does not open it."""
    READ = "read"
    """Opened to every inmate for GET and HEAD."""
    FORMS = "forms"
    """Opened for reading, and for POST on the form paths staff named."""


class LinkState(enum.StrEnum):
    UNCHECKED = "unchecked"
    OK = "ok"
    REDIRECTED = "redirected"
    DEAD = "dead"


class Facet(enum.StrEnum):
    CATEGORY = "category"
    CITY = "city"
    REGION = "region"
    LANGUAGE = "language"
    CONVICTION = "conviction"
    """Present (value "yes") when the service says it is open to people with a conviction."""


class Organization(Base):
    __tablename__ = "resources_organizations"
    id: Mapped[str] = mapped_column(id100, primary_key=True)
    name: Mapped[str255]
    description: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str255] = mapped_column(default="")
    website: Mapped[str] = mapped_column(String(1024), default="")

    services: Mapped[list[Service]] = relationship(back_populates="organization", order_by="Service.name")


class Service(Base):
    __tablename__ = "resources_services"
    id: Mapped[str] = mapped_column(id100, primary_key=True)
    organization_id: Mapped[str] = mapped_column(id100, ForeignKey("resources_organizations.id"), index=True)
    name: Mapped[str255]
    alternate_name: Mapped[str255] = mapped_column(default="")
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(1024), default="")
    email: Mapped[str255] = mapped_column(default="")
    status: Mapped[str] = mapped_column(String(32), default="active")
    application_process: Mapped[str] = mapped_column(Text, default="")
    fees_description: Mapped[str] = mapped_column(Text, default="")
    eligibility_description: Mapped[str] = mapped_column(Text, default="")
    minimum_age: Mapped[int | None] = mapped_column(Integer)
    maximum_age: Mapped[int | None] = mapped_column(Integer)
    assured_date: Mapped[date | None] = mapped_column(Date, index=True)
    """When someone last checked the entry is true (HSDS's field); staff set it by marking the entry checked."""
    assurer_email: Mapped[str255] = mapped_column(default="")
    last_modified: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The nested HSDS objects, as HSDS JSON: phones, schedules, languages, service_areas, required_documents,
    cost_options, service_at_locations, attributes."""
    language: Mapped[str] = mapped_column(String(16), default="")
    """The language the entry is written in (its first language), which decides how its text is stemmed."""

    website: Mapped[str] = mapped_column(String(16), default=Website.CLOSED.value)
    form_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    website_proposals: Mapped[list[int]] = mapped_column(JSON, default=list)
    """The curation proposals that open (or close) the website, newest last: its rules need four eyes like any
    other (one to read it, one more to post its named forms)."""
    link_state: Mapped[str] = mapped_column(String(16), default=LinkState.UNCHECKED.value)
    link_checked_at: Mapped[datetime | None]
    link_detail: Mapped[str] = mapped_column(Text, default="")
    """What the last link check found: the redirect's target, or why the site did not answer."""

    imported_at: Mapped[utc]
    updated_by: Mapped[str64] = mapped_column(default="")
    updated_at: Mapped[utc]

    organization: Mapped[Organization] = relationship(back_populates="services", lazy="joined")
    facets: Mapped[list[ServiceFacet]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                      order_by="(ServiceFacet.kind, ServiceFacet.value)")

    def facet(self, kind: Facet) -> list[str]:
        return [f.value for f in self.facets if f.kind == kind.value]


class ServiceFacet(Base):
    """One value a service is found by: a category, a city or region it serves, a language spoken there."""

    __tablename__ = "resources_facets"
    __table_args__ = (Index("ix_resources_facets_kind_value", "kind", "value"),)
    service_id: Mapped[str] = mapped_column(id100, ForeignKey("resources_services.id", ondelete="CASCADE"),
                                            primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    """As it is looked up: lower case, without accents (see `search.facet_value`)."""
    label: Mapped[str] = mapped_column(String(128), default="")
    """As the feed wrote it ("Liège"), for the filter's choices."""


class Contract(enum.StrEnum):
    PERMANENT = "permanent"
    FIXED_TERM = "fixed-term"
    TEMPORARY = "temporary"
    APPRENTICESHIP = "apprenticeship"
    TRAINING = "training"
    """A paid traineeship or work placement."""


class Hours(enum.StrEnum):
    FULL_TIME = "full-time"
    PART_TIME = "part-time"
    SHIFTS = "shifts"


class JobOffer(Base):
    """A job offer posted by staff; it leaves the inmates' list by itself after its closing day."""

    __tablename__ = "resources_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str255]
    employer: Mapped[str255]
    region: Mapped[str] = mapped_column(String(128), default="")
    city: Mapped[str] = mapped_column(String(128), default="")
    contract: Mapped[str] = mapped_column(String(32), default=Contract.PERMANENT.value)
    hours: Mapped[str] = mapped_column(String(32), default=Hours.FULL_TIME.value)
    fair_chance: Mapped[bool] = mapped_column(default=False)
    """The employer says it hires people with a conviction."""
    description: Mapped[str] = mapped_column(Text, default="")
    how_to_apply: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    closes_on: Mapped[date] = mapped_column(Date, index=True)
    """The last day to apply (facility time, included)."""
    posted_by: Mapped[str64]
    posted_at: Mapped[utc]
    withdrawn_by: Mapped[str64] = mapped_column(default="")
    withdrawn_at: Mapped[datetime | None]


class PlanItemKind(enum.StrEnum):
    SERVICE = "service"
    JOB = "job"
    STEP = "step"
    """A step of the checklist (ID card, bank account...), by its key."""


class ReleasePlan(Base):
    """One inmate's plan for release: the date and region it is anchored to, what they saved, their notes."""

    __tablename__ = "resources_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), unique=True)
    release_date: Mapped[date | None] = mapped_column(Date)
    release_region: Mapped[str] = mapped_column(String(128), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[utc]

    items: Mapped[list[PlanItem]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                 order_by="PlanItem.added_at")


class PlanItem(Base):
    __tablename__ = "resources_plan_items"
    __table_args__ = (Index("uq_resources_plan_items_plan_kind_ref", "plan_id", "kind", "ref", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("resources_plans.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(100))
    """The service's HSDS id, the job's number, or the step's key."""
    done: Mapped[bool] = mapped_column(default=False)
    done_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    added_at: Mapped[utc]


class PlanSupporter(Base):
    """A member of staff who supports an inmate's release (and so may read their plan); the inmate sees who."""

    __tablename__ = "resources_plan_supporters"
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), primary_key=True)
    staff: Mapped[str64] = mapped_column(primary_key=True)
    added_by: Mapped[str64]
    added_at: Mapped[utc]


class PlanView(Base):
    """Someone other than the inmate opened the plan: the inmate can see who looked, and when."""

    __tablename__ = "resources_plan_views"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inmate_id: Mapped[int] = mapped_column(ForeignKey("inmates.id", ondelete="CASCADE"), index=True)
    staff: Mapped[str64]
    at: Mapped[utc]
    what: Mapped[str] = mapped_column(String(32), default="page")
    """"page" or "pdf"."""
