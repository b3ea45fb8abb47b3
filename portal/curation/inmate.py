"""Curation screens for inmates: ask for a site, see what became of the requests."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
