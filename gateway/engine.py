"""The front's own engine for inspected tunnels and plain-HTTP requests, without the mitmproxy layers.

TLS toward the terminal is terminated with a certificate for the tunnel's host signed by the facility CA;
HTTP/1.1 is parsed and framed by h11 and HTTP/2 by h2 (never hand-written parsing; see `gateway.engine_h2`).
Every request passes `gateway.checks` before a byte of it goes upstream, and `gateway.carry` takes it there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import h11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

from gatehouse.ca import BASENAME
from gateway.carry import CHUNK, HOP, Carrier, ClientGone, Pool, Upstream, cleaned
from gateway.checks import Asked, Refusal, overrides_in
from gateway.framing import MAX_HEAD, forwardable, head_problem, pending_head_problem
from gateway.handoff import Handoff
from gateway.http1 import HEAD_TIMEOUT_S, IDLE_TIMEOUT_S
from gateway.llhttp import SecondOpinion
from policies.hosts import HostError, is_ip_literal, split_authority

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 10.0
CONTEXTS_KEPT = 2000
LINGER_S = 2.0
LINGER_BYTES = 1024 * 1024
"""After refusing a request not read to its end: how long, and how much more of it, is read before closing."""


class Side(Protocol):
    """The client's connection as the engine uses it: plain or TLS."""

    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close_write(self) -> None: ...


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

    def close_write(self) -> None:
        if self._writer.can_write_eof():
            self._writer.write_eof()


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

    def close_write(self) -> None:
        """close_notify, then the end of the TCP stream; reading goes on (TLS 1.3 allows a half-close)."""
        try:
            self._tls.unwrap()
        except ssl.SSLError:  # SSLWantReadError: the client's close_notify has not come, which is not awaited
            pass
        self._flush()
        if self._writer.can_write_eof():
            self._writer.write_eof()

    @property
    def protocol(self) -> str:
        """The application protocol agreed in the handshake (ALPN): "h2" or "http/1.1"."""
        return self._tls.selected_alpn_protocol() or "http/1.1"

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
    used are kept. `h2`: the context also offers HTTP/2 (to a client that offers it)."""

    def __init__(self, ca_dir: Path) -> None:
        self._store = CertStore.from_store(ca_dir, BASENAME, 2048)
        self._pems: OrderedDict[str, bytes] = OrderedDict()
        self._contexts: OrderedDict[tuple[str, bool], ssl.SSLContext] = OrderedDict()

    def context(self, host: str, *, h2: bool = False) -> ssl.SSLContext:
        if (known := self._contexts.get((host, h2))) is not None:
            self._contexts.move_to_end((host, h2))
            return known
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2", "http/1.1"] if h2 else ["http/1.1"])
        with tempfile.NamedTemporaryFile(suffix=".pem") as file:  # the ssl module loads keys from files only
            file.write(self._pem(host))
            file.flush()
            context.load_cert_chain(file.name)
        self._contexts[(host, h2)] = context
        while len(self._contexts) > CONTEXTS_KEPT:
            self._contexts.popitem(last=False)
        return context

    def _pem(self, host: str) -> bytes:
        if (known := self._pems.get(host)) is not None:
            return known
        literal = is_ip_literal(host)
        name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host)) if literal else x509.DNSName(host)
        entry = self._store.get_cert(None if literal else host, [name], "Gatehouse")
        key = entry.privatekey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        pem = entry.cert.to_pem() + b"".join(c.to_pem() for c in entry.chain_certs) + key
        self._pems[host] = pem
        while len(self._pems) > CONTEXTS_KEPT:
            self._pems.popitem(last=False)
        return pem


class Unframed(Exception):
    """A request head refused for its framing before h11 parsed it, or one that did not come in time."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Engine:
    def __init__(self, *, carrier: Carrier, certs: LeafCerts, head_timeout: float = HEAD_TIMEOUT_S,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self._carrier = carrier
        self._certs = certs
        self.head_timeout = head_timeout
        """How long a request head may take once its first byte has come (HTTP/1.1; a partial HTTP/2 frame)."""
        self.idle_timeout = idle_timeout
        """How long a connection may stay with no request at all (before its first one, and between them)."""

    async def serve_tunnel(self, handoff: Handoff, reader: Any, writer: Any, *, refused: str | None,
                           h2: bool) -> None:
        """An inspected CONNECT after the front answered 200 (`reader` gives the ClientHello first): TLS with a
        certificate for the tunnel's host, then each request decided. `refused`: why every request is denied;
        `h2`: the client offers HTTP/2."""
        side = TlsSide(self._certs.context(handoff.host, h2=h2), reader, writer)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await side.handshake()
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("front: TLS with %s for %s failed: %s", handoff.client, handoff.host, exc)
            return
        if side.protocol == "h2":
            from gateway.engine_h2 import H2Server

            await H2Server(self._carrier, handoff, side, refused, head_timeout=self.head_timeout,
                           idle_timeout=self.idle_timeout).run()
        else:
            await self.serve(handoff, side, refused=refused)

    async def serve(self, handoff: Handoff, side: Side, *, refused: str | None = None) -> None:
        """HTTP/1.1 requests on one client connection, one after another, until either end closes it."""
        client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        opinion = SecondOpinion()
        pool = self._carrier.pool(tls=bool(handoff.host))
        malformed = self._carrier.checks.malformed
        try:
            while True:
                try:
                    event = await self._next_head(client, side, opinion)
                except h11.RemoteProtocolError as exc:
                    side.write(await malformed(handoff, exc.error_status_hint, f"malformed request: {exc}"))
                    await linger(side)
                    return
                except Unframed as exc:
                    side.write(await malformed(handoff, exc.status, str(exc)))
                    await linger(side)
                    return
                if not isinstance(event, h11.Request):
                    return
                problem = head_problem(event.method, event.headers.raw_items())
                framing = {k for k, _ in event.headers if k in (b"content-length", b"transfer-encoding")}
                if len(framing) == 2:  # h11 would let Transfer-Encoding win; a smuggling attempt is refused
                    problem = 400, "both Content-Length and Transfer-Encoding frame the body"
                if problem is not None:
                    side.write(await malformed(handoff, problem[0], f"malformed request: {problem[1]}"))
                    await linger(side)
                    return
                broken = await self._exchange(handoff, side, client, event, pool, refused, opinion)
                if broken is None and client.our_state is h11.DONE and client.their_state is h11.DONE:
                    broken = opinion.ended()  # a refused request's body, taken without being carried
                if broken is not None:
                    answer = await malformed(handoff, 400, f"malformed request body: {broken}")
                    if client.our_state is h11.SEND_RESPONSE:  # not answered yet: the body was being carried
                        side.write(answer)
                    await linger(side)
                    return
                if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                    return
                opinion.resume()
                client.start_next_cycle()
        except h11.RemoteProtocolError as exc:  # a broken body after the answer: nothing more is read
            log.info("front: %s sent a malformed body: %s", handoff.client, exc)
        finally:
            pool.close()

    async def _next_head(self, client: h11.Connection, side: Side, opinion: SecondOpinion) -> Any:
        """The next event while the connection waits for a request head (a Request, or ConnectionClosed; None
        when the connection stayed idle too long). What is buffered is checked before h11 parses it, so neither
        the bounds nor the line ends depend on how the client's writes were cut (h11 bounds only heads still
        incomplete, and takes a bare LF as a line end); llhttp's `opinion` is asked before a head is returned."""
        loop = asyncio.get_running_loop()
        deadline = None
        while True:
            buffered = client.trailing_data[0]
            if (problem := pending_head_problem(buffered)) is not None:
                raise Unframed(problem[0], f"malformed request: {problem[1]}")
            if (second := opinion.problem(waiting=True)) is not None:
                raise Unframed(400, f"malformed request: {second}")
            event = client.next_event()
            if isinstance(event, h11.Request) and (second := opinion.request(event.method, event.target)):
                raise Unframed(400, f"malformed request: {second}")
            if event is not h11.NEED_DATA:
                return event
            if deadline is None and buffered:
                deadline = loop.time() + self.head_timeout
            try:
                async with asyncio.timeout_at(deadline if deadline is not None else loop.time() + self.idle_timeout):
                    data = await side.read()
            except TimeoutError:
                if deadline is None:
                    return None  # idle: closed without a word, as a kept-alive connection may be
                raise Unframed(408, f"no complete request head within {self.head_timeout:g} s") from None
            opinion.feed(data)
            client.receive_data(data)

    async def _exchange(self, handoff: Handoff, side: Side, client: h11.Connection, request: h11.Request,
                        pool: Pool, refused: str | None, opinion: SecondOpinion) -> str | None:
        """One request and its answer; whether the connection goes on is in h11's states (both DONE after a
        clean exchange). Why the body broke its framing (it was not carried to its end), or None."""
        asked, problem, authority = _asked(handoff, request)
        asked.overrides = overrides_in(request.headers)
        asked.accept_language = next((v.decode("latin-1") for k, v in request.headers if k == b"accept-language"), "")
        reply = H1Reply(client, side)
        refusal = await self._carrier.checks.admit(handoff, asked, problem or refused)
        if refusal is not None:
            await reply.refuse(refusal)
            _skip_body(client)
            return None
        if client.they_are_waiting_for_100_continue:
            side.write(client.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")

        async def switch(upstream: Upstream, response: Any) -> None:
            await _relay(side, client, upstream, response)

        broken: list[str] = []
        await self._carrier.carry(handoff, asked, _forwarded(request, asked, authority),
                                  _body(client, side, opinion, broken), reply, pool,
                                  switch if asked.websocket else None)
        return broken[0] if broken else None


class H1Reply:
    def __init__(self, client: h11.Connection, side: Side) -> None:
        self._client = client
        self._side = side
        self.started = False

    def head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self._side.write(self._client.send(h11.Response(status_code=status, reason=reason, headers=headers)) or b"")

    async def data(self, chunk: bytes) -> None:
        self._side.write(self._client.send(h11.Data(data=chunk)) or b"")
        await self._side.drain()

    async def end(self, last: bytes) -> None:
        tail = (self._client.send(h11.Data(data=last)) or b"") if last else b""
        self._side.write(tail + (self._client.send(h11.EndOfMessage()) or b""))
        await self._side.drain()

    async def refuse(self, refusal: Refusal) -> None:
        headers = [(k.encode(), v.encode()) for k, v in refusal.headers.items()]
        self.head(refusal.status, b"", headers + [(b"content-length", str(len(refusal.body)).encode())])
        await self.end(refusal.body)

    def abort(self) -> None:
        """Nothing to do: the connection closes, which a client reads as a cut answer."""


async def linger(side: Side) -> None:
    """After the answer to a request whose rest is not read: stop writing, then read and drop what the client
    still sends, for a moment, before closing; closing with unread bytes would reset the connection and the
    client could lose the answer before reading it (nginx's lingering close)."""
    try:
        await side.drain()
        side.close_write()
        taken = 0
        async with asyncio.timeout(LINGER_S):
            while taken < LINGER_BYTES and (data := await side.read()):
                taken += len(data)
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass


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


async def _next(conn: h11.Connection, side: Side, opinion: SecondOpinion) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await side.read()
        opinion.feed(data)
        conn.receive_data(data)


async def _body(client: h11.Connection, side: Side, opinion: SecondOpinion, broken: list[str]
                ) -> AsyncIterator[bytes]:
    """The request body as h11 reads it; a piece goes upstream only once llhttp has found nothing wrong up to
    it, and the end only once llhttp ends the body there too. Why the framing broke is put in `broken`."""
    while True:
        try:
            event = await _next(client, side, opinion)
        except h11.RemoteProtocolError as exc:
            broken.append(str(exc))
            raise ClientGone(f"malformed body: {exc}") from None
        problem = opinion.ended() if isinstance(event, h11.EndOfMessage) else opinion.problem()
        if problem is not None:
            broken.append(problem)
            raise ClientGone(f"malformed body: {problem}")
        if isinstance(event, h11.Data):
            yield bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return
        else:
            raise ClientGone("the connection closed in the middle of the request")


def _skip_body(client: h11.Connection) -> None:
    """After an answer given without the request's body: take what of it is already here; if more would have
    to be read, h11 leaves the connection not DONE and it closes."""
    try:
        while isinstance(client.next_event(), h11.Data):
            pass
    except h11.RemoteProtocolError:
        pass


async def _relay(side: Side, client: h11.Connection, upstream: Upstream, response: Any) -> None:
    """An allowed WebSocket: the switch is passed on, then bytes are relayed both ways until either ends."""
    headers = [(k, v) for k, v in response.headers if k not in HOP] + [(b"connection", b"Upgrade"),
                                                                          (b"upgrade", b"websocket")]
    side.write(client.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                     reason=response.reason)) or b"")
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


def _forwarded(request: h11.Request, asked: Asked, authority: str) -> list[tuple[bytes, bytes]]:
    """The request's headers as they go upstream. A plain-HTTP request's Host is the URL's `authority` (RFC 9112
    3.2.2: a proxy replaces it), so the origin is asked for the host that was decided on; in a tunnel
    (`authority` empty) the Host the checks compared with the tunnel goes on as it is."""
    headers = [(k, v) for k, v in forwardable(cleaned(request.headers)) if k not in asked.strip]
    if authority:
        headers = [(b"host", authority.encode("ascii"))] + [(k, v) for k, v in headers if k != b"host"]
    elif not any(k == b"host" for k, _ in headers):  # HTTP/1.0 may leave it out; HTTP/1.1 upstream needs it
        named = asked.host if asked.port == 443 else f"{asked.host}:{asked.port}"
        headers = [(b"host", named.encode("ascii"))] + headers
    if asked.websocket:
        headers += [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]
    return headers
