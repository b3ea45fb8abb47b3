"""Lessons read aloud: speech made on the server with espeak-ng in the lesson's language, cached."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
