"""The embedded mitmproxy master: TLS interception with the facility CA and a decision on every request.

Only the addons Gatehouse needs are loaded (core, proxy server, next layer, TLS config and ours); the stock
`errorcheck` addon is left out because it calls sys.exit on start-up errors, which we report ourselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from gatehouse.ca import ca_key_file
from gatehouse.errors import GatehouseError
from gatehouse.settings import ResolveTable
from gateway.addons.decide import RequestDecider
from gateway.addons.handoff import HandoffBinder
from gateway.addons.resolve import UpstreamGuard
from gateway.addons.strict import StrictFraming
from gateway.addons.tlsguard import SniGuard
from gateway.checks import RequestChecks
from policies.snapshot import Snapshot

log = logging.getLogger(__name__)


class InspectorError(GatehouseError):
    pass


class Inspector:
    def __init__(self, *, ca_dir: Path, key: bytes, policy: Callable[[], Snapshot], checks: RequestChecks,
                 resolve: ResolveTable, upstream_ca_file: str = "") -> None:
        if not ca_key_file(ca_dir).exists():
            raise InspectorError(f"facility CA missing: {ca_key_file(ca_dir)}; run `gatehouse init`")
        if upstream_ca_file and not Path(upstream_ca_file).is_file():
            raise InspectorError(f"setting proxy.upstream_ca_file: no such file {upstream_ca_file}")
        self._ca_dir = ca_dir
        self._upstream_ca_file = upstream_ca_file
        binder = HandoffBinder(key)
        self._addons = [
            binder,
            StrictFraming(binder, checks),
            SniGuard(binder),
            UpstreamGuard(resolve, policy),
            RequestDecider(checks),
        ]
        self._master: Master | None = None
        self._task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        opts = options.Options()
        master = Master(opts, event_loop=asyncio.get_running_loop())
        master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),
                          *self._addons)
        updates: dict[str, object] = dict(
            confdir=str(self._ca_dir), listen_host="127.0.0.1", listen_port=0, mode=["regular"],
            connection_strategy="lazy", rawtcp=False, websocket=True, stream_large_bodies="1m",
            http3=False, server_replay_kill_extra=False,
        )
        updates = {k: v for k, v in updates.items() if k in opts}
        if self._upstream_ca_file:
            updates["ssl_verify_upstream_trusted_ca"] = self._upstream_ca_file
        opts.update(**updates)
        self._master = master
        self._task = asyncio.create_task(master.run(), name="inspector")
        for _ in range(200):
            ps = master.addons.get("proxyserver")
            addrs = ps.listen_addrs() if ps else []
            if addrs:
                host, port = addrs[0][:2]
                self.address = (str(host), int(port))
                return self.address
            if self._task.done():
                break
            await asyncio.sleep(0.02)
        await self.stop()
        raise InspectorError("the inspector did not start listening")

    async def take(self, reader: Any, writer: Any) -> None:
        """Serve a connection the front accepted, in this process: no loopback hop and no copying between the two.
        `reader` gives back first the head the front read (with its signed hand-off header)."""
        if self._master is None or (ps := self._master.addons.get("proxyserver")) is None:
            raise InspectorError("the inspector is not running")
        try:
            server = ps.servers["regular"]
        except KeyError:
            raise InspectorError("the inspector is stopping") from None
        await server.handle_stream(reader, writer)

    async def stop(self) -> None:
        if self._master is not None:
            # mitmproxy leaves its listening sockets to process exit; an embedded master closes them itself.
            if (ps := self._master.addons.get("proxyserver")) is not None:
                await ps.servers.update([])
            self._master.shutdown()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("inspector: shutdown timed out")
        self._master, self._task, self.address = None, None, None
