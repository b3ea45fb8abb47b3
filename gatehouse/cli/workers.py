"""Gateway worker processes: `gatehouse run --workers N` shares the proxy port between N processes.

Each process listens on the same port with SO_REUSEPORT and the kernel spreads new connections over them. What
the workers must agree on (minutes used, the control bus, login rate limits) goes through Redis, so workers need
`redis.url`; each keeps its own audit chain (`<node>-w1`, `<node>-w2`, ...). A worker stops when the process
that started it does (its standard input closes), so none outlives `gatehouse run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass

from gatehouse.errors import GatehouseError
from gatehouse.settings import Settings

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Workers:
    count: int
    """Gateway processes in all, this one included."""
    child: bool = False
    """This process is a worker another one started."""
    resolve: tuple[str, ...] = ()
    """`--resolve` as given to the first process, passed on to the others."""


async def start_workers(settings: Settings, proxy: tuple[str, int],
                        workers: Workers) -> list[asyncio.subprocess.Process]:
    """Start workers 1..count-1 on the port this process already listens on; each has answered when this returns."""
    children: list[asyncio.subprocess.Process] = []
    try:
        for n in range(1, workers.count):
            children.append(await _start_one(settings, proxy, workers, n))
    except BaseException:
        await stop_workers(children)
        raise
    print(f"gateway: {workers.count} processes share port {proxy[1]}", flush=True)
    return children


async def _start_one(settings: Settings, proxy: tuple[str, int], workers: Workers,
                     n: int) -> asyncio.subprocess.Process:
    env = dict(os.environ) | {"GATEHOUSE_AUDIT_NODE": f"{settings.node}-w{n}",
                              "GATEHOUSE_PORTAL_PUBLIC_URL": settings.portal_url}
    args = [sys.executable, "-m", "gatehouse.cli", "run", "--only", "gateway", "--worker",
            "--data-dir", str(settings.data_dir), "--proxy-host", proxy[0], "--proxy-port", str(proxy[1])]
    for spec in workers.resolve:
        args += ["--resolve", spec]
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while line := (await proc.stdout.readline()).decode():
                if line.startswith("gateway:"):
                    asyncio.create_task(_pass_on(proc.stdout, n))
                    return proc
                said.append(line)
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
    raise GatehouseError(f"gateway worker {n} did not start (exit {proc.returncode}):\n{''.join(said)}")


async def _pass_on(stream: asyncio.StreamReader, n: int) -> None:
    while line := await stream.readline():
        print(f"[w{n}] {line.decode().rstrip()}", flush=True)


async def stop_workers(children: list[asyncio.subprocess.Process]) -> None:
    for proc in children:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in children:
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def stop_with_parent(stop: asyncio.Event) -> None:
    """A worker reads its standard input only to notice that the process that started it has gone."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def refuse_taken_port(host: str, port: int) -> None:
    """With SO_REUSEPORT a second `gatehouse run` on the same port would share it silently (half the terminals
    on another deployment's policy); the first process of a group checks that nobody listens there yet."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise GatehouseError(f"the proxy port {host}:{port} is in use ({exc.strerror}); is another "
                                     "gateway running there?") from None
