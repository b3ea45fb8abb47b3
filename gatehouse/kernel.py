"""The composition of shared resources: settings, database, audit writer, policy and control bus."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, make_url
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit import AuditEvent, DatabaseAuditWriter
from gatehouse.bus import ControlBus, InProcessBus
from gatehouse.db.engine import make_engine, pending_migrations, session_factory
from gatehouse.db.models import AuditRecord
from gatehouse.errors import GatehouseError
from gatehouse.policy_store import PolicyHolder
from gatehouse.sessions import SessionPolicy
from gatehouse.settings import Settings


def read_secret(settings: Settings) -> bytes:
    """The node's signing key (hand-off headers between gateway parts); made by `init`, never printed."""
    path = settings.secret_file
    if not path.exists():
        raise GatehouseError(f"{path} is missing; run `gatehouse init --data-dir {settings.data_dir}`")
    return bytes.fromhex(path.read_text().strip())


def write_secret(settings: Settings) -> bool:
    path = settings.secret_file
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_hex(32) + "\n")
    return True


def record_now(factory: sessionmaker[Session], event: AuditEvent) -> None:
    """Write one record in its own transaction: for the CLI, where there is no writer task."""
    with factory.begin() as session:
        session.execute(insert(AuditRecord), [event.as_row()])


@dataclass
class Kernel:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    policies: PolicyHolder
    bus: ControlBus = field(default_factory=InProcessBus)
    audit: DatabaseAuditWriter | None = None

    @classmethod
    def open(cls, settings: Settings, *, check_schema: bool = True) -> Kernel:
        url = make_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            raise GatehouseError(f"no database at {url.database}; run `gatehouse init --data-dir {settings.data_dir}`")
        engine = make_engine(settings.database_url)
        if check_schema and pending_migrations(engine):
            engine.dispose()
            raise GatehouseError(
                f"the database is not up to date; run `gatehouse db upgrade --data-dir {settings.data_dir}`")
        factory = session_factory(engine)
        return cls(settings, engine, factory,
                   PolicyHolder(settings.policy_dir, factory, ZoneInfo(settings["facility.timezone"])))

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy.from_settings(self.settings)

    async def start(self) -> None:
        self.audit = DatabaseAuditWriter(self.factory)
        await self.audit.start()

    async def close(self) -> None:
        if self.audit is not None:
            await self.audit.close()
        self.engine.dispose()
