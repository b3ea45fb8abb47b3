"""Reading one request head and writing short responses, with h11 doing all parsing and framing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

import h11

from gateway.framing import MAX_HEAD, head_problem, pending_head_problem

HEAD_TIMEOUT_S = 30.0
"""How long a request head may take to arrive once its first byte has."""
IDLE_TIMEOUT_S = 60.0
"""How long a connection may wait for its next request with nothing sent (nginx keeps 75 s)."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Head:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    rest: bytes
    raw: bytes = b""
    """The head's bytes as the client sent them (h11 parsed them and `gateway.framing` found nothing wrong)."""

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def serialize(self, extra: list[tuple[bytes, bytes]], drop: frozenset[bytes] = frozenset()) -> bytes:
        """The head again (h11 checked it), with headers in `drop` removed and `extra` added."""
        conn = h11.Connection(h11.CLIENT)
        headers = [(k, v) for k, v in self.headers if k.lower() not in drop] + extra
        if self.http_version != b"1.1":  # h11 writes only HTTP/1.1; these are the fields it parsed, and `extra`
            line = f"{self.method} {self.target} HTTP/{self.http_version.decode()}".encode()
            return b"\r\n".join([line, *(k + b": " + v for k, v in headers)]) + b"\r\n\r\n"
        return _sent(conn, h11.Request(method=self.method, target=self.target, headers=headers,
                                       http_version=self.http_version.decode()))


async def read_head(reader: asyncio.StreamReader, timeout: float = HEAD_TIMEOUT_S) -> Head | None:
    """The first request head on a connection; None when the client closed, or sent nothing within `timeout`,
    before sending one. The raw bytes are checked before h11 parses them, however they were segmented."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    received = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while True:
                if (problem := pending_head_problem(received)) is not None:
                    raise BadRequest(*problem)
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise BadRequest(exc.error_status_hint, f"malformed request: {exc}") from None
                if isinstance(event, h11.Request):
                    if (problem := head_problem(event.method, event.headers.raw_items())) is not None:
                        raise BadRequest(*problem)
                    rest = bytes(conn.trailing_data[0])
                    return Head(event.method.decode("ascii"), event.target.decode("ascii", "replace"),
                                list(event.headers.raw_items()), event.http_version, rest,
                                bytes(received[:len(received) - len(rest)]))
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                            return None
                        raise BadRequest(400, "connection closed in the middle of the request head")
                    received += data
                    conn.receive_data(data)
                else:
                    raise BadRequest(400, f"unexpected {type(event).__name__}")
    except TimeoutError:
        if not received:
            return None
        raise BadRequest(408, f"no complete request head within {timeout:g} s") from None


def response_bytes(status: int, body: bytes, headers: dict[str, str] | None = None,
                   reason: bytes = b"") -> bytes:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
    conn.next_event()
    head = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    head += [(b"Content-Length", str(len(body)).encode()), (b"Connection", b"close")]
    phrase = reason or HTTPStatus(status).phrase.encode()
    return (_sent(conn, h11.Response(status_code=status, headers=head, reason=phrase))
            + _sent(conn, h11.Data(data=body)) + _sent(conn, h11.EndOfMessage()))


def _sent(conn: h11.Connection, event: h11.Event) -> bytes:
    data = conn.send(event)
    if data is None:  # only for ConnectionClosed, which is never sent here
        raise ValueError("h11 produced no bytes")
    return data


CONNECT_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"
