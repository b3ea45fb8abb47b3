"""Typed application keys: the portal's shared state."""

from aiohttp import web

from gatehouse.kernel import Kernel

KERNEL = web.AppKey("kernel", Kernel)
ACTOR = web.RequestKey("actor", str)
TERMINAL = web.RequestKey("terminal", str)
CSRF = web.RequestKey("csrf_token", str)
