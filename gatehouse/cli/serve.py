"""Run the portal and the gateway in one process and one event loop, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gatehouse.cli.workers import Workers, refuse_taken_port, start_workers, stop_with_parent, stop_workers
from gatehouse.errors import GatehouseError
from gatehouse.kernel import Kernel
from gatehouse.settings import SETTINGS_BY_NAME, Settings
from gateway.service import Gateway
from portal.app import create_app
from portal.visits.calls import Calls
from portal.visits.public import create_public_app

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Running:
    kernel: Kernel
    gateway: Gateway | None
    portal: tuple[str, int] | None
    proxy: tuple[str, int] | None
    visits: tuple[str, int] | None = None
    """The public listener for visitors, when this process runs it."""


def visits_port(settings: Settings) -> int:
    """`visits.port`; left at its default beside a portal asked for a free port (tests, throw-away runs), a free
    one too, or two such runs would fight over the default."""
    port: int = settings["visits.port"]
    if settings["portal.port"] == 0 and port == SETTINGS_BY_NAME["visits.port"].default:
        return 0
    return port


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, tuple[str, int]]:
    """`app` listening on host:port (0 picks a free port); its runner, and the address it is bound to."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockets = getattr(site._server, "sockets", None) or []  # the bound port when 0 was asked for
    bound = sockets[0].getsockname()[:2] if sockets else (host, port)
    return runner, (str(bound[0]), int(bound[1]))


@contextlib.asynccontextmanager
async def running(settings: Settings, only: str = "", *, reuse_port: bool = False,
                  claim: bool = False) -> AsyncIterator[Running]:
    """Both planes and the visitors' public listener (or `only` one: "gateway", "portal" or "visits") up on the
    configured addresses (port 0 picks a free one); all closed on exit. `reuse_port`: the gateway shares its port
    with worker processes; `claim`: this is the first of them, so the port must be free."""
    if claim and only not in ("portal", "visits"):
        refuse_taken_port(settings["proxy.host"], settings["proxy.port"])
    kernel = Kernel.open(settings)
    await kernel.start()
    runner: web.AppRunner | None = None
    visitors: web.AppRunner | None = None
    visits: tuple[str, int] | None = None
    gateway: Gateway | None = None
    try:
        calls = Calls(kernel)  # one hub for both listeners: an inmate and a family meet in the same room
        if only in ("", "visits"):
            visitors, visits = await start_site(create_public_app(kernel, calls=calls), settings["visits.host"],
                                                visits_port(settings))
            if not settings["visits.public_url"]:
                kernel.settings = kernel.settings.replace(visits__public_url=f"http://{visits[0]}:{visits[1]}")
        if only == "visits":
            yield Running(kernel, None, None, None, visits)
            return
        if only == "gateway":
            gateway = Gateway(kernel)
            proxy = await gateway.start(settings["proxy.host"], settings["proxy.port"], reuse_port=reuse_port)
            yield Running(kernel, gateway, None, proxy)
            return
        runner = web.AppRunner(create_app(kernel, alone=only == "portal", calls=calls), access_log=None,
                               shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, settings["portal.host"], settings["portal.port"], reuse_address=True)
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        portal = sockets[0].getsockname()[:2] if sockets else (settings["portal.host"], settings["portal.port"])
        if not settings["portal.public_url"]:
            kernel.settings = kernel.settings.replace(portal__public_url=f"http://{portal[0]}:{portal[1]}")
        if only == "portal":
            if not await asyncio.to_thread(kernel.policies.load):
                errors = "\n".join(str(e) for e in kernel.policies.errors)
                raise GatehouseError(f"policy has errors; the portal does not start:\n{errors}")
            yield Running(kernel, None, (str(portal[0]), int(portal[1])), None)  # it follows the policy itself
            return
        gateway = Gateway(kernel)
        proxy = await gateway.start(settings["proxy.host"], settings["proxy.port"], reuse_port=reuse_port)
        yield Running(kernel, gateway, (str(portal[0]), int(portal[1])), proxy, visits)
    finally:
        if gateway is not None:
            await gateway.stop()
        if runner is not None:
            await runner.cleanup()
        if visitors is not None:
            await visitors.cleanup()
        await kernel.close()


async def _main(settings: Settings, ready: asyncio.Future[Running] | None = None, only: str = "",
                workers: Workers | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if workers is not None and workers.child:
        stop_with_parent(stop)
    spawning = workers is not None and workers.count > 1
    async with running(settings, only, reuse_port=workers is not None,
                       claim=workers is not None and not workers.child) as up:
        if up.portal is not None:
            print(f"portal:  http://{up.portal[0]}:{up.portal[1]}/", flush=True)
        if up.proxy is not None:
            print(f"gateway: {up.proxy[0]}:{up.proxy[1]} (set as the terminals' HTTP and HTTPS proxy)", flush=True)
        if up.visits is not None:
            print(f"visitors: http://{up.visits[0]}:{up.visits[1]}/ (the public listener; put it behind TLS)",
                  flush=True)
        children = await start_workers(up.kernel.settings, up.proxy, workers) if spawning and workers and up.proxy \
            else []
        if ready is not None:
            ready.set_result(up)
        try:
            await stop.wait()
        finally:
            print("stopping...", flush=True)
            await stop_workers(children)


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(settings: Settings, only: str = "", workers: Workers | None = None) -> int:
    use_uvloop()
    try:
        asyncio.run(_main(settings, only=only, workers=workers))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
