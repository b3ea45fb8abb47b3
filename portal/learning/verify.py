"""The public check of a certificate: anyone (an employer, a probation officer) can verify one offline."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
