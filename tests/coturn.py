"""A private coturn for tests, and a tiny TURN client that speaks to it exactly (RFC 5389 STUN, RFC 5766 TURN).

The client does what a browser does before any media flow: Allocate, take the 401 challenge's REALM and NONCE,
and ask again signed with the long-term key MD5(username:realm:password) (RFC 5389 section 15.4). It returns
the response's code (200 for success, else the ERROR-CODE) so that a test can tell "refused" from "down".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from tests.helpers import free_port

Transport = Literal["tcp", "udp"]

MAGIC_COOKIE = 0x2112A442
BINDING, ALLOCATE, REFRESH = 0x001, 0x003, 0x004
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, LIFETIME = 0x0006, 0x0008, 0x0009, 0x000D
REALM, NONCE, REQUESTED_TRANSPORT = 0x0014, 0x0015, 0x0019
UDP_PROTOCOL = 17
SUCCESS = 200
REALM_NAME = "gatehouse.test"


class Relay(NamedTuple):
    host: str
    port: int
    secret: bytes


@dataclass(frozen=True)
class Response:
    """A STUN response: `code` is 200 for a success response, else the ERROR-CODE (class * 100 + number)."""

    code: int
    attributes: dict[int, bytes]
    raw: bytes

    @property
    def lifetime(self) -> int | None:
        value = self.attributes.get(LIFETIME)
        return None if value is None else int(struct.unpack("!I", value)[0])


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def encode(method: int, tid: bytes, attributes: list[tuple[int, bytes]], key: bytes | None) -> bytes:
    """A request; with `key`, MESSAGE-INTEGRITY over everything before it, the length counting it (15.4)."""
    body = b"".join(_attribute(kind, value) for kind, value in attributes)
    if key is not None:
        head = struct.pack("!HHI12s", method, len(body) + 24, MAGIC_COOKIE, tid)
        body += _attribute(MESSAGE_INTEGRITY, hmac.new(key, head + body, hashlib.sha1).digest())
    return struct.pack("!HHI12s", method, len(body), MAGIC_COOKIE, tid) + body


def decode(data: bytes, key: bytes | None = None) -> Response:
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC_COOKIE or len(data) != 20 + length:
        raise ValueError("not a STUN message")
    attributes: dict[int, bytes] = {}
    offset = 20
    while offset < len(data):
        attr, size = struct.unpack("!HH", data[offset:offset + 4])
        if attr == MESSAGE_INTEGRITY and key is not None:
            head = data[:2] + struct.pack("!H", offset + 24 - 20) + data[4:offset]
            expected = hmac.new(key, head, hashlib.sha1).digest()
            if not hmac.compare_digest(expected, data[offset + 4:offset + 24]):
                raise ValueError("the relay's MESSAGE-INTEGRITY does not match our key")
        attributes.setdefault(attr, data[offset + 4:offset + 4 + size])
        offset += 4 + size + (-size % 4)
    if kind & 0x0110 == 0x0100:
        return Response(SUCCESS, attributes, data)
    if kind & 0x0110 == 0x0110:
        error = attributes.get(ERROR_CODE, b"\0\0\0\0")
        return Response((error[2] & 0x7) * 100 + error[3], attributes, data)
    raise ValueError(f"not a response: type {kind:#06x}")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.queue.put_nowait(data)


@dataclass
class TurnClient:
    """One client 5-tuple to the relay (a TCP connection or a UDP socket); an allocation lives on it."""

    host: str
    port: int
    transport: Transport = "tcp"
    timeout_s: float = 3.0
    _stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    _udp: tuple[asyncio.DatagramTransport, _Datagrams] | None = None
    _auth: tuple[bytes, bytes, bytes] | None = field(default=None, repr=False)  # username, realm, key
    _nonce: bytes = b""

    async def __aenter__(self) -> TurnClient:
        if self.transport == "tcp":
            self._stream = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
        else:
            loop = asyncio.get_running_loop()
            self._udp = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(self.host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream[1].close()
            with contextlib.suppress(ConnectionError):
                await self._stream[1].wait_closed()
        if self._udp is not None:
            self._udp[0].close()

    async def request(self, method: int, attributes: list[tuple[int, bytes]], key: bytes | None = None) -> Response:
        tid = secrets.token_bytes(12)
        message = encode(method, tid, attributes, key)
        async with asyncio.timeout(self.timeout_s):
            if self._stream is not None:
                reader, writer = self._stream
                writer.write(message)
                await writer.drain()
                while True:
                    head = await reader.readexactly(20)
                    data = head + await reader.readexactly(struct.unpack("!H", head[2:4])[0])
                    if data[8:20] == tid:
                        return decode(data, key)
            assert self._udp is not None, "use the client as an async context manager"
            sock, received = self._udp
            while True:  # UDP: retransmit until the answer to this transaction comes (RFC 5389 7.2.1)
                sock.sendto(message)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        while (data := await received.queue.get())[8:20] != tid:
                            pass
                        return decode(data, key)

    async def binding(self) -> Response:
        return await self.request(BINDING, [])

    async def allocate(self, username: str, password: str, *, lifetime: int | None = None) -> Response:
        """Allocate a UDP relay address, answering the 401 challenge with the long-term credentials."""
        wanted = [(REQUESTED_TRANSPORT, bytes([UDP_PROTOCOL, 0, 0, 0]))]
        if lifetime is not None:
            wanted.append((LIFETIME, struct.pack("!I", lifetime)))
        challenge = await self.request(ALLOCATE, wanted)
        if challenge.code != 401:
            return challenge
        realm = challenge.attributes[REALM]
        key = hashlib.md5(username.encode() + b":" + realm + b":" + password.encode()).digest()
        self._auth, self._nonce = (username.encode(), realm, key), challenge.attributes[NONCE]
        return await self._signed(ALLOCATE, wanted)

    async def refresh(self, lifetime: int = 600) -> Response:
        """Refresh the allocation made by `allocate` (RFC 5766 section 7); lifetime 0 deletes it."""
        return await self._signed(REFRESH, [(LIFETIME, struct.pack("!I", lifetime))])

    async def _signed(self, method: int, attributes: list[tuple[int, bytes]]) -> Response:
        assert self._auth is not None, "allocate first"
        username, realm, key = self._auth
        for _ in range(2):  # one retry on 438 Stale Nonce, with the fresh nonce (RFC 5389 10.2.2)
            signed = [(USERNAME, username), (REALM, realm), (NONCE, self._nonce), *attributes]
            response = await self.request(method, signed, key)
            if response.code != 438 or NONCE not in response.attributes:
                return response
            self._nonce = response.attributes[NONCE]
        return response


async def allocate(host: str, port: int, username: str, password: str, *, transport: Transport = "tcp") -> int:
    """The code of an Allocate with these credentials: 200 when the relay grants it, 401/438/... when not."""
    async with TurnClient(host, port, transport) as client:
        return (await client.allocate(username, password)).code


@contextlib.asynccontextmanager
async def coturn(*, realm: str = REALM_NAME, options: tuple[str, ...] = ()) -> AsyncIterator[Relay]:
    """Debian's turnserver on a free loopback port, in the TURN REST scheme, with no system configuration."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("turnserver (coturn) is not installed")
    port, secret = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="gatehouse-coturn-") as scratch:
        log = Path(scratch) / "turnserver.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                binary, "-n",  # -n: no configuration file, the command line only
                "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
                "--use-auth-secret", f"--static-auth-secret={secret}", f"--realm={realm}",
                "--no-tls", "--no-dtls", "--allow-loopback-peers", "--no-cli", "--fingerprint",
                "--log-file=stdout", "--simple-log", f"--pidfile={scratch}/turnserver.pid",
                f"--userdb={scratch}/turndb", "--relay-threads=1", *options,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ))
        try:
            await _wait_until_it_answers(process, port, log)
            yield Relay("127.0.0.1", port, secret.encode())
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_until_it_answers(process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    """Until a STUN Binding is answered over both TCP and UDP (the listeners start in their own threads)."""
    for _ in range(100):
        if process.returncode is not None:
            break
        try:
            for transport in ("tcp", "udp"):
                async with TurnClient("127.0.0.1", port, transport, timeout_s=0.5) as client:
                    await client.binding()
            return
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"turnserver did not answer on 127.0.0.1:{port} (exit {process.returncode}):\n{tail}")
