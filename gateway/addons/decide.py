"""Decides every inspected request before a byte of it goes upstream; denied ones get the block page.

The decision is recorded durably first; if the audit log cannot take it, the request is refused (fail closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urljoin

from mitmproxy import http

from gatehouse.audit import AuditEvent, AuditSink, AuditUnavailable, Tag
from gatehouse.errors import InvalidInput
from gatehouse.explain import parse_url
from gateway.addons.handoff import METADATA_KEY, REFUSED_KEY
from gateway.blockpage import HEADERS, BlockPage
from gateway.handoff import Handoff
from gateway.identity import ControlUnavailable, IdentityResolver
from gateway.metering import QuotaGate
from policies.decision import Decision, Reason, ReasonCode, RequestFacts, Verdict, decide_request, decide_url, deny
from policies.hosts import HostError, split_authority
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)
STARTED_KEY = "gatehouse.started"
ACTOR_KEY = "gatehouse.actor"


class RequestDecider:
    def __init__(self, *, policy: Callable[[], Snapshot], identity: IdentityResolver, audit: AuditSink,
                 portal_url: str, quota: QuotaGate, clock: Callable[[], datetime]) -> None:
        self._policy = policy
        self._identity = identity
        self._audit = audit
        self._portal_url = portal_url
        self._quota = quota
        self._clock = clock

    async def _decide(self, flow: http.HTTPFlow, handoff: Handoff) -> tuple[Decision, str]:
        """The decision and the inmate it was made for (the live session's, not a stale one)."""
        identity = await self._identity.resolve(handoff.client)
        if identity.block[0]:
            return deny(ReasonCode(identity.block[0]), identity.block[1]), ""
        session = identity.session
        if session is None:
            return deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal"), ""
        request = flow.request
        host = request.pretty_host
        if (refused := flow.metadata.get(REFUSED_KEY)) is not None:
            return deny(ReasonCode.BAD_HOST, refused), session.inmate_number
        if handoff.host:  # inside a CONNECT tunnel: the front decided the tunnel for one session and host
            if handoff.verdict != "allow":
                return _refused(handoff), handoff.inmate
            if session.token != handoff.session:
                return deny(ReasonCode.NO_SESSION, "the session this connection was opened for has ended"), ""
            try:
                asked = split_authority(request.host_header or host, handoff.port)[0]
            except HostError as exc:
                return deny(ReasonCode.BAD_HOST, str(exc)), session.inmate_number
            if asked != handoff.host:
                return deny(ReasonCode.BAD_HOST, f"Host {asked} does not match the tunnel to {handoff.host}"), \
                    session.inmate_number
            host = handoff.host
        facts = RequestFacts(request.method, host, handoff.port if handoff.host else request.port, request.path,
                             websocket=request.headers.get("upgrade", "").lower() == "websocket")
        now = self._clock()
        decision = decide_request(facts, session.subject, self._policy(), now=now)
        if decision.allowed:
            decision = await self._quota.spend(session.subject, decision.quota, now) or decision
            if decision.allowed:
                self._quota.note(session.inmate_number, host, decision.quota)
        return decision, session.inmate_number

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        flow.metadata[STARTED_KEY] = time.monotonic()
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        if handoff is None:
            flow.response = http.Response.make(403, b"gateway: request not handed off\n")
            return
        try:
            decision, actor = await self._decide(flow, handoff)
        except ControlUnavailable as exc:
            decision, actor = deny(ReasonCode.CONTROL_LOST, str(exc)), ""
        except Exception as exc:  # identity or policy broke: deny and record why (fail closed)
            log.exception("inspector: decision failed")
            decision, actor = deny(ReasonCode.GATEWAY_ERROR, f"decision failed: {exc.__class__.__name__}"), ""
        flow.metadata[ACTOR_KEY] = actor
        tag = Tag.GATEWAY_REQUEST_ALLOWED if decision.allowed else Tag.GATEWAY_REQUEST_DENIED
        try:
            await self._audit.write(self._event(flow, handoff, tag, decision.verdict, decision.explanation))
        except AuditUnavailable as exc:
            flow.response = http.Response.make(
                503, f"gateway: the audit log cannot record this request ({exc}); access is paused\n".encode(),
                {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "30"})
            return
        if not decision.allowed:
            flow.metadata["gatehouse.denied"] = True
            page = BlockPage(flow.request.pretty_url, _shown(decision), self._portal_url, handoff.language,
                             needs_login=decision.reasons[0].code in (ReasonCode.NO_SESSION,),
                             closed=decision.reasons[0].code is ReasonCode.TERMINAL_CLOSED,
                             used_up=decision.reasons[0].code is ReasonCode.QUOTA_EXHAUSTED,
                             opens_at=decision.opens_at)
            flow.response = http.Response.make(403, page.render(), HEADERS)

    def _event(self, flow: http.HTTPFlow, handoff: Handoff, tag: Tag, decision: str, reason: str,
               status: int | None = None) -> AuditEvent:
        started = flow.metadata.get(STARTED_KEY)
        duration = int((time.monotonic() - started) * 1000) if started and status is not None else None
        up = len(flow.request.raw_content or b"") if status is not None else None
        down = len(flow.response.raw_content or b"") if status is not None and flow.response else None
        return AuditEvent(tag, "gateway", actor=flow.metadata.get(ACTOR_KEY, ""), terminal=handoff.terminal,
                          client_addr=handoff.client,
                          method=flow.request.method, host=flow.request.pretty_host, path=flow.request.path,
                          decision=decision, reason=reason, status=status, bytes_up=up, bytes_down=down,
                          duration_ms=duration)

    async def _redirect_refusal(self, flow: http.HTTPFlow, handoff: Handoff) -> Decision | None:
        """A redirect to a place the inmate may not go is answered with the block page, saying where from."""
        assert flow.response is not None
        location = flow.response.headers.get("location", "")
        if not 300 <= flow.response.status_code < 400 or not location:
            return None
        target = urljoin(flow.request.pretty_url, location)
        identity = await self._identity.resolve(handoff.client)
        if identity.session is None:
            return deny(ReasonCode.NO_SESSION, "nobody is logged in at this terminal")
        try:
            scheme, facts = parse_url(target, "GET")
        except InvalidInput:
            return deny(ReasonCode.BAD_HOST, f"{flow.request.pretty_host} redirects to something not a web page")
        decision = decide_url(scheme, facts, identity.session.subject, self._policy(), now=self._clock()).final
        if decision.allowed:
            return None
        reason = decision.reasons[0]
        return deny(reason.code, f"{flow.request.pretty_host} sent you on to {target}: {reason.detail}", reason.rule_id)

    async def response(self, flow: http.HTTPFlow) -> None:
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        if handoff is None or flow.metadata.get("gatehouse.denied") or flow.response is None:
            return
        refusal = await self._redirect_refusal(flow, handoff)
        if refusal is not None:
            flow.metadata["gatehouse.denied"] = True
            try:
                await self._audit.write(self._event(flow, handoff, Tag.GATEWAY_REQUEST_DENIED, "deny",
                                                    refusal.explanation))
            except AuditUnavailable:
                log.error("inspector: redirect refusal record lost for %s", flow.request.pretty_url)
            page = BlockPage(urljoin(flow.request.pretty_url, flow.response.headers["location"]), _shown(refusal),
                             self._portal_url, handoff.language)
            flow.response = http.Response.make(403, page.render(), HEADERS)
            return
        try:
            await self._audit.write(self._event(flow, handoff, Tag.GATEWAY_RESPONSE_DONE, "allow", "",
                                                flow.response.status_code))
        except AuditUnavailable:
            log.error("inspector: closing record lost for %s", flow.request.pretty_url)

    async def error(self, flow: http.HTTPFlow) -> None:
        handoff: Handoff | None = flow.metadata.get(METADATA_KEY)
        if handoff is None or flow.error is None:
            return
        try:
            await self._audit.write(self._event(flow, handoff, Tag.GATEWAY_ERROR, "error", flow.error.msg, 502))
        except AuditUnavailable:
            log.error("inspector: error record lost for %s", flow.request.pretty_url)


def _refused(handoff: Handoff) -> Decision:
    """The front's refusal of the tunnel, as it was decided (with when it lifts, for the block page)."""
    reason = Reason(ReasonCode(handoff.code or ReasonCode.NO_MATCH), handoff.why, handoff.rule)
    return Decision(Verdict.DENY, (reason,), opens_at=datetime.fromisoformat(handoff.opens) if handoff.opens else None)


def _shown(decision: Decision) -> str:
    """The reason as a person reads it: what happened and which rule, without internal codes."""
    reason = decision.reasons[0]
    return f"{reason.detail} (rule {reason.rule_id})" if reason.rule_id else reason.detail
