"""The gateway as one service: the front, the inspector, and the policy kept current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from gatehouse.audit import AuditEvent, AuditUnavailable, Tag
from gatehouse.bus import (
    ControlEvent,
    GrantChanged,
    InmateResumed,
    InmateSuspended,
    Lockdown,
    LockdownLifted,
    PolicyChanged,
    TerminalDisabled,
)
from gatehouse.control import follow_events
from gatehouse.errors import GatehouseError
from gatehouse.kernel import Kernel, read_secret
from gatehouse.policy_store import describe_change, follow_files
from gatehouse.settings import resolve_table
from gateway.carry import Carrier
from gateway.checks import RequestChecks
from gateway.engine import Engine, LeafCerts
from gateway.front import Front
from gateway.identity import IdentityResolver
from gateway.inspector import Inspector
from gateway.metering import QuotaGate

log = logging.getLogger(__name__)
POLICY_POLL_S = 2.0
CONTROL_POLL_S = 0.5


class Gateway:
    def __init__(self, kernel: Kernel) -> None:
        if kernel.audit is None:
            raise GatehouseError("the kernel must be started before the gateway")
        settings = kernel.settings
        self._kernel = kernel
        key = read_secret(settings)
        resolve = resolve_table(settings["proxy.resolve"])
        self.clock: Callable[[], datetime] = _utc_now
        """The time every decision and minute is taken at (a test of minute boundaries may move it)."""
        self.quota = QuotaGate(kernel.quota, self._snapshot)
        self.identity = IdentityResolver(kernel.factory, kernel.session_policy,
                                         grace=settings["proxy.identity_grace_seconds"],
                                         link=lambda: kernel.bus.healthy)
        checks = RequestChecks(policy=self._snapshot, identity=self.identity, audit=kernel.audit,
                               portal_url=settings.portal_url, quota=self.quota, clock=self._now)
        self.inspector = Inspector(ca_dir=settings.ca_dir, key=key, policy=self._snapshot, checks=checks,
                                   resolve=resolve, upstream_ca_file=settings["proxy.upstream_ca_file"])
        self.engine: Engine | None = None
        """The front's own engine for inspected and plain-HTTP traffic; None: mitmproxy carries it."""
        if settings["proxy.engine"] == "front":
            carrier = Carrier(checks=checks, policy=self._snapshot, resolve=resolve,
                              upstream_ca_file=settings["proxy.upstream_ca_file"])
            self.engine = Engine(carrier=carrier, certs=LeafCerts(settings.ca_dir))
        self.front = Front(identity=self.identity, policy=self._snapshot, audit=kernel.audit, key=key,
                           inspector=lambda: self.inspector.address, take=self.inspector.take,
                           portal_url=settings.portal_url, resolve=resolve,
                           quota=self.quota, clock=self._now, engine=self.engine)
        self._watch: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None

    def _snapshot(self):  # type: ignore[no-untyped-def]
        return self._kernel.policies.snapshot

    def _now(self) -> datetime:
        return self.clock()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        if not await asyncio.to_thread(self._kernel.policies.load):
            errors = "\n".join(str(e) for e in self._kernel.policies.errors)
            raise GatehouseError(f"policy has errors; the gateway does not start:\n{errors}")
        self._kernel.bus.subscribe(self.front.on_event)
        self._kernel.bus.subscribe(self.identity.on_event)
        self._kernel.bus.subscribe(self._on_event)
        self._kernel.bus.on_health(self._on_health)
        if self.engine is None:
            await self.inspector.start()
        address = await self.front.start(host, port, reuse_port=reuse_port)
        # A broken file is reported and the snapshot in force stays (see _reload).
        self._watch = asyncio.create_task(follow_files(self._kernel.policies.folder, self._reload, POLICY_POLL_S),
                                          name="policy-watch")
        self._follow = asyncio.create_task(self._follow_control_events(), name="control-events")
        return address

    async def stop(self) -> None:
        if self._watch:
            self._watch.cancel()
        if self._follow:
            self._follow.cancel()
        await self.front.stop()
        await self.inspector.stop()

    async def _on_event(self, event: ControlEvent) -> None:
        if isinstance(event, PolicyChanged):
            await self._reload()
        elif isinstance(event, GrantChanged):
            self.quota.forget(event.inmate)
            await self._reload()
        elif isinstance(event, InmateSuspended | InmateResumed | TerminalDisabled | Lockdown | LockdownLifted):
            cut = await self.front.recheck()
            if cut:
                log.info("control: %s closed %d connections", type(event).__name__, cut)

    async def _follow_control_events(self) -> None:
        """Read the control actions other processes wrote (the CLI, another node's portal) every half second:
        the way they reach this node without Redis, and the way it catches up on any it did not hear."""
        await follow_events(self._kernel.factory, self._apply_control_event, CONTROL_POLL_S)

    async def _apply_control_event(self, event: ControlEvent) -> None:
        await self.identity.on_event(event)
        await self.front.on_event(event)
        await self._on_event(event)

    async def _on_health(self, healthy: bool) -> None:
        """Lost: every open connection closes and new ones are refused (see IdentityResolver). Back: cached
        identities are dropped and the policy read again, so what changed meanwhile applies, then traffic flows."""
        if healthy:
            self.identity.forget_all()
            await self._reload()
            tag, reason = Tag.GATEWAY_CONTROL_RESTORED, "the control bus answers again"
        else:
            cut = self.front.cut_all()
            tag, reason = Tag.GATEWAY_CONTROL_LOST, f"the control bus is unreachable; {cut} connections closed"
        if self._kernel.audit is not None:
            try:
                await self._kernel.audit.write(AuditEvent(tag, "gateway", decision="deny" if not healthy else "",
                                                          reason=reason))
            except AuditUnavailable as exc:
                log.error("control bus change not recorded (%s): %s", exc, reason)

    async def _reload(self) -> None:
        """Load the policy again; a change (rules added, removed, changed) or a refusal is recorded."""
        holder = self._kernel.policies
        before = holder.snapshot
        try:
            loaded = await asyncio.to_thread(holder.load)
        except SQLAlchemyError as exc:  # the curated rules cannot be read: the policy in force stays
            log.warning("policy: cannot read the rules in the database (%s); %s stays in force",
                        exc.__class__.__name__, before.version)
            return
        if loaded and holder.snapshot.version == before.version:
            return
        event = (AuditEvent(Tag.POLICY_CHANGED, "gateway", actor="policy", decision="allow",
                            reason=describe_change(before, holder.snapshot)) if loaded else
                 AuditEvent(Tag.POLICY_REJECTED, "gateway", actor="policy", decision="deny",
                            reason=f"{before.version} kept: " + "; ".join(str(e) for e in holder.errors[:5])))
        if self._kernel.audit is not None:
            try:
                await self._kernel.audit.write(event)
            except AuditUnavailable as exc:
                log.error("policy change not recorded (%s): %s", exc, event.reason)
        if loaded:  # after the change is recorded, so the log shows it before the tunnels it closes
            cut = await self.front.review_tunnels(policy_changed=True)
            if cut:
                log.info("policy %s closed %d open tunnels it no longer allows", holder.snapshot.version, cut)



def _utc_now() -> datetime:
    return datetime.now(UTC)
