"""Fallback HTTP/1.1 load generator (used when ``wrk`` is unavailable).

Keep-alive connections, each sending one pre-encoded POST at a time and
reading the answer by its Content-Length: the least Python can do per
request, so it distorts the servers it compares as little as Python can.
Prints one JSON line: rps, requests, errors, p50_ms, p99_ms.

    python benchmarks/_loadgen.py URL --body-file F -c 32 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _worker(
    host: str, port: int, request: bytes, stop: float, lat: list[float], errs: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while clock() < stop:
            t0 = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status_ok = head.startswith(b"HTTP/1.1 200")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            await reader.readexactly(length)
            lat.append(clock() - t0)
            if not status_ok:
                errs.append(1)
    except (OSError, asyncio.IncompleteReadError):
        errs.append(1)
    finally:
        writer.close()


async def _main(url: str, body: bytes, connections: int, duration: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errs: list[int] = []
    t0 = time.perf_counter()
    stop = t0 + duration
    await asyncio.gather(
        *(_worker(host, port, request, stop, lat, errs) for _ in range(connections))
    )
    elapsed = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {
        "rps": n / elapsed,
        "requests": n,
        "errors": len(errs),
        "p50_ms": lat[n // 2] * 1000 if n else 0.0,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--body-file", type=Path, required=True)
    p.add_argument("-c", "--connections", type=int, default=32)
    p.add_argument("-d", "--duration", type=float, default=5.0)
    a = p.parse_args()
    result = asyncio.run(_main(a.url, a.body_file.read_bytes(), a.connections, a.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
