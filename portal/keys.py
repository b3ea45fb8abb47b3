"""Typed application keys: the portal's shared state."""

from aiohttp import web

from gatehouse.kernel import Kernel

KERNEL = web.AppKey("kernel", Kernel)
