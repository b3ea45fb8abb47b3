"""Typed application and request keys: the portal's shared state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gatehouse.kernel import Kernel
from gatehouse.staff import StaffSessionPolicy

if TYPE_CHECKING:
    from portal.access import Viewer

KERNEL = web.AppKey("kernel", Kernel)
STAFF_POLICY = web.AppKey("staff_policy", StaffSessionPolicy)
ACTOR = web.RequestKey("actor", str)
TERMINAL = web.RequestKey("terminal", str)
CSRF = web.RequestKey("csrf_token", str)
VIEWER: web.RequestKey[Viewer] = web.RequestKey("viewer", object)  # type: ignore[arg-type]
