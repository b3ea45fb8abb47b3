"""A second, strict parser beside h11 on every HTTP/1.1 client connection of the front's engine: llhttp (httptools).

h11 0.14, which mitmproxy 11.0 pins, drops the two bytes after each chunk without looking at them (CVE-2025-43859):
`5\\r\\nhelloXX0\\r\\n\\r\\n` is one body to it and may be two requests to an origin. llhttp, strict by default (Node's
parser), refuses that and much else h11 lets through. Each byte the client sends is fed to it as it is read; a
connection is refused when llhttp refuses its bytes, or when the two parsers do not see the same requests (the same
method and target, each ending where the other ends), before h11's reading reaches the message concerned.
"""

from __future__ import annotations

from collections import deque

import httptools


class SecondOpinion:
    """llhttp's reading of one client connection, asked at each step of h11's. The h11 steps are told by
    `request()` (a head parsed) and `ended()` (its body read); `problem()` says what llhttp found wrong up to the
    message h11 is reading, or None."""

    __slots__ = ("_parser", "_url", "_heads", "_begun", "_completed", "_error", "_paused", "_held", "requests")

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = bytearray()
        self._heads: deque[tuple[bytes, bytes]] = deque()
        """The heads llhttp has read that h11 has not yet (method, target)."""
        self._begun = 0
        self._completed = 0
        """Messages llhttp has begun, and ended."""
        self._error: tuple[int, str] | None = None
        """The message llhttp refused (counted from 0) and why."""
        self._paused = False
        self._held = bytearray()
        """After a CONNECT or an Upgrade llhttp stops: what came after it, read again if the protocol stays."""
        self.requests = 0
        """Request heads h11 has read."""

    def feed(self, data: bytes | bytearray) -> None:
        """Bytes as the client sent them (what h11 is given next)."""
        if self._error is not None or not data:
            return
        if self._paused:
            self._held += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._paused = True
            self._held += data[exc.args[0]:] if exc.args else b""
        except httptools.HttpParserError as exc:
            self._error = self._begun - 1 if self._begun > self._completed else self._completed, str(exc) or "?"

    def resume(self) -> None:
        """The request llhttp stopped at (a CONNECT, an Upgrade) was answered without switching protocols: what
        followed it is HTTP/1.1 again, for a new parser."""
        if not self._paused:
            return
        held, self._held, self._paused = bytes(self._held), bytearray(), False
        self._parser = httptools.HttpRequestParser(self)
        self.feed(held)

    def problem(self, *, waiting: bool = False) -> str | None:
        """Why the connection must be refused now: llhttp refused the message h11 is reading (`waiting`: the next
        head h11 waits for), or one before it."""
        if self._error is not None and self._error[0] < self.requests + waiting:
            return f"llhttp: {self._error[1]}"
        return None

    def request(self, method: bytes, target: bytes) -> str | None:
        """h11 has read a request head; why the connection must be refused, or None."""
        self.requests += 1
        if (problem := self.problem()) is not None:
            return problem
        if not self._heads:
            return "llhttp sees no request where h11 sees one (the two parsers frame the bytes differently)"
        theirs = self._heads.popleft()
        if theirs != (method, target):
            return (f"llhttp reads {theirs[0][:16]!r} {theirs[1][:60]!r} where h11 reads {method[:16]!r} "
                    f"{target[:60]!r} (the two parsers frame the bytes differently)")
        return None

    def ended(self) -> str | None:
        """h11 has read the body of its latest request to the end; why the connection must be refused, or None."""
        if (problem := self.problem()) is not None:
            return problem
        if self._completed < self.requests:
            return "llhttp reads the request body as longer than h11 does"
        return None

    # llhttp's callbacks (only these are defined: httptools calls none it is not given)

    def on_message_begin(self) -> None:
        self._begun += 1
        self._url.clear()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        self._heads.append((self._parser.get_method(), bytes(self._url)))

    def on_message_complete(self) -> None:
        self._completed += 1
