"""Soak: 20,000 calls over 64 concurrent connections against ``scopegen serve``.

Three calls in four are ``ping(x=i)`` (the answer must be ``i``), one in four
is ``embed`` (the answer must be the exact 4096 floats). Passes when there are
0 errors, every result is correct, and the server's RSS grows less than 10%
between the first and the last thousand calls (psutil, sampled every 1,000
completed calls). Exits 1 otherwise.

    .venv/bin/python benchmarks/soak.py [--calls 20000] [--connections 64]
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import psutil  # type: ignore[import-untyped]
from _common import (
    INTERFACE,
    HTTPConnection,
    Report,
    arg_parser,
    client_cpus,
    finish,
    fmt,
    free_port,
    median,
    pin_self,
    run_server,
    scopegen_serve_cmd,
    server_cpus,
)

EMBEDDING = [math.sin(i) for i in range(4096)]
RSS_GROWTH_LIMIT = 0.10
SAMPLE_EVERY = 1000


async def soak(url: str, server: psutil.Process, calls: int, connections: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counter = itertools.count()
    done = 0
    errors: list[str] = []
    wrong: list[str] = []
    latencies: list[float] = []
    rss: list[tuple[int, int]] = []  # (completed calls, bytes)
    peers: set[int] = set()

    def sample() -> None:
        rss.append((done, server.memory_info().rss))
        if len(rss) == 1:  # once all workers are going: count the server's connections
            for c in server.net_connections(kind="tcp"):
                if c.status == psutil.CONN_ESTABLISHED and c.raddr:
                    peers.add(c.raddr.port)

    async def worker() -> None:
        nonlocal done
        conn = await HTTPConnection.open(host, port)
        try:
            while (i := next(counter)) < calls:
                is_embed = i % 4 == 3
                if is_embed:
                    path, body = "/v1/call/embed", b'{"text":"soak"}'
                else:
                    path, body = "/v1/call/ping", b'{"x":%d}' % i
                t0 = time.perf_counter()
                try:
                    status, data = await conn.post(path, body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(f"call {i}: {type(exc).__name__}: {exc}")
                    conn.close()
                    conn = await HTTPConnection.open(host, port)
                    continue
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"call {i}: HTTP {status} {data[:200]!r}")
                else:
                    expected = EMBEDDING if is_embed else i
                    if orjson.loads(data) != {"result": expected}:
                        wrong.append(f"call {i}: {data[:200]!r}")
                done += 1
                if done % SAMPLE_EVERY == 0 or done == calls:
                    sample()
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0

    latencies.sort()
    n = len(latencies)
    return {
        "elapsed": elapsed,
        "done": done,
        "errors": errors,
        "wrong": wrong,
        "rss": rss,
        "open_connections": len(peers),
        "p50_ms": median(latencies) * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
    }


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args()
    calls = 4000 if args.quick else args.calls

    report = Report("soak.py", f"Soak: {calls:,} calls over {args.connections} connections")
    report.setup = {
        "calls": calls,
        "connections": args.connections,
        "mix": "3/4 ping(x=i) == i, 1/4 embed == the 4096 floats",
        "client": "asyncio, one keep-alive HTTP/1.1 connection per worker",
        "server CPU(s) / client CPU(s)": f"{server_cpus()} / {client_cpus()}",
    }
    for k, v in report.setup.items():
        print(f"{k}: {v}")
    port = free_port()
    pin_self(client_cpus())
    with run_server("soak", scopegen_serve_cmd(INTERFACE, port), port) as srv:
        server = psutil.Process(srv.proc.pid)
        rss_start = server.memory_info().rss
        res = asyncio.run(soak(srv.url, server, calls, args.connections))
        alive = srv.proc.poll() is None

    rss = res["rss"]
    first = rss[0][1]
    last = rss[-1][1]
    growth = (last - first) / first
    report.figure("calls completed", f"{res['done']:,} in {res['elapsed']:.1f} s")
    report.figure("throughput", f"{fmt(res['done'] / res['elapsed'])} calls/s")
    report.figure("latency p50 / p99", f"{res['p50_ms']:.1f} ms / {res['p99_ms']:.1f} ms")
    report.figure(
        "connections the server held (after the first 1k calls)", str(res["open_connections"])
    )
    report.figure("errors", str(len(res["errors"])), target="0", met=not res["errors"])
    report.figure("wrong results", str(len(res["wrong"])), target="0", met=not res["wrong"])
    report.figure("server alive afterwards", str(alive), target="True", met=alive)
    report.figure(
        "server RSS: start / after first 1k / after last 1k",
        f"{rss_start / 2**20:.1f} / {first / 2**20:.1f} / {last / 2**20:.1f} MiB",
    )
    report.figure(
        "RSS growth, first 1k -> last 1k calls",
        f"{growth * 100:+.1f}%",
        target=f"< {RSS_GROWTH_LIMIT * 100:.0f}%",
        met=growth < RSS_GROWTH_LIMIT,
    )
    report.figure("RSS per 1k calls (MiB)", " ".join(f"{b / 2**20:.1f}" for _, b in rss))
    for line in (res["errors"] + res["wrong"])[:10]:
        print("  " + line)
    report.ok = all(f["met"] is not False for f in report.figures)
    print("SOAK PASSED" if report.ok else "SOAK FAILED")
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
