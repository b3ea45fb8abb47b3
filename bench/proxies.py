"""Gatehouse beside the proxies a prison would otherwise run, measured in one run on this machine.

Run: python bench/proxies.py [--rounds R] [--seconds S] [--concurrency 10,100,1000] [--out bench/results]
Needs Debian's nginx-light, squid and wrk (`apt-get install nginx-light squid wrk`) and the bench extra
(`pip install -e '.[bench]'`, for the plot).

On loopback it starts an nginx origin (HTTP and HTTPS, an ECDSA certificate of its own CA, a 1 KB page and a
1 GiB file), Squid with an allowlist ACL, a bare mitmdump with a one-line allowlist addon (once intercepting,
once passing tunnels through), and Gatehouse in passthrough and in inspect mode (the full pipeline: identity,
policy, quota, audit; inspected HTTP/1.1 carried by its own engine, and once more by its mitmproxy inspector as
`gatehouse-mitm`). The proxies are pinned to one core and the load generators and the origin to the other,
so every proxy has the same one core; `gatehouse run --workers 2` is then measured against one worker with both
unpinned. The measures alternate proxy by proxy in each round; figures are medians over the rounds:

  tunnels/s       CONNECT set-up: CONNECT, 200, a recorded ClientHello, the origin's first answer bytes
  MB/s            bytes per second through tunnels: curl downloading the 1 GiB file over TLS, 1 and 10 at once
  inspected req/s HTTPS requests over keep-alive through an intercepting proxy (TLS re-signed by it)
  plain req/s     absolute-form HTTP requests over keep-alive (wrk)

with p50/p99 of each operation, the proxy's CPU (cores used) and the load generator's, the proxy's idle and
peak memory and its memory per open tunnel (1,000 held). Ratios are printed against Squid and against mitmdump
from the same run. Results go to `<out>/proxies.json` and a plot to `<out>/proxies.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROXY_CORE, CLIENT_CORE = "1", "0"
BIG = 1 << 30
"""The download of the bytes measure: a sparse file, served from the page cache."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def tree(pid: int) -> list[int]:
    """A process and its descendants (Squid's kids, Gatehouse's workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            continue
    return total


def memory_kib(pids: list[int], key: str) -> int:
    """VmRSS (now) or VmHWM (peak) summed over the processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class Proxy:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    cafile: str = ""
    cores: str = PROXY_CORE
    idle_kib: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return tree(self.proc.pid)


@dataclass
class Setup:
    folder: Path
    http_port: int = 0
    https_port: int = 0
    origin_ca: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], cores: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["taskset", "-c", cores, *args], stdout=subprocess.DEVNULL,
                                stderr=kwargs.pop("stderr", subprocess.DEVNULL), **kwargs)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_origin(setup: Setup) -> None:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    leaf = ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)
    folder = setup.folder / "nginx"
    folder.mkdir()
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    ca.cert_pem.write_to_path(str(setup.folder / "origin-ca.pem"))
    setup.origin_ca = str(setup.folder / "origin-ca.pem")
    with open(folder / "big.bin", "wb") as out:
        out.truncate(BIG)
    setup.http_port, setup.https_port = free_port(), free_port()
    page = "x" * 1024
    (folder / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log; user root;
events {{ worker_connections 8192; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 120;
  client_body_temp_path {folder}; proxy_temp_path {folder}; fastcgi_temp_path {folder};
  uwsgi_temp_path {folder}; scgi_temp_path {folder};
  server {{
    listen 127.0.0.1:{setup.http_port} backlog=4096; listen [::1]:{setup.http_port} backlog=4096;
    listen 127.0.0.1:{setup.https_port} ssl backlog=4096; listen [::1]:{setup.https_port} ssl backlog=4096;
    ssl_certificate {folder}/cert.pem; ssl_certificate_key {folder}/key.pem;
    location = /1k {{ default_type text/plain; return 200 "{page}"; }}
    location = /big {{ alias {folder}/big.bin; }}
  }}
}}
""")
    setup.spawn(["nginx", "-c", str(folder / "nginx.conf")], CLIENT_CORE)
    wait_port(setup.https_port)


def start_squid(setup: Setup) -> Proxy:
    folder = setup.folder / "squid"
    folder.mkdir()
    port = free_port()
    (folder / "squid.conf").write_text(f"""
http_port 127.0.0.1:{port}
pid_filename {folder}/squid.pid
cache_log {folder}/cache.log
access_log stdio:{folder}/access.log
cache deny all
cache_mem 8 MB
workers 1
shutdown_lifetime 1 seconds
max_filedescriptors 65536
acl allowed dstdomain localhost
acl CONNECT method CONNECT
http_access allow allowed
http_access deny all
""")
    shutil.chown(folder, "proxy", "proxy")
    proc = setup.spawn(["squid", "-N", "-f", str(folder / "squid.conf")], PROXY_CORE)
    wait_port(port)
    return Proxy("squid", port, proc)


ALLOWLIST = """\
from mitmproxy import http
ALLOW = {"localhost"}
def http_connect(flow): flow.response = None if flow.request.host in ALLOW else http.Response.make(403)
def request(flow):
    if flow.response is None and flow.request.pretty_host not in ALLOW: flow.response = http.Response.make(403)
"""


def start_mitmdump(setup: Setup, name: str, passthrough: bool) -> Proxy:
    folder = setup.folder / name
    folder.mkdir()
    (folder / "allow.py").write_text(ALLOWLIST)
    port = free_port()
    args = [str(Path(sys.executable).parent / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
            "-s", str(folder / "allow.py"), "--set", f"confdir={folder}",
            "--set", f"ssl_verify_upstream_trusted_ca={setup.origin_ca}"]
    if passthrough:
        args += ["--ignore-hosts", ".*"]
    proc = setup.spawn(args, PROXY_CORE)
    wait_port(port)
    return Proxy(name, port, proc, cafile=str(folder / "mitmproxy-ca-cert.pem"))


def gatehouse_data(setup: Setup, name: str, mode: str, redis_url: str = "") -> Any:
    """A data dir with one rule for the origin (`mode`), terminal 127.0.0.1 and an inmate logged in there."""
    from gatehouse.cli.ops import initialise
    from gatehouse.db.engine import utcnow
    from gatehouse.facility import ensure_facility
    from gatehouse.inmates import add_inmate
    from gatehouse.kernel import Kernel
    from gatehouse.sessions import login
    from gatehouse.terminals import add_terminal

    overrides: dict[str, object] = {"proxy.upstream_ca_file": setup.origin_ca}
    if redis_url:
        overrides["redis.url"] = redis_url
    settings = initialise(setup.folder / name, overrides, quiet=True)
    for path in settings.policy_dir.iterdir():
        path.unlink()
    (settings.policy_dir / "bench.yaml").write_text(
        f"rules:\n  - id: bench\n    allow: [localhost]\n    ports: [{setup.http_port}, {setup.https_port}]\n"
        f"    mode: {mode}\n", encoding="utf-8")
    kernel = Kernel.open(settings)
    try:
        with kernel.factory.begin() as db:
            facility = ensure_facility(db, settings)
            add_terminal(db, facility, name="cell-1", address="127.0.0.1", kind="cell", unit="A")
            add_inmate(db, facility, number="A1", name="Bench Mark", language="en", pin="2468")
        login(kernel.factory, kernel.session_policy, address="127.0.0.1", number="A1", pin="2468", now=utcnow())
    finally:
        kernel.engine.dispose()
    return settings


def start_gatehouse(setup: Setup, name: str, mode: str, *, workers: int = 1, redis_url: str = "",
                    cores: str = PROXY_CORE, engine: str = "front") -> Proxy:
    """`engine`: what carries inspected HTTP/1.1 and plain HTTP (`proxy.engine`)."""
    from gatehouse.ca import ca_cert_file

    settings = gatehouse_data(setup, name, mode, redis_url)
    port = free_port()
    resolve = [a for p in (setup.http_port, setup.https_port) for a in ("--resolve", f"localhost:{p}=127.0.0.1:{p}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")} | {
        "GATEHOUSE_AUDIT_NODE": name, "GATEHOUSE_PROXY_ENGINE": engine}
    proc = setup.spawn([sys.executable, "-m", "gatehouse.cli", "run", "--data-dir", str(settings.data_dir),
                        "--proxy-port", str(port), "--portal-port", str(free_port()), "--workers", str(workers),
                        *resolve], cores, env=env)
    wait_port(port)
    time.sleep(1.0 + workers)  # the workers bind the same port after the first process
    return Proxy(name, port, proc, cafile=str(ca_cert_file(settings.ca_dir)), cores=cores)


def loadgen(workload: str, proxy: Proxy, target: str, concurrency: int, seconds: float, **extra: str) -> dict[str, Any]:
    args = [sys.executable, str(HERE / "loadgen.py"), workload, "--proxy", proxy.address, "--target", target,
            "--concurrency", str(concurrency), "--seconds", str(seconds)]
    for key, value in extra.items():
        args += [f"--{key}", value]
    pids = proxy.pids()
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    out = subprocess.run(["taskset", "-c", CLIENT_CORE, *args], capture_output=True, text=True, timeout=seconds + 120)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pids) - cpu0
    if out.returncode != 0:
        raise SystemExit(f"{workload} through {proxy.name} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["proxy_cores"] = cpu / wall
    result["client_cores"] = result["cpu"] / result["seconds"]
    return result


def curl_bytes(proxy: Proxy, url: str, cafile: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` curls download through the proxy for `seconds`; bytes per second over all of them."""
    pids = proxy.pids()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    runs = [subprocess.Popen(["taskset", "-c", CLIENT_CORE, "curl", "-s", "-o", "/dev/null", "--max-time",
                              f"{seconds:.0f}", "-w", "%{size_download}", "--cacert", cafile, "--proxy",
                              f"http://{proxy.address}", url], stdout=subprocess.PIPE, text=True)
            for _ in range(concurrency)]
    sizes = [int(float(run.communicate()[0] or 0)) for run in runs]
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pids) - cpu0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"rate": sum(sizes) / wall / 1e6, "p50_ms": float("nan"), "p99_ms": float("nan"),
            "proxy_cores": cpu / wall, "client_cores": client / wall, "errors": sum(1 for n in sizes if n == 0)}


def wrk(proxy: Proxy, url: str, concurrency: int, seconds: float, folder: Path) -> dict[str, Any]:
    script = folder / "absolute.lua"
    host = url.split("/")[2]
    script.write_text(f'wrk.path = "{url}"\nwrk.headers["Host"] = "{host}"\n')
    pids = proxy.pids()
    # 1,000 connections opened at once through a proxy take seconds: a longer run and wrk's timeout above them.
    seconds = max(seconds, concurrency / 100)
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    out = subprocess.run(["taskset", "-c", CLIENT_CORE, "wrk", "-t", "1", "-c", str(concurrency), "-d",
                          f"{seconds:.0f}s", "--timeout", f"{seconds:.0f}s", "--latency", "-s", str(script),
                          f"http://{proxy.address}"], capture_output=True, text=True, timeout=seconds + 60)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pids) - cpu0
    text = out.stdout
    result: dict[str, Any] = {"proxy_cores": cpu / wall, "errors": 0, "client_cores": float("nan")}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rate"] = float(words[1])
        elif words[:1] == ["50%"]:
            result["p50_ms"] = _ms(words[1])
        elif words[:1] == ["99%"]:
            result["p99_ms"] = _ms(words[1])
        elif "Non-2xx" in line or line.strip().startswith("Socket errors"):
            result["errors"] += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
    if "rate" not in result:
        raise SystemExit(f"wrk through {proxy.name} printed no rate:\n{text}\n{out.stderr}")
    return result


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def held_memory(proxy: Proxy, target: str, count: int) -> dict[str, Any]:
    """Open `count` tunnels at once and keep them: errors, and memory per open tunnel."""
    before = memory_kib(proxy.pids(), "VmRSS")
    proc = subprocess.Popen(["taskset", "-c", CLIENT_CORE, sys.executable, str(HERE / "loadgen.py"), "hold",
                             "--proxy", proxy.address, "--target", target, "--concurrency", str(count)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    said = json.loads(proc.stdout.readline())
    time.sleep(1.0)
    during = memory_kib(proxy.pids(), "VmRSS")
    proc.stdin.close()
    proc.wait(60)
    return {"held": said["held"], "errors": said["errors"], "kib_per_tunnel": (during - before) / max(said["held"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", default="10,100,1000")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--replot", action="store_true", help="draw the plot again from <out>/proxies.json")
    parser.add_argument("--measures", default=",".join(MEASURES),
                        help=f"which of {', '.join(MEASURES)} (default all; memory is always measured)")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((args.out / "proxies.json").read_text()), args.out / "proxies.png")
        return
    for tool in ("nginx", "squid", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install nginx-light squid wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("this benchmark pins proxies and load to two different cores; this machine has one")
    levels = [int(c) for c in args.concurrency.split(",")]
    setup = Setup(Path(tempfile.mkdtemp(prefix="gatehouse-proxies-")))
    os.chmod(setup.folder, 0o755)
    redis_port = free_port()
    try:
        start_origin(setup)
        setup.spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no"], CLIENT_CORE)
        wait_port(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        proxies = {p.name: p for p in [
            start_squid(setup),
            start_mitmdump(setup, "mitmdump", passthrough=False),
            start_mitmdump(setup, "mitmdump-pass", passthrough=True),
            start_gatehouse(setup, "gatehouse-pass", "passthrough"),
            start_gatehouse(setup, "gatehouse-inspect", "inspect"),
            start_gatehouse(setup, "gatehouse-mitm", "inspect", engine="mitmproxy"),
            start_gatehouse(setup, "gatehouse-1w", "passthrough", redis_url=redis_url, cores="0,1"),
            start_gatehouse(setup, "gatehouse-2w", "passthrough", workers=2, redis_url=redis_url, cores="0,1"),
        ]}
        time.sleep(2)
        for proxy in proxies.values():
            proxy.idle_kib = memory_kib(proxy.pids(), "VmRSS")
        # Before any other load: afterwards the allocators keep what they took and new tunnels reuse it.
        held = {name: held_memory(proxies[name], f"localhost:{setup.https_port}", 1000)
                for name in ("squid", "mitmdump-pass", "gatehouse-pass")}
        results = measure(setup, proxies, levels, args)
        results["memory"] = {name: {"idle_mib": p.idle_kib / 1024, "peak_mib": memory_kib(p.pids(), "VmHWM") / 1024,
                                    **held.get(name, {})} for name, p in proxies.items()}
    finally:
        setup.close()
        shutil.rmtree(setup.folder, ignore_errors=True)
    results["machine"] = {"cores": os.cpu_count(), "proxy_cores": PROXY_CORE, "client_cores": CLIENT_CORE,
                          "python": sys.version.split()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "proxies.json").write_text(json.dumps(results, indent=2))
    report(results)
    plot(results, args.out / "proxies.png")
    print(f"\nfigures: {args.out / 'proxies.json'}; plot: {args.out / 'proxies.png'}")


MEASURES = {
    # measure: (proxies, unit)
    "tunnels": (["squid", "mitmdump-pass", "gatehouse-pass"], "tunnels/s"),
    "bytes": (["squid", "mitmdump-pass", "gatehouse-pass"], "MB/s"),
    "inspected": (["mitmdump", "gatehouse-mitm", "gatehouse-inspect"], "req/s"),
    "plain": (["squid", "mitmdump", "gatehouse-mitm", "gatehouse-inspect"], "req/s"),
    "workers": (["gatehouse-1w", "gatehouse-2w"], "tunnels/s"),
}


def measure(setup: Setup, proxies: dict[str, Proxy], levels: list[int], args: argparse.Namespace) -> dict[str, Any]:
    tls_target = f"localhost:{setup.https_port}"
    samples: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = {}
    plan: list[tuple[str, int]] = [(m, c) for m in ("tunnels", "inspected", "plain") for c in levels]
    plan += [("bytes", c) for c in (1, 10)] + [("workers", 100)]
    chosen = set(args.measures.split(","))
    if unknown := chosen - set(MEASURES):
        raise SystemExit(f"--measures: unknown {', '.join(sorted(unknown))} (known: {', '.join(MEASURES)})")
    plan = [(m, c) for m, c in plan if m in chosen]
    for measure_name, concurrency in plan:
        names = MEASURES[measure_name][0]
        for round_no in range(args.rounds):
            order = names if round_no % 2 == 0 else list(reversed(names))
            for name in order:
                proxy = proxies[name]
                if measure_name in ("tunnels", "workers"):
                    got = loadgen("tunnels", proxy, tls_target, concurrency, args.seconds)
                    got["rate"] = got["done"] / got["seconds"]
                elif measure_name == "inspected":
                    # 1,000 TLS handshakes with an intercepting proxy take seconds: count once they are done.
                    got = loadgen("inspected", proxy, tls_target, concurrency, args.seconds, cafile=proxy.cafile,
                                  warmup=str(max(1.0, concurrency / 50)))
                    got["rate"] = got["done"] / got["seconds"]
                elif measure_name == "bytes":
                    got = curl_bytes(proxy, f"https://{tls_target}/big", setup.origin_ca, concurrency, args.seconds)
                else:
                    got = wrk(proxy, f"http://localhost:{setup.http_port}/1k", concurrency, args.seconds, setup.folder)
                samples.setdefault(measure_name, {}).setdefault(name, {}).setdefault(concurrency, []).append(got)
                print(f"  {measure_name:<9} c={concurrency:<5} {name:<18} {got['rate']:>10,.1f} "
                      f"{MEASURES[measure_name][1]:<10} p50 {got['p50_ms']:7.1f} ms  p99 {got['p99_ms']:7.1f} ms  "
                      f"proxy {got['proxy_cores']:.2f} cores  client {got['client_cores']:.2f}  "
                      f"errors {got['errors']}", flush=True)
    return {"measures": {m: {n: {str(c): _median(runs) for c, runs in by_c.items()} for n, by_c in by_name.items()}
                         for m, by_name in samples.items()}}


def _median(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("rate", "p50_ms", "p99_ms", "proxy_cores", "client_cores", "errors")
    return {k: statistics.median(float(r[k]) for r in runs) for k in keys}


def report(results: dict[str, Any]) -> None:
    measures = results["measures"]
    machine_cores = os.cpu_count()
    print(f"\n{machine_cores} cores; every proxy pinned to core {PROXY_CORE}, load and origin on core {CLIENT_CORE} "
          f"(the workers comparison: both cores, shared with the load)")
    print(f"{'measure':<10} {'c':>5} {'proxy':<18} {'rate':>11} {'p50 ms':>8} {'p99 ms':>8} {'cores':>6} "
          f"{'client':>6} {'vs squid':>9} {'vs mitm':>8}")
    for measure_name, by_name in measures.items():
        unit = MEASURES[measure_name][1]
        for name, by_c in by_name.items():
            for concurrency, figures in by_c.items():
                squid = by_name.get("squid", {}).get(concurrency, {}).get("rate")
                mitm_name = "mitmdump-pass" if "mitmdump-pass" in by_name else "mitmdump"
                mitm = by_name.get(mitm_name, {}).get(concurrency, {}).get("rate")
                vs_squid = f"{figures['rate'] / squid:.2f}x" if squid else "-"
                vs_mitm = f"{figures['rate'] / mitm:.2f}x" if mitm else "-"
                print(f"{measure_name:<10} {concurrency:>5} {name:<18} {figures['rate']:>11,.1f} "
                      f"{figures['p50_ms']:>8.1f} {figures['p99_ms']:>8.1f} {figures['proxy_cores']:>6.2f} "
                      f"{figures['client_cores']:>6.2f} {vs_squid:>9} {vs_mitm:>8}  {unit}")
    two = measures.get("workers", {})
    if two:
        one_rate, two_rate = two["gatehouse-1w"]["100"]["rate"], two["gatehouse-2w"]["100"]["rate"]
        print(f"two workers / one worker (tunnels/s at 100): {two_rate / one_rate:.2f}x")
    print(f"\n{'proxy':<18} {'idle MiB':>9} {'peak MiB':>9} {'1,000 held':>11} {'KiB/tunnel':>11}")
    for name, memory in results.get("memory", {}).items():
        held = f"{memory['held']} ok/{memory['errors']} err" if "held" in memory else "-"
        per = f"{memory['kib_per_tunnel']:.1f}" if "kib_per_tunnel" in memory else "-"
        print(f"{name:<18} {memory['idle_mib']:>9.1f} {memory['peak_mib']:>9.1f} {held:>11} {per:>11}")


COLORS = {"squid": "#8c8c8c", "mitmdump": "#dd8452", "mitmdump-pass": "#dd8452", "gatehouse-pass": "#2e7d32",
          "gatehouse-inspect": "#2e7d32", "gatehouse-mitm": "#a5d6a7", "gatehouse-1w": "#81c784",
          "gatehouse-2w": "#2e7d32"}
"""One colour per proxy in every panel: Squid grey, mitmdump orange, Gatehouse green (lighter: its mitmproxy
engine, or one worker)."""


def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    measures = results["measures"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (measure_name, by_name) in zip(axes.flat, measures.items(), strict=False):
        levels = sorted({int(c) for by_c in by_name.values() for c in by_c})
        width = 0.8 / len(by_name)
        for i, (name, by_c) in enumerate(by_name.items()):
            values = [by_c.get(str(c), {}).get("rate", 0) for c in levels]
            bars = ax.bar([x + i * width for x in range(len(levels))], values, width, label=name,
                          color=COLORS.get(name))
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([x + width * (len(by_name) - 1) / 2 for x in range(len(levels))], [f"c={c}" for c in levels])
        ax.set_title(f"{measure_name} ({MEASURES[measure_name][1]}, more is better)")
        ax.legend(fontsize=8)
    ax = axes.flat[-1]
    memory = results.get("memory", {})
    names = list(memory)
    ax.barh(names, [memory[n]["idle_mib"] for n in names], label="idle", color="#4c72b0")
    ax.barh(names, [memory[n]["peak_mib"] - memory[n]["idle_mib"] for n in names],
            left=[memory[n]["idle_mib"] for n in names], label="peak", color="#c9d6ea")
    ax.set_title("memory (MiB, less is better)")
    ax.legend(fontsize=8)
    fig.suptitle(f"Gatehouse, Squid and mitmdump on one core each ({results['machine']['cores']}-core machine, "
                 "one run, medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
