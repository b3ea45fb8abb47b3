"""The learner's screens: catalogue, my learning, a course, its lessons and quizzes, certificates."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
