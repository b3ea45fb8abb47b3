"""The checks every inspected or plain-HTTP request passes, whichever engine carries it.

Decided before a byte goes upstream and recorded durably first; if the audit log cannot take the record the
request is refused (fail closed). The HTTP/1.1 engine of the front and the mitmproxy addon both call these.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urljoin

from gatehouse.audit import AuditEvent, AuditSink, AuditUnavailable, Tag
from gatehouse.errors import InvalidInput
from gatehouse.explain import parse_url
from gateway.blockpage import HEADERS, language_for, page_for
from gateway.handoff import Handoff
from gateway.http1 import response_bytes
from gateway.identity import ControlUnavailable, IdentityResolver
from gateway.metering import QuotaGate
from policies.decision import Decision, Reason, ReasonCode, RequestFacts, Verdict, decide_request, decide_url, deny
from policies.hosts import HostError, canonical_host, split_authority
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
_METHOD = re.compile(r"[A-Z]{1,20}")
OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")
"""Headers some origin frameworks honour as the method: a GET carrying one would be a DELETE to them."""


@dataclass(slots=True)
class Asked:
    """One request as the checks see it. `host` and `port` are where it would go: the tunnel's for a request
    inside a CONNECT tunnel, the URL's for an absolute-form one; `host_header` is what the client wrote."""

    method: str
    host: str
    port: int
    path: str
    host_header: str | None
    url: str
    websocket: bool = False
    started: float = field(default_factory=time.monotonic)
    actor: str = ""
    """The inmate the request was decided for (the live session's), once it is."""
    language: str | None = None
    """The live session's language at decision time ("" when nobody is logged in; None until identity is known)."""
    accept_language: str = ""
    """The request's Accept-Language header: the block page's language when nobody is logged in."""
    overrides: tuple[tuple[str, str], ...] = ()
    """The method-override headers the request carried (lower-case name, value), in order."""
    strip: frozenset[bytes] = frozenset()
    """Lower-case names of headers that must not go upstream (overrides naming a method not allowed here)."""


def overrides_in(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """The method-override headers among `headers` (name, value pairs as they came), for `Asked.overrides`."""
    found = []
    for name, value in headers:
        lowered = name.decode("latin-1").lower()
        if lowered in OVERRIDES:
            found.append((lowered, value.decode("latin-1")))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    body: bytes
    headers: dict[str, str]


class RequestChecks:
    def __init__(self, *, policy: Callable[[], Snapshot], identity: IdentityResolver, audit: AuditSink,
                 portal_url: str, quota: QuotaGate, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._identity = identity
        self._audit = audit
        self._portal_url = portal_url
        self._quota = quota
        self._clock = clock

    async def admit(self, handoff: Handoff, asked: Asked, refused: str | None = None) -> Refusal | None:
        """Decide and record the request; None lets it go upstream, a Refusal is the answer to send instead.
        `refused`: why every request on this connection is denied (a TLS check failed)."""
        try:
            decision, asked.actor = await self._decide(handoff, asked, refused)
        except ControlUnavailable as exc:
            decision, asked.actor = deny(ReasonCode.CONTROL_LOST, str(exc)), ""
        except Exception as exc:  # identity or policy broke: deny and record why (fail closed)
            log.exception("inspector: decision failed")
            decision, asked.actor = deny(ReasonCode.GATEWAY_ERROR, f"decision failed: {exc.__class__.__name__}"), ""
        tag = Tag.GATEWAY_REQUEST_ALLOWED if decision.allowed else Tag.GATEWAY_REQUEST_DENIED
        try:
            await self._audit.write(self.event(handoff, asked, tag, decision.verdict, decision.explanation))
        except AuditUnavailable as exc:
            return Refusal(503, f"gateway: the audit log cannot record this request ({exc}); access is paused\n"
                           .encode(), {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "30"})
        if decision.allowed:
            return None
        return self._shown(handoff, asked, decision, asked.url)

    async def _decide(self, handoff: Handoff, asked: Asked, refused: str | None) -> tuple[Decision, str]:
        """The decision and the inmate it was made for (the live session's, not a stale one)."""
        identity = await self._identity.resolve(handoff.client)
        asked.language = identity.session.language if identity.session else ""
        if identity.block[0]:
            return deny(ReasonCode(identity.block[0]), identity.block[1]), ""
        session = identity.session
        if session is None:
            return deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal"), ""
        if refused is not None:
            return deny(ReasonCode.BAD_HOST, refused), session.inmate_number
        if handoff.host:  # inside a CONNECT tunnel: the front decided the tunnel for one session and host
            if handoff.verdict != "allow":
                return _refused(handoff), handoff.inmate
            if session.token != handoff.session:
                return deny(ReasonCode.NO_SESSION, "the session this connection was opened for has ended"), ""
        if asked.host_header is not None and (
                problem := _host_mismatch(asked.host_header, asked, bool(handoff.host))) is not None:
            return deny(ReasonCode.BAD_HOST, problem), session.inmate_number
        facts = RequestFacts(asked.method, asked.host, asked.port, asked.path, websocket=asked.websocket)
        now = self._clock()
        policy = self._policy()
        decision = decide_request(facts, session.subject, policy, now=now)
        if decision.allowed:
            decision = await self._quota.spend(session.subject, decision.quota, now) or decision
            if decision.allowed:
                self._quota.note(session.inmate_number, asked.host, decision.quota)
                decision = _without_overrides(asked, decision, lambda method: decide_request(
                    replace(facts, method=method), session.subject, policy, now=now))
        return decision, session.inmate_number

    async def answered(self, handoff: Handoff, asked: Asked, status: int, location: str) -> Refusal | None:
        """The response has come: a redirect to a place the inmate may not go is refused (recorded, and
        answered with the block page saying where from); None lets the response through."""
        if not 300 <= status < 400 or not location:
            return None
        target = urljoin(asked.url, location)
        refusal = await self._redirect_refusal(handoff, asked, target)
        if refusal is None:
            return None
        await self.close(handoff, asked, Tag.GATEWAY_REQUEST_DENIED, "deny", refusal.explanation)
        return self._shown(handoff, asked, refusal, target, via=asked.host)

    async def _redirect_refusal(self, handoff: Handoff, asked: Asked, target: str) -> Decision | None:
        identity = await self._identity.resolve(handoff.client)
        if identity.session is None:
            return deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal")
        try:
            scheme, facts = parse_url(target, "GET")
        except InvalidInput:
            return deny(ReasonCode.BAD_HOST, f"{asked.host} redirects to something not a web page")
        decision = decide_url(scheme, facts, identity.session.subject, self._policy(), now=self._clock()).final
        if decision.allowed:
            return None
        reason = decision.reasons[0]
        return deny(reason.code, f"{asked.host} sent you on to {target}: {reason.detail}", reason.rule_id)

    def _shown(self, handoff: Handoff, asked: Asked, decision: Decision, url: str, via: str = "") -> Refusal:
        """The block page in the language of the session live at decision time (the one the connection was handed
        over with if it could not be looked up); with nobody logged in, the browser's, then the facility's."""
        language = language_for(asked.language, asked.accept_language, self._identity.language,
                                handoff.language if handoff.session else "")
        page = page_for(decision, url, self._portal_url, language, self._policy(), via=via)
        return Refusal(403, page.render(), HEADERS)

    async def malformed(self, handoff: Handoff | None, status: int, detail: str, *, client: str = "") -> bytes:
        """Record a request refused for its framing (`client`: the address, when no hand-off is bound)."""
        return await record_malformed(self._audit, handoff.client if handoff else client, status, detail, handoff)

    async def close(self, handoff: Handoff, asked: Asked, tag: Tag, decision: str, reason: str, status: int = 0,
                    up: int | None = None, down: int | None = None) -> None:
        """The closing record of a request (done, refused after the fact, or failed); a lost one is logged."""
        try:
            await self._audit.write(self.event(handoff, asked, tag, decision, reason, status or None, up, down))
        except AuditUnavailable:
            log.error("inspector: %s record lost for %s", tag.value, asked.url)

    @staticmethod
    def event(handoff: Handoff, asked: Asked, tag: Tag, decision: str, reason: str, status: int | None = None,
              up: int | None = None, down: int | None = None) -> AuditEvent:
        duration = int((time.monotonic() - asked.started) * 1000) if status is not None else None
        return AuditEvent(tag, "gateway", actor=asked.actor, terminal=handoff.terminal, client_addr=handoff.client,
                          method=asked.method, host=asked.host, path=asked.path, decision=decision,
                          reason=reason, status=status, bytes_up=up, bytes_down=down, duration_ms=duration)


async def record_malformed(audit: AuditSink, client: str, status: int, detail: str,
                           handoff: Handoff | None = None) -> bytes:
    """Record a request whose framing is broken (never forwarded; recorded like any denial, with the terminal and
    inmate when the connection was already handed off); the answer to send before closing."""
    event = AuditEvent(Tag.GATEWAY_REQUEST_DENIED, "gateway", actor=handoff.inmate if handoff else "",
                       terminal=handoff.terminal if handoff else "", client_addr=client,
                       host=handoff.host if handoff else "", decision="deny",
                       reason=f"{ReasonCode.BAD_REQUEST}: {detail}", status=status)
    try:
        await audit.write(event)
    except AuditUnavailable:
        log.error("gateway: record of a malformed request from %s lost", client)
    return response_bytes(status, f"gateway: {detail}\n".encode(), TEXT)


def _host_mismatch(host_header: str, asked: Asked, tunnel: bool) -> str | None:
    """Why the Host header (or `:authority`) does not name where the request goes, or None. An origin behind one
    address serving several names or ports would otherwise answer for a host or port nobody decided on; a Host
    without a port names the scheme's default (RFC 9110 section 7.2): 443 in a tunnel, 80 for plain HTTP."""
    default = 443 if tunnel else 80
    try:
        named, port = split_authority(host_header, default)
        target = canonical_host(asked.host)
    except HostError as exc:
        return str(exc)
    if named == target and port == asked.port:
        return None
    where = f"the tunnel to {asked.host}" if tunnel else f"the address {asked.host}"
    if named == target:
        return f"Host {named}:{port} does not match {where}:{asked.port}"
    return f"Host {named} does not match {where}"


def _without_overrides(asked: Asked, decision: Decision, decide: Callable[[str], Decision]) -> Decision:
    """Strip the method-override headers that name a method this rule would refuse (a read-only rule must not
    carry a DELETE to an origin that honours them); each one stripped is in the decision's reasons."""
    stripped: set[bytes] = set()
    notes: list[Reason] = []
    for name, value in asked.overrides:
        method = value.strip().upper()
        if not _METHOD.fullmatch(method):
            refusal: Decision | None = deny(ReasonCode.BAD_REQUEST, f"{value[:40]!r} is not one method")
        elif method == asked.method.upper():
            refusal = None
        else:
            refusal = decide(method)
            refusal = None if refusal.allowed else refusal
        if refusal is not None:
            reason = refusal.reasons[0]
            stripped.add(name.encode("latin-1"))
            notes.append(Reason(reason.code, f"{name} stripped: {reason.detail}", reason.rule_id))
    if not stripped:
        return decision
    asked.strip = asked.strip | stripped
    return replace(decision, reasons=decision.reasons + tuple(notes))


def _refused(handoff: Handoff) -> Decision:
    """The front's refusal of the tunnel, as it was decided (with when it lifts, for the block page)."""
    reason = Reason(ReasonCode(handoff.code or ReasonCode.NO_MATCH), handoff.why, handoff.rule)
    return Decision(Verdict.DENY, (reason,), opens_at=datetime.fromisoformat(handoff.opens) if handoff.opens else None)
