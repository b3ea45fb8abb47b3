"""Curation screens for staff: the queue of requests, proposals, four-eyes approval, the rules in force."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
