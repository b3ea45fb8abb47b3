"""Load for bench/proxies.py: one workload, one process, results as one JSON line on standard output.

  tunnels   CONNECT, the 200, a recorded TLS ClientHello, the first bytes of the origin's answer, close: the
            set-up of a tunnel as a browser makes it, without the client's share of the handshake.
  inspected CONNECT, TLS through the proxy (trusting its CA), then GET requests over keep-alive.
  hold      open N tunnels (as `tunnels`) and keep them open until told to stop (standard input closes).

Every workload runs `--concurrency` connections (loops) for `--seconds` after a short warm-up, and reports
operations, seconds, per-operation latencies (p50, p99) and the CPU this process used.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Tally:
    done: int = 0
    errors: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)
    counting: bool = False
    kinds: dict[str, int] = field(default_factory=dict)
    """Errors by kind (exception class and message), for telling a proxy's refusal from a client's limit."""

    def failed(self, exc: BaseException) -> None:
        if self.counting:
            self.errors += 1
            kind = f"{type(exc).__name__}: {exc}"[:80]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1


@functools.cache
def client_hello(host: str) -> bytes:
    """The first flight of a real TLS client for `host`, made once in memory and sent as is on every tunnel
    (once per process: making a context loads the CA store, tens of milliseconds that 1,000 tunnels starting at
    once would spend with the event loop blocked)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


async def connect(proxy: tuple[str, int], target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*proxy)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        writer.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return reader, writer


async def tunnels(args: argparse.Namespace, tally: Tally, stop: asyncio.Event) -> None:
    hello = client_hello(args.target.rsplit(":", 1)[0])
    while not stop.is_set():
        started = time.perf_counter()
        writer = None
        try:
            reader, writer = await connect(args.proxy, args.target)
            writer.write(hello)
            if not await reader.read(1):
                raise ConnectionError("closed before the origin answered")
            if tally.counting:
                tally.done += 1
                tally.latencies.append(time.perf_counter() - started)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            tally.failed(exc)
        finally:
            if writer is not None:
                writer.close()


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return length


@functools.cache
def _trusting(cafile: str) -> ssl.SSLContext:
    """One client context for every connection (see `client_hello`)."""
    return ssl.create_default_context(cafile=cafile)


async def inspected(args: argparse.Namespace, tally: Tally, stop: asyncio.Event) -> None:
    host = args.target.rsplit(":", 1)[0]
    context = _trusting(args.cafile)
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.target}\r\n\r\n".encode()
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await connect(args.proxy, args.target)
            await writer.start_tls(context, server_hostname=host)
            while not stop.is_set():
                started = time.perf_counter()
                writer.write(request)
                tally.bytes += await _response(reader)
                if tally.counting:
                    tally.done += 1
                    tally.latencies.append(time.perf_counter() - started)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError) as exc:
            tally.failed(exc)
            await asyncio.sleep(0.01)
        finally:
            if writer is not None:
                writer.close()


async def hold(args: argparse.Namespace) -> None:
    """Open `concurrency` tunnels, say how many, keep them until standard input closes."""
    hello = client_hello(args.target.rsplit(":", 1)[0])
    held, errors = [], 0
    for start in range(0, args.concurrency, 100):
        batch = await asyncio.gather(*(connect(args.proxy, args.target)
                                       for _ in range(start, min(start + 100, args.concurrency))),
                                     return_exceptions=True)
        for item in batch:
            if isinstance(item, BaseException):
                errors += 1
                continue
            reader, writer = item
            writer.write(hello)
            held.append((reader, writer))
    answered = await asyncio.gather(*(reader.read(1) for reader, _ in held), return_exceptions=True)
    ok = sum(1 for a in answered if isinstance(a, bytes) and a)
    print(json.dumps({"held": ok, "errors": errors + len(held) - ok}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for _, writer in held:
        writer.close()


WORKLOADS = {"tunnels": tunnels, "inspected": inspected}


async def run(args: argparse.Namespace) -> None:
    if args.workload == "hold":
        await hold(args)
        return
    tally, stop = Tally(), asyncio.Event()
    loops = [asyncio.create_task(WORKLOADS[args.workload](args, tally, stop)) for _ in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tally.counting = True
    await asyncio.sleep(args.seconds)
    tally.counting = False
    seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stop.set()
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    ordered = sorted(tally.latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    print(json.dumps({"done": tally.done, "errors": tally.errors, "error_kinds": tally.kinds, "bytes": tally.bytes,
                      "seconds": seconds,
                      "cpu": cpu, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "pid": os.getpid()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workload", choices=[*WORKLOADS, "hold"])
    parser.add_argument("--proxy", required=True, help="HOST:PORT of the proxy")
    parser.add_argument("--target", required=True, help="HOST:PORT to CONNECT to")
    parser.add_argument("--path", default="/1k")
    parser.add_argument("--cafile", default=None, help="CA the client trusts inside the tunnel")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    host, port = args.proxy.rsplit(":", 1)
    args.proxy = (host, int(port))
    try:
        import uvloop
        uvloop.run(run(args))
    except ImportError:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
