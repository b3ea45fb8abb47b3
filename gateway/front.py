"""The fast front: takes every client connection, decides the CONNECT, splices or inspects.

Per connection: read one head (h11), resolve identity, decide with `policies`, write the audit record, then
refuse, splice a passthrough tunnel, or inspect: with the front's own engine (`gateway.engine`), or by handing
the connection to the mitmproxy inspector with a signed header when `proxy.engine` chooses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from mitmproxy.tls import ClientHello
from sqlalchemy.exc import SQLAlchemyError

from gatehouse.audit import AuditEvent, AuditSink, AuditUnavailable, Tag
from gatehouse.bus import ControlEvent, SessionEnded, SessionStarted
from gatehouse.quota import local_minute
from gatehouse.settings import ResolveTable
from gatehouse.upstream import UpstreamRefused, upstream_address
from gateway.blockpage import HEADERS, language_for, page_for
from gateway.checks import TEXT, record_malformed
from gateway.engine import Engine, PlainSide, linger
from gateway.handoff import HEADER, Handoff, sign
from gateway.http1 import CONNECT_OK, HEAD_TIMEOUT_S, BadRequest, Head, read_head, response_bytes
from gateway.identity import ControlUnavailable, Identity, IdentityResolver
from gateway.metering import QuotaGate
from gateway.sni import read_client_hello, sni_mismatch
from gateway.splice import Meter, Metered, Replayed, splice
from policies.decision import Decision, Mode, ReasonCode, RequestFacts, Subject, Verdict, decide_connect, deny
from policies.hosts import HostError, split_authority
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)
HOP_HEADERS = frozenset({b"proxy-authorization", b"proxy-connection", HEADER.encode()})
REVIEW_S = 1.0
"""How often open tunnels are looked at: metered if bytes moved, decided again when a new minute begins."""


@dataclass(slots=True, eq=False)
class Client:
    """An open connection, and the session its identity was looked up for: `resolving` while the lookup runs,
    then `bound` with `session` the token (None: nobody was logged in)."""

    address: str
    writer: asyncio.StreamWriter
    task: asyncio.Task[Any] | None
    resolving: bool = False
    bound: bool = False
    session: str | None = None

    def decided_for(self, session: str | None) -> bool:
        """Whether this connection may have been decided for `session`: so when its identity is being looked up
        now (the answer may predate the event), or was looked up for that very session."""
        return self.resolving or (self.bound and self.session == session)


@dataclass(slots=True, eq=False)
class Tunnel:
    """An allowed CONNECT, passthrough or inspected, while it is open: what it was decided for and its bytes."""

    head: Head
    identity: Identity
    subject: Subject
    facts: RequestFacts
    decision: Decision
    meter: Meter
    minute: tuple[date, int]
    """The minute it was last decided in; a new minute decides it again (windows, hours, policy)."""
    moved: int = 0
    """Bytes counted at the last look; more since then make this minute an active one."""


class Front:
    def __init__(self, *, identity: IdentityResolver, policy: Callable[[], Snapshot], audit: AuditSink, key: bytes,
                 inspector: Callable[[], tuple[str, int] | None], portal_url: str,
                 take: Callable[[Any, Any], Awaitable[None]],
                 resolve: ResolveTable, quota: QuotaGate, clock: Callable[[], datetime],
                 engine: Engine | None = None) -> None:
        self._identity = identity
        self._policy = policy
        self._audit = audit
        self._key = key
        self._inspector = inspector
        self._take = take
        self._engine = engine
        """Carries inspected and plain-HTTP connections; None hands them to the mitmproxy inspector."""
        self._portal_url = portal_url
        self._resolve = resolve
        self._quota = quota
        self._clock = clock
        self._clients: dict[str, set[Client]] = {}
        self._admitted: dict[asyncio.StreamWriter, Tunnel | None] = {}
        """Connections let through for a session (with their tunnel, for a CONNECT); a recheck closes these, not
        ones already being refused."""
        self._server: asyncio.Server | None = None
        self._reviewing: asyncio.Task[None] | None = None
        self.head_timeout = HEAD_TIMEOUT_S
        """How long the first request head of a connection may take (tests shorten it)."""

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen; with `reuse_port` several worker processes share the port and the kernel spreads connections
        over them (SO_REUSEPORT)."""
        self._server = await asyncio.start_server(self._accept, host, port, reuse_address=True, backlog=4096,
                                                  reuse_port=reuse_port or None)
        self._reviewing = asyncio.create_task(self._review_forever(), name="tunnel-review")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        if self._reviewing is not None:
            self._reviewing.cancel()
        if self._server is not None:
            self._server.close()
        self.cut_all()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def on_event(self, event: ControlEvent) -> None:
        """Cut the open connections of a terminal whose binding changed: logout takes effect at once, and no
        connection decided for the previous state (or nobody) carries on under the new one. Events come twice
        (the bus, then the database poll): connections looked up after the change are left alone, so the second
        hearing of an end does not cut the refusal page a new connection is being sent."""
        if isinstance(event, SessionEnded):
            self._identity.forget(event.terminal_address)
            self._cut(event.terminal_address, only=lambda client: client.decided_for(event.session))
        elif isinstance(event, SessionStarted):
            self._identity.forget(event.terminal_address)
            self._cut(event.terminal_address,
                      only=lambda client: client.resolving or (client.bound and client.session != event.session))

    async def recheck(self) -> int:
        """After a suspension, lockdown or switch-off: look at every terminal with open connections again and
        close those whose terminal is now blocked or whose session has ended. How many were closed."""
        cut = 0
        for address in list(self._clients):
            self._identity.forget(address)
            try:
                identity = await self._identity.resolve(address)
            except ControlUnavailable:
                continue  # everything was cut when the bus was lost
            except SQLAlchemyError:  # the database is away: keep what is open, as the identity grace does
                log.exception("front: cannot look at %s again", address)
                continue
            if identity.block[0] or identity.session is None:
                # Connections still being decided get the refusal page, not a cut.
                cut += self._cut(address, only=lambda client: client.writer in self._admitted)
        return cut

    def cut_all(self) -> int:
        """Close every open connection (the control bus is lost: a lockdown sent now would not be heard)."""
        return sum(self._cut(address) for address in list(self._clients))

    def _cut(self, address: str, only: Callable[[Client], bool] = lambda client: True) -> int:
        """Close the connections of one address (those `only` picks); how many."""
        cut = 0
        for client in list(self._clients.get(address, ())):
            if only(client):
                self._admitted.pop(client.writer, None)
                client.writer.transport.abort()  # now, whatever the client has not read yet
                if client.task:
                    client.task.cancel()
                cut += 1
        return cut

    def open_connections(self, address: str) -> int:
        return len(self._clients.get(address, ()))

    async def _review_forever(self) -> None:
        while True:
            await asyncio.sleep(REVIEW_S)
            try:
                await self.review_tunnels()
            except Exception:  # one bad look must not stop metering for everyone
                log.exception("front: reviewing open tunnels failed")

    async def review_tunnels(self, *, policy_changed: bool = False) -> int:
        """Meter open tunnels and close those that may not go on; how many were closed.

        A tunnel through which bytes moved since the last look spends the minute those bytes moved in (a
        passthrough tunnel in the category of its rule, an inspected one in that of its last request); when the
        budget is used up, or the quota store does not answer, it is closed. At each new minute, and at once after
        a policy change, it is decided again for the session now at its terminal: the session ended, a window or
        the terminal's hours ending, a rule removed or turned from passthrough to inspect, each closes it. The
        inmate's next page says why. A tunnel that cannot be looked at is closed (fail closed)."""
        now = self._clock()
        policy = self._policy()
        minute = local_minute(now, policy.timezone)
        here = (minute.day, minute.index)
        identities: dict[str, Identity | Decision] = {}
        cut = 0
        for client in [c for clients in self._clients.values() for c in clients]:
            tunnel = self._admitted.get(client.writer)
            if tunnel is None:
                continue
            try:
                refusal = await self._review(client.address, tunnel, policy, now, here if not policy_changed else None,
                                             identities)
            except Exception as exc:
                log.exception("front: cannot look at the tunnel of %s to %s", client.address, tunnel.facts.host)
                refusal = deny(ReasonCode.GATEWAY_ERROR, f"the tunnel could not be checked: {exc.__class__.__name__}")
            if refusal is not None and client.writer in self._admitted:
                cut += self._cut(client.address, only=lambda other, this=client: other is this)  # type: ignore[misc]
                await self._record_cut(tunnel, refusal)
        return cut

    async def _review(self, address: str, tunnel: Tunnel, policy: Snapshot, now: datetime,
                      here: tuple[date, int] | None, identities: dict[str, Identity | Decision]) -> Decision | None:
        """Why this tunnel must close now, or None. `here` None: decide it again whatever the minute."""
        if here is None or tunnel.minute != here:
            if here is not None:
                tunnel.minute = here
            if (refusal := await self._decide_again(address, tunnel, policy, now, identities)) is not None:
                return refusal
        moved = tunnel.meter.up + tunnel.meter.down
        if moved <= tunnel.moved:
            return None
        tunnel.moved = moved
        passthrough = tunnel.decision.mode is Mode.PASSTHROUGH
        category = tunnel.decision.quota if passthrough else self._quota.last_category(tunnel.subject.inmate,
                                                                                       tunnel.facts.host)
        if not category:
            return None  # inspected, and no request allowed yet: each request is metered as it is decided
        since = max(0.0, time.monotonic() - tunnel.meter.last)
        return await self._quota.spend(tunnel.subject, category, now - timedelta(seconds=since))

    async def _decide_again(self, address: str, tunnel: Tunnel, policy: Snapshot, now: datetime,
                            identities: dict[str, Identity | Decision]) -> Decision | None:
        known = identities.get(address)
        if known is None:
            try:
                known = await self._identity.resolve(address)
            except ControlUnavailable as exc:
                known = deny(ReasonCode.CONTROL_LOST, str(exc))
            except SQLAlchemyError:  # the database is away: the identity grace keeps open sessions going
                known = tunnel.identity
            identities[address] = known
        if isinstance(known, Decision):
            return known
        if known.block[0]:
            return deny(ReasonCode(known.block[0]), known.block[1])
        if known.session is None or known.session.token != tunnel.subject.session:
            return deny(ReasonCode.NO_SESSION, "the session this connection was opened for has ended")
        tunnel.subject = known.session.subject
        decision = decide_connect(tunnel.facts, tunnel.subject, policy, now=now)
        if not decision.allowed:
            return decision
        if decision.mode is not tunnel.decision.mode:
            return deny(ReasonCode.RULE_DENY, f"{tunnel.facts.host} is now {decision.mode.value}; "
                                              "the connection is opened again")
        tunnel.decision = decision
        return None

    async def _record_cut(self, tunnel: Tunnel, refusal: Decision) -> None:
        event = self._event(tunnel.head, tunnel.identity, Tag.GATEWAY_TUNNEL_CUT, "deny", refusal.explanation,
                            tunnel.facts.host)
        try:
            await self._audit.write(event)
        except AuditUnavailable:
            log.error("front: record of a cut tunnel lost for %s: %s", tunnel.facts.host, refusal.explanation)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = _plain_address(str(peer[0])) if peer else ""
        client = Client(address, writer, asyncio.current_task())
        self._clients.setdefault(address, set()).add(client)
        try:
            await self._serve(client, reader, writer)
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("front: connection from %s failed", address)
        finally:
            self._admitted.pop(writer, None)
            self._clients.get(address, set()).discard(client)
            if not self._clients.get(address):
                self._clients.pop(address, None)
            writer.close()

    async def _serve(self, client: Client, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = client.address
        try:
            head = await read_head(reader, self.head_timeout)
        except BadRequest as exc:
            writer.write(await record_malformed(self._audit, address, exc.status, str(exc)))
            await linger(PlainSide(reader, writer))
            return
        if head is None:
            return
        client.resolving = True
        try:
            identity = await self._identity.resolve(address)
        except ControlUnavailable as exc:
            await self._refuse(writer, head, Identity(address), deny(ReasonCode.CONTROL_LOST, str(exc)))
            return
        except Exception as exc:  # identity store broke: refuse and record (fail closed)
            log.exception("front: identity lookup failed for %s", address)
            failed = deny(ReasonCode.GATEWAY_ERROR, f"identity lookup failed: {exc.__class__.__name__}")
            await self._refuse(writer, head, Identity(address), failed)
            return
        client.resolving, client.bound = False, True
        client.session = identity.session.token if identity.session is not None else None
        if head.method == "CONNECT":
            await self._connect(identity, head, reader, writer)
        elif head.target.lower().startswith("http://"):
            await self._plain(identity, head, reader, writer)
        else:  # refused as malformed, and recorded: a proxy is sent absolute-form requests and CONNECT
            writer.write(await record_malformed(self._audit, address, 400, "this is a proxy; send absolute-form "
                                                f"requests or CONNECT, not {head.target[:80]!r}"))

    async def _connect(self, identity: Identity, head: Head, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            host, port = split_authority(head.target, 443)
        except HostError as exc:
            await self._refuse(writer, head, identity, deny(ReasonCode.BAD_HOST, str(exc)))
            return
        if not identity.known_terminal:
            await self._refuse(writer, head, identity, deny(
                ReasonCode.UNKNOWN_TERMINAL, f"{identity.address} is not a registered terminal"), host=host)
            return
        now = self._clock()
        facts = RequestFacts("CONNECT", host, port)
        if identity.block[0]:
            decision = deny(ReasonCode(identity.block[0]), identity.block[1])
        elif identity.session is None:
            decision = deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal")
        else:
            decision = decide_connect(facts, identity.session.subject, self._policy(), now=now)
            if decision.allowed and decision.mode is Mode.PASSTHROUGH:  # inspected: each request spends its own
                decision = await self._quota.spend(identity.session.subject, decision.quota, now) or decision
        tag = Tag.GATEWAY_CONNECT_ALLOWED if decision.allowed else Tag.GATEWAY_CONNECT_DENIED
        if not await self._record(writer, head, identity, tag, decision, host):
            return
        started = time.monotonic()
        meter = Meter()
        if decision.allowed and identity.session is not None:
            minute = local_minute(now, self._policy().timezone)
            self._admitted[writer] = Tunnel(head, identity, identity.session.subject, facts, decision, meter,
                                            (minute.day, minute.index))
        if decision.allowed and decision.mode is Mode.PASSTHROUGH:
            await self._passthrough(identity, host, port, head, reader, writer, meter)
        else:
            await self._handoff(identity, head, decision, reader, writer, meter, host=host, port=port)
        await self._closed(head, identity, host, meter, started)

    async def _plain(self, identity: Identity, head: Head, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if not identity.known_terminal:
            await self._refuse(writer, head, identity, deny(
                ReasonCode.UNKNOWN_TERMINAL, f"{identity.address} is not a registered terminal"))
            return
        if identity.block[0]:
            decision = deny(ReasonCode(identity.block[0]), identity.block[1])
        elif identity.session is None:
            decision = deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal")
        else:
            decision = Decision(Verdict.ALLOW, ())  # each request is decided (and metered) by the inspector
            self._admitted[writer] = None
        await self._handoff(identity, head, decision, reader, writer, Meter())

    async def _handoff(self, identity: Identity, head: Head, decision: Decision, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, meter: Meter, *, host: str = "", port: int = 0) -> None:
        """Inspect: the front's own engine carries the connection, or the mitmproxy inspector does (when
        `proxy.engine` chooses it). A denied tunnel is inspected too, so the refusal reaches the browser as a
        block page inside TLS."""
        session = identity.session
        first = decision.reasons[0] if decision.reasons else None
        handoff = Handoff(
            client=identity.address, terminal=identity.terminal, terminal_kind=identity.terminal_kind,
            inmate=session.inmate_number if session else "",
            groups=tuple(sorted(session.subject.groups)) if session else (),
            session=session.token if session else "", language=session.language if session else "en",
            host=host, port=port, verdict=decision.verdict.value,
            code=first.code.value if first else "", rule=first.rule_id if first else "",
            why=first.detail if first else "", opens=decision.opens_at.isoformat() if decision.opens_at else "")
        if self._engine is not None:
            if not host:
                # The head as it came (the engine parses and checks it again, and drops hop-by-hop headers): an
                # HTTP/1.0 head cannot be written again by h11, which sends only HTTP/1.1.
                replayed = Replayed(reader, head.raw + head.rest, meter)
                await self._engine.serve(handoff, PlainSide(replayed, Metered(writer, meter)))
                return
            if (opened := await self._open_tunnel(reader, writer, head, identity, host)) is None:
                return
            hello, parsed = opened
            await self._engine.serve_tunnel(handoff, Replayed(reader, hello, meter), Metered(writer, meter),
                                            refused=sni_mismatch(parsed.sni, host), h2=b"h2" in parsed.alpn_protocols)
            return
        if self._inspector() is None:
            writer.write(response_bytes(503, b"gateway: the inspector is not running\n", TEXT))
            return
        token = sign(self._key, handoff)
        rewritten = head.serialize([(HEADER.encode(), token.encode())], HOP_HEADERS)
        replayed = Replayed(reader, rewritten + head.rest, meter, uncounted=len(rewritten))
        served = asyncio.ensure_future(self._take(replayed, Metered(writer, meter)))
        served.add_done_callback(_report_failure)
        # A cut aborts the client's socket; the inspector then ends the connection its own way (hooks run,
        # state is dropped), so it is shielded from the cancellation that stops this task.
        await asyncio.shield(served)

    async def _open_tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: Head,
                           identity: Identity, host: str) -> tuple[bytes, ClientHello] | None:
        """Answer the CONNECT and read the client's TLS ClientHello (its bytes, and the hello); None when the
        client does not speak TLS, which is recorded."""
        writer.write(CONNECT_OK)
        try:
            return await read_client_hello(reader, head.rest)
        except (ValueError, TimeoutError) as exc:
            await self._record(writer, head, identity, Tag.GATEWAY_REQUEST_DENIED,
                               deny(ReasonCode.BAD_HOST, f"not a TLS tunnel: {exc}"), host)
            return None

    async def _passthrough(self, identity: Identity, host: str, port: int, head: Head,
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter) -> None:
        """Splice without interception, after checking the upstream address and that SNI names the host."""
        try:
            target = await upstream_address(host, port, self._resolve, self._policy())
        except UpstreamRefused as exc:
            await self._refuse(writer, head, identity, deny(ReasonCode.BAD_HOST, str(exc)), host=host)
            return
        if (opened := await self._open_tunnel(reader, writer, head, identity, host)) is None:
            return
        hello, parsed = opened
        if (problem := sni_mismatch(parsed.sni, host)) is not None:
            await self._record(writer, head, identity, Tag.GATEWAY_REQUEST_DENIED,
                               deny(ReasonCode.BAD_HOST, problem), host)
            return
        try:
            await splice(reader, writer, target, hello, meter)
        except (TimeoutError, OSError) as exc:
            log.warning("front: cannot reach %s (%s): %s", host, target[0], exc)

    async def _record(self, writer: asyncio.StreamWriter, head: Head, identity: Identity, tag: Tag,
                      decision: Decision, host: str) -> bool:
        """Make the decision durable before acting on it; refuse the connection if the log cannot take it."""
        try:
            await self._audit.write(self._event(head, identity, tag, decision.verdict.value,
                                                decision.explanation, host))
        except AuditUnavailable as exc:
            log.error("front: refusing %s: %s", head.target, exc)
            writer.write(response_bytes(503, b"gateway: the audit log is unavailable; access is paused\n", TEXT))
            return False
        return True

    async def _refuse(self, writer: asyncio.StreamWriter, head: Head, identity: Identity, decision: Decision,
                      host: str = "") -> None:
        tag = Tag.GATEWAY_CONNECT_DENIED if head.method == "CONNECT" else Tag.GATEWAY_REQUEST_DENIED
        if await self._record(writer, head, identity, tag, decision, host):
            live = identity.session.language if identity.session else ""
            language = language_for(live, head.header(b"accept-language") or "", self._identity.language)
            page = page_for(decision, head.target, self._portal_url, language, self._policy())
            writer.write(response_bytes(403, page.render(), HEADERS))
        await writer.drain()

    async def _closed(self, head: Head, identity: Identity, host: str, meter: Meter, started: float) -> None:
        event = replace(self._event(head, identity, Tag.GATEWAY_TUNNEL_CLOSED, "", "", host), bytes_up=meter.up,
                        bytes_down=meter.down, duration_ms=int((time.monotonic() - started) * 1000))
        try:
            await self._audit.write(event)
        except AuditUnavailable:
            log.error("front: closing record lost for %s", head.target)

    @staticmethod
    def _event(head: Head, identity: Identity, tag: Tag, decision: str, reason: str, host: str) -> AuditEvent:
        session = identity.session
        return AuditEvent(tag, "gateway", actor=session.inmate_number if session else "", terminal=identity.terminal,
                          client_addr=identity.address, method=head.method, host=host,
                          path="" if head.method == "CONNECT" else head.target, decision=decision, reason=reason)


def _report_failure(served: asyncio.Future[None]) -> None:
    """A connection the inspector served may end after the front's task did (a cut): its error is logged here."""
    if not served.cancelled() and (exc := served.exception()) is not None:
        log.error("front: the inspector failed on a connection: %r", exc)


def _plain_address(address: str) -> str:
    return address[7:] if address.startswith("::ffff:") else address
