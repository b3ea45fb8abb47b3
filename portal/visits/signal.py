"""The call's WebSocket: one socket per page, carrying JSON objects between the page and the hub.

The handler does the transport only (who the request is comes from `resolve`, what may be said from the hub):
no ticket, no upgrade; a refused join is told to the page by its code and closed with 4403 (the 4000-4999
range is the application's, RFC 6455 7.4.2, so a page tells "refused" from "connection lost"); a message that
is not one JSON object closes the socket with 1003, one over 64 KiB with 1009 (aiohttp's limit does that).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from gatehouse.visits.room import BadMessage, Hub, JoinRefused, Ticket

__all__ = ["HEARTBEAT_S", "HUB", "MAX_MESSAGE", "REFUSED_CLOSE", "closing_hub", "websocket_handler"]

HUB = web.AppKey("visits_hub", Hub)
MAX_MESSAGE = 64 * 1024
"""An SDP with many candidates is a few KiB; 64 KiB leaves room and bounds what one page can push at another."""
HEARTBEAT_S = 20.0
"""Pings find a page that vanished (a pulled cable) well before a visit's end, so its peers are told it left."""
CLOSE_TIMEOUT_S = 3.0
REFUSED_CLOSE = 4403

Resolver = Callable[[web.Request], Awaitable[Ticket | None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _same_origin(request: web.Request) -> bool:
    """A browser always sends Origin on a WebSocket; another site's page must not open one with our cookies
    (cross-site WebSocket hijacking). Clients without an Origin header are not browsers and need a ticket anyway."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def websocket_handler(hub: Hub, resolve: Resolver) -> Handler:
    """An aiohttp handler for a call's socket: `resolve` turns the request (its session, its visit) into the
    ticket of the one person it may be, or None (403, no upgrade)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            raise web.HTTPForbidden(text="This call's page is served by this site only.")
        ticket = await resolve(request)
        if ticket is None:
            raise web.HTTPForbidden(text="You are not a participant of this visit.")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)

        async def send(message: dict[str, Any]) -> None:
            if not ws.closed:
                await ws.send_json(message)

        async def close() -> None:
            await ws.close()

        try:
            member = await hub.join(ticket, send, close=close)
        except JoinRefused as refused:
            await ws.send_json({"type": "refused", "code": refused.code})
            await ws.close(code=REFUSED_CLOSE, message=refused.code.encode())
            return ws
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    await ws.close(code=1003, message=b"text frames only")
                    break
                try:
                    message = json.loads(frame.data)
                    if not isinstance(message, dict):
                        raise BadMessage("one JSON object per message")
                    await member.receive(message)
                except (ValueError, BadMessage) as bad:  # json.JSONDecodeError is a ValueError
                    code = bad.close_code if isinstance(bad, BadMessage) else 1003
                    await ws.close(code=code, message=str(bad)[:100].encode())
                    break
        finally:
            await member.leave()
        return ws

    return handler


async def closing_hub(app: web.Application) -> AsyncIterator[None]:
    """For `app.cleanup_ctx`: at shutdown every running call is ended (its pages are told) before the sockets
    are torn down. Register it on each application that shares the hub: closing twice is harmless."""
    yield
    await app[HUB].close()
