"""The composition of shared resources: settings, database, audit writer, policy and control bus."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gatehouse.audit import AuditEvent, SegmentAuditWriter
from gatehouse.audit.chain import link
from gatehouse.audit.segments import SegmentAppender, node_lock, recover
from gatehouse.audit.shipper import Shipper, ship_forever, shipped_up_to
from gatehouse.audit.signing import Signer, ensure_signing_key, load_signer
from gatehouse.audit.writer import body_of, checkpoint_now
from gatehouse.bus import ControlBus, InProcessBus, bus_for
from gatehouse.db.engine import make_engine, pending_migrations, session_factory
from gatehouse.errors import GatehouseError
from gatehouse.policy_store import PolicyHolder
from gatehouse.quota import InProcessQuotaStore, QuotaStore, quota_store_for
from gatehouse.ratelimit import RateLimiter, limiter_for
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


@dataclass
class Kernel:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    policies: PolicyHolder
    bus: ControlBus = field(default_factory=InProcessBus)
    limiter: RateLimiter = field(default_factory=lambda: limiter_for(""))
    quota: QuotaStore = field(default_factory=InProcessQuotaStore)
    """Minutes used per inmate and category: shared by the gateway (spending) and the portal (showing)."""
    audit: SegmentAuditWriter | None = None
    _shipping: asyncio.Task[None] | None = None
    _stop_shipping: asyncio.Event = field(default_factory=asyncio.Event)
    shipper: Shipper = field(init=False)

    def __post_init__(self) -> None:
        self.shipper = Shipper(self.factory, self.settings.audit_dir)

    def signer(self) -> Signer:
        """The node's checkpoint key, made on first use for data dirs older than checkpoints."""
        ensure_signing_key(self.settings.data_dir)
        return load_signer(self.settings.data_dir)

    async def record(self, event: AuditEvent) -> None:
        """Through the process's audit writer (a portal or gateway), or the CLI's own chain where none runs."""
        if self.audit is not None:
            await self.audit.write(event)
        else:
            await asyncio.to_thread(self.record_now, event)

    def record_now(self, event: AuditEvent) -> None:
        """For the CLI, where no writer task runs: append to the CLI's own chain under a lock, fsync, sign a
        checkpoint of it, ship."""
        node = f"{self.settings.node}-cli"
        folder = self.settings.audit_dir / node
        signer = self.signer()
        with node_lock(folder):
            seq, prev = recover(folder)
            appender = SegmentAppender(folder)
            try:
                record = link(node, seq + 1, prev, body_of(event, self.privileged_hosts))
                appender.append([record])
            finally:
                appender.close()
            checkpoint_now(folder, signer, node, record.seq, record.hash)
            self.shipper.ship_node(node)

    @property
    def privileged_hosts(self) -> frozenset[str]:
        return frozenset(self.settings.values["audit.privileged_hosts"])

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
                   PolicyHolder(settings.policy_dir, factory, ZoneInfo(settings["facility.timezone"])),
                   bus=bus_for(settings["redis.url"]), limiter=limiter_for(settings["redis.url"]),
                   quota=quota_store_for(settings["redis.url"]))

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy.from_settings(self.settings)

    async def start(self) -> None:
        await self.bus.start()  # never raises: with Redis away it starts unhealthy and the gateway refuses
        node = self.settings.node
        values = self.settings.values
        self.audit = SegmentAuditWriter(
            self.settings.audit_dir / node, node, signer=await asyncio.to_thread(self.signer),
            checkpoint_seconds=values["audit.checkpoint_seconds"], privileged=self.privileged_hosts,
            max_unshipped=values["audit.max_backlog"])
        await self.audit.start(await asyncio.to_thread(shipped_up_to, self.factory, node))
        writer = self.audit

        def progress() -> None:
            writer.shipped_seq = max(writer.shipped_seq, self.shipper.shipped(node))

        self._stop_shipping = asyncio.Event()
        self._shipping = asyncio.create_task(
            ship_forever(self.shipper, writer.committed, self._stop_shipping, progress), name="audit-shipper")

    def audit_nudge(self) -> None:
        if self.audit is not None:
            self.audit.committed.set()

    async def ship(self) -> int:
        """Copy every durable record into the database now (tests and shutdown)."""
        sent: int = await asyncio.to_thread(self.shipper.ship_all)
        if self.audit is not None:
            self.audit.shipped_seq = max(self.audit.shipped_seq, self.shipper.shipped(self.audit.node))
        return sent

    async def close(self) -> None:
        if self.audit is not None:
            await self.audit.close()
        if self._shipping is not None:
            self._stop_shipping.set()
            self.audit_nudge()
            await self._shipping
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self.ship()
        await self.limiter.close()
        await self.quota.close()
        await self.bus.close()
        self.engine.dispose()
