"""The front's own HTTP/1.1 engine: inspected tunnels and plain-HTTP requests, without the mitmproxy layers.

h11 parses and frames both sides (never hand-written parsing); TLS toward the terminal is terminated with a
certificate for the tunnel's host signed by the facility CA; upstream connections are verified, pinned to the
checked address and kept alive for the client connection they serve (never shared between connections, so
never between inmates). Every request passes `gateway.checks` before a byte of it goes upstream. Bodies are
streamed both ways; the last piece of a response is held back until its closing record is written.

Clients that offer HTTP/2 are carried by the mitmproxy inspector instead (see `gateway.front`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import certifi
import h11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

from gatehouse.audit import AuditEvent, AuditSink, AuditUnavailable, Tag
from gatehouse.ca import BASENAME
from gatehouse.settings import ResolveTable
from gateway.checks import Asked, Refusal, RequestChecks
from gateway.handoff import HEADER, Handoff
from gateway.http1 import MAX_HEAD, response_bytes
from gateway.upstream import UpstreamRefused, upstream_address
from policies.decision import ReasonCode
from policies.hosts import HostError, is_ip_literal, split_authority
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 10.0
MAX_UPSTREAM_HEAD = 64 * 1024
UPSTREAMS_PER_CLIENT = 8
CONTEXTS_KEPT = 2000
HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate",
                 b"te", b"trailer", b"upgrade", b"expect", HEADER.encode()})
"""Headers that belong to one hop (RFC 9110 7.6.1), and the hand-off header no client may send on."""
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


class Side(Protocol):
    """The client's connection as the engine uses it: plain or TLS."""

    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...


class PlainSide:
    def __init__(self, reader: Any, writer: Any) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        data: bytes = await self._reader.read(CHUNK)
        return data

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()


class TlsSide:
    """TLS toward the terminal over the connection the front already holds, whose ClientHello the front has
    read (to choose the engine): the TLS object is fed by hand from a reader that gives that hello first."""

    def __init__(self, context: ssl.SSLContext, reader: Any, writer: Any) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not await self._fill():
                    raise ConnectionError("the client closed during the TLS handshake") from None
        self._flush()

    async def read(self) -> bytes:
        while True:
            try:
                return self._tls.read(CHUNK)
            except ssl.SSLWantReadError:
                self._flush()
                if not await self._fill():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    async def _fill(self) -> bool:
        data = await self._reader.read(CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _flush(self) -> None:
        if pending := self._outgoing.read():
            self._writer.write(pending)


class LeafCerts:
    """Server contexts for inspected hosts, each with a certificate signed by the facility CA (made by
    mitmproxy's certificate store, so both engines present the same kind of certificate); the most recently
    used are kept."""

    def __init__(self, ca_dir: Path) -> None:
        self._store = CertStore.from_store(ca_dir, BASENAME, 2048)
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()

    def context(self, host: str) -> ssl.SSLContext:
        if (known := self._contexts.get(host)) is not None:
            self._contexts.move_to_end(host)
            return known
        literal = is_ip_literal(host)
        name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host)) if literal else x509.DNSName(host)
        entry = self._store.get_cert(None if literal else host, [name], "Gatehouse")
        key = entry.privatekey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        pem = entry.cert.to_pem() + b"".join(c.to_pem() for c in entry.chain_certs) + key
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        with tempfile.NamedTemporaryFile(suffix=".pem") as file:  # the ssl module loads keys from files only
            file.write(pem)
            file.flush()
            context.load_cert_chain(file.name)
        self._contexts[host] = context
        while len(self._contexts) > CONTEXTS_KEPT:
            self._contexts.popitem(last=False)
        return context


def upstream_context(extra_ca_file: str = "") -> ssl.SSLContext:
    """Verification of upstream servers: the public roots mitmproxy trusts, and the setting's extra bundle."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Upstream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_UPSTREAM_HEAD)

    @property
    def reusable(self) -> bool:
        return (self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE
                and not self.reader.at_eof() and not self.writer.transport.is_closing())

    def send(self, event: h11.Event) -> None:
        if data := self.conn.send(event):
            self.writer.write(data)

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(CHUNK))

    def close(self) -> None:
        self.writer.transport.abort()


class UpstreamFailed(Exception):
    """The request could not be carried to the origin or its answer back; the message says why."""


class Http1Engine:
    def __init__(self, *, checks: RequestChecks, certs: LeafCerts, audit: AuditSink, policy: Callable[[], Snapshot],
                 resolve: ResolveTable, upstream_ca_file: str = "") -> None:
        self._checks = checks
        self._certs = certs
        self._audit = audit
        self._policy = policy
        self._resolve = resolve
        self._upstream_tls = upstream_context(upstream_ca_file)

    async def serve_tunnel(self, handoff: Handoff, reader: Any, writer: Any, refused: str | None) -> None:
        """An inspected CONNECT after the front answered 200 (`reader` gives the ClientHello first): TLS with a
        certificate for the tunnel's host, then each request decided. `refused`: why every request is denied."""
        side = TlsSide(self._certs.context(handoff.host), reader, writer)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await side.handshake()
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("front: TLS with %s for %s failed: %s", handoff.client, handoff.host, exc)
            return
        await self.serve(handoff, side, refused=refused)

    async def serve(self, handoff: Handoff, side: Side, *, refused: str | None = None) -> None:
        """Requests on one client connection, one after another, until either end closes it."""
        client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        upstreams: OrderedDict[tuple[str, int], Upstream] = OrderedDict()
        try:
            while True:
                try:
                    event = await _next(client, side)
                except h11.RemoteProtocolError as exc:
                    await self._malformed(handoff, side, exc.error_status_hint, f"malformed request: {exc}")
                    return
                if not isinstance(event, h11.Request):
                    return
                framing = {k for k, _ in event.headers if k in (b"content-length", b"transfer-encoding")}
                if len(framing) == 2:  # h11 would let Transfer-Encoding win; a smuggling attempt is refused
                    await self._malformed(handoff, side, 400, "malformed request: both Content-Length and "
                                          "Transfer-Encoding frame the body")
                    return
                if not await self._exchange(handoff, side, client, event, upstreams, refused):
                    return
                if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                    return
                client.start_next_cycle()
        except h11.RemoteProtocolError as exc:  # a broken body: nothing more is read from this client
            log.info("front: %s sent a malformed body: %s", handoff.client, exc)
        finally:
            for upstream in upstreams.values():
                upstream.close()

    async def _malformed(self, handoff: Handoff, side: Side, status: int, detail: str) -> None:
        event = AuditEvent(Tag.GATEWAY_REQUEST_DENIED, "gateway", actor=handoff.inmate, terminal=handoff.terminal,
                           client_addr=handoff.client, host=handoff.host, decision="deny",
                           reason=f"{ReasonCode.BAD_REQUEST}: {detail}", status=status)
        try:
            await self._audit.write(event)
        except AuditUnavailable:
            log.error("front: record of a malformed request from %s lost", handoff.client)
        side.write(response_bytes(status, f"gateway: {detail}\n".encode(), _TEXT))
        await side.drain()

    @staticmethod
    def _asked(handoff: Handoff, request: h11.Request) -> tuple[Asked, str | None, str]:
        """What the request asks for, why it must be refused whatever the policy says (or None), and for a
        plain-HTTP request the URL's authority."""
        method = request.method.decode("ascii")
        target = request.target.decode("ascii", "replace")
        host_header = next((v.decode("latin-1") for k, v in request.headers if k == b"host"), None)
        websocket = any(k == b"upgrade" and v.lower() == b"websocket" for k, v in request.headers)
        if handoff.host:  # inside a tunnel: origin-form only
            url = f"https://{host_header or handoff.host}{target}"
            problem = None if target.startswith("/") else f"a request in a tunnel must be origin-form, not {target!r}"
            return Asked(method, handoff.host, handoff.port, target, host_header, url, websocket), problem, ""
        if not target[:7].lower() == "http://":
            return Asked(method, "", 80, target, host_header, target, websocket), \
                f"a plain-HTTP request must name an http:// URL, not {target[:80]!r}", ""
        rest = target[7:]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:] or "/"
        if not path.startswith("/"):
            path = "/" + path
        try:
            host, port = split_authority(authority, 80)
        except HostError as exc:
            return Asked(method, authority.lower(), 80, path, host_header, target, websocket), str(exc), ""
        return Asked(method, host, port, path, host_header, f"http://{authority}{path}", websocket), None, authority

    async def _exchange(self, handoff: Handoff, side: Side, client: h11.Connection, request: h11.Request,
                        upstreams: OrderedDict[tuple[str, int], Upstream], refused: str | None) -> bool:
        """One request and its answer; False when the client connection must close after it."""
        asked, problem, authority = self._asked(handoff, request)
        refusal = await self._checks.admit(handoff, asked, problem or refused)
        if refusal is not None:
            _answer(client, side, refusal)
            _skip_body(client)
            await side.drain()
            return True
        if client.they_are_waiting_for_100_continue:
            side.write(client.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        up_bytes = 0
        upstream: Upstream | None = None
        try:
            upstream = await self._upstream(asked, upstreams, tls=bool(handoff.host))
            upstream.send(h11.Request(method=request.method, target=asked.path.encode("ascii", "replace"),
                                      headers=_forwarded(request, asked, authority)))
            while True:
                event = await _next(client, side)
                if isinstance(event, h11.Data):
                    up_bytes += len(event.data)
                    upstream.send(event)
                    await upstream.writer.drain()
                elif isinstance(event, h11.EndOfMessage):
                    upstream.send(h11.EndOfMessage())
                    break
                else:
                    return False  # the client went in the middle of its request
            response = await self._response(upstream, asked)
        except (UpstreamFailed, UpstreamRefused, OSError, TimeoutError, h11.ProtocolError, ssl.SSLError) as exc:
            if upstream is not None:
                _drop(upstreams, upstream)
            reason = str(exc) or exc.__class__.__name__
            await self._checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", reason, 502, up_bytes)
            if client.our_state is h11.SEND_RESPONSE:
                _answer(client, side, Refusal(502, f"gateway: {reason}\n".encode(), _TEXT))
                _skip_body(client)
            return client.their_state is h11.DONE
        location = next((v.decode("latin-1") for k, v in response.headers if k == b"location"), "")
        if response.status_code != 101 and (refusal := await self._checks.answered(
                handoff, asked, response.status_code, location)) is not None:
            _drop(upstreams, upstream)
            _answer(client, side, refusal)
            return True
        if response.status_code == 101:
            return await self._switch(handoff, side, client, response, upstream, upstreams, asked)
        side.write(client.send(h11.Response(status_code=response.status_code, reason=response.reason,
                                           headers=_cleaned(response.headers))) or b"")
        down = 0
        held = b""
        try:
            while True:
                event = await upstream.next_event()
                if isinstance(event, h11.Data):
                    if held:
                        side.write(client.send(h11.Data(data=held)) or b"")
                        await side.drain()
                    held = bytes(event.data)
                    down += len(held)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise UpstreamFailed(f"{asked.host} closed in the middle of its answer")
        except (UpstreamFailed, OSError, h11.ProtocolError, ssl.SSLError) as exc:
            _drop(upstreams, upstream)
            await self._checks.close(handoff, asked, Tag.GATEWAY_ERROR, "error", str(exc) or "upstream failed", 502,
                                     up_bytes, down)
            return False
        await self._checks.close(handoff, asked, Tag.GATEWAY_RESPONSE_DONE, "allow", "", response.status_code,
                                 up_bytes, down)
        tail = (client.send(h11.Data(data=held)) or b"") if held else b""
        side.write(tail + (client.send(h11.EndOfMessage()) or b""))
        await side.drain()
        if upstream.conn.our_state is h11.DONE and upstream.conn.their_state is h11.DONE:
            upstream.conn.start_next_cycle()
        if not upstream.reusable:
            _drop(upstreams, upstream)
        return True

    async def _upstream(self, asked: Asked, upstreams: OrderedDict[tuple[str, int], Upstream], *,
                        tls: bool) -> Upstream:
        key = (asked.host, asked.port)
        known = upstreams.get(key)
        if known is not None and known.reusable:
            upstreams.move_to_end(key)
            return known
        if known is not None:
            _drop(upstreams, known)
        address = await upstream_address(asked.host, asked.port, self._resolve, self._policy())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(
                    *address, ssl=self._upstream_tls if tls else None, server_hostname=asked.host if tls else None,
                    limit=CHUNK)
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamFailed(f"the certificate of {asked.host} does not verify: {exc.verify_message}") from None
        except TimeoutError:
            raise UpstreamFailed(f"{asked.host} did not answer within {CONNECT_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise UpstreamFailed(f"cannot reach {asked.host} ({address[0]}): {exc.strerror or exc}") from None
        upstream = Upstream(reader, writer)
        upstreams[key] = upstream
        while len(upstreams) > UPSTREAMS_PER_CLIENT:
            upstreams.popitem(last=False)[1].close()
        return upstream

    @staticmethod
    async def _response(upstream: Upstream, asked: Asked) -> Any:
        """The final response head (interim 1xx answers other than a switch are not passed on)."""
        while True:
            event = await upstream.next_event()
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101 and asked.websocket:
                    return event
                continue
            raise UpstreamFailed(f"{asked.host} closed the connection without answering")

    async def _switch(self, handoff: Handoff, side: Side, client: h11.Connection, response: Any, upstream: Upstream,
                      upstreams: OrderedDict[tuple[str, int], Upstream], asked: Asked) -> bool:
        """An allowed WebSocket: the switch is passed on, then bytes are relayed both ways until either ends."""
        upstreams.pop((asked.host, asked.port), None)
        headers = [(k, v) for k, v in response.headers if k not in HOP] + [(b"connection", b"Upgrade"),
                                                                              (b"upgrade", b"websocket")]
        side.write(client.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                         reason=response.reason)) or b"")
        await self._checks.close(handoff, asked, Tag.GATEWAY_RESPONSE_DONE, "allow", "", 101, 0, 0)
        try:
            if early := client.trailing_data[0]:
                upstream.writer.write(bytes(early))
            if late := upstream.conn.trailing_data[0]:
                side.write(bytes(late))

            async def up() -> None:
                while data := await side.read():
                    upstream.writer.write(data)
                    await upstream.writer.drain()

            async def down() -> None:
                while data := await upstream.reader.read(CHUNK):
                    side.write(data)
                    await side.drain()

            tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
        finally:
            upstream.close()
        return False


async def _next(conn: h11.Connection, side: Side) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await side.read())


def _answer(client: h11.Connection, side: Side, refusal: Refusal) -> None:
    headers = [(k.encode(), v.encode()) for k, v in refusal.headers.items()]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    side.write((client.send(h11.Response(status_code=refusal.status, headers=headers)) or b"")
               + (client.send(h11.Data(data=refusal.body)) or b"") + (client.send(h11.EndOfMessage()) or b""))


def _skip_body(client: h11.Connection) -> None:
    """After an answer given without the request's body: take what of it is already here; if more would have
    to be read, h11 leaves the connection not DONE and it closes."""
    while isinstance(event := client.next_event(), h11.Data):
        pass
    del event


def _drop(upstreams: OrderedDict[tuple[str, int], Upstream], upstream: Upstream) -> None:
    for key, known in list(upstreams.items()):
        if known is upstream:
            del upstreams[key]
    upstream.close()


def _cleaned(headers: Any) -> list[tuple[bytes, bytes]]:
    """Headers without the hop-by-hop ones, including those the Connection header names."""
    named = {token.strip().lower() for k, v in headers if k == b"connection" for token in v.split(b",")}
    return [(k, v) for k, v in headers.raw_items() if k.lower() not in HOP and k.lower() not in named]


def _forwarded(request: h11.Request, asked: Asked, authority: str) -> list[tuple[bytes, bytes]]:
    """The request's headers as they go upstream. A plain-HTTP request's Host is the URL's `authority` (RFC 9112
    3.2.2: a proxy replaces it), so the origin is asked for the host that was decided on; in a tunnel
    (`authority` empty) the Host the checks compared with the tunnel goes on as it is."""
    headers = _cleaned(request.headers)
    if authority:
        headers = [(b"Host", authority.encode("ascii"))] + [(k, v) for k, v in headers if k.lower() != b"host"]
    elif not any(k.lower() == b"host" for k, _ in headers):  # HTTP/1.0 may leave it out; HTTP/1.1 upstream needs it
        named = asked.host if asked.port == 443 else f"{asked.host}:{asked.port}"
        headers = [(b"Host", named.encode("ascii"))] + headers
    if asked.websocket:
        headers += [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    return headers
