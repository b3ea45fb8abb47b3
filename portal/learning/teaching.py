"""Education staff's screens: courses (import, authoring, publishing), enrolments and requests, reports."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
