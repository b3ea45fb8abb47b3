"""Administration screens: staff accounts, terminals, inmates (with roster import), facility and units."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
