"""Streaming results and jobs: per-item cost of a stream, and a job's submit + poll latency.

- A stream of 10,000 small items (``{"item": i}``) over loopback, read whole
  by httpx: ``scopegen serve`` (a sync generator on a worker thread, and an
  async generator on the loop) against a bare raw-ASGI NDJSON loop under the
  same uvicorn (one ``send`` per line, no validation, no thread): the floor.
  Target: <= 1.3x the floor's time per item.
- A job of ``add``: ``POST /v1/jobs/add`` then ``GET /v1/jobs/{id}`` until it
  has succeeded, against one plain ``POST /v1/call/add`` (the same work as a
  call), median over many jobs.

Rounds interleave the sides; ratios are medians of per-round ratios.

    .venv/bin/python benchmarks/bench_stream.py [--items 10000] [--rounds 5] [--jobs 300]
"""

from __future__ import annotations

import time

import httpx
from _common import (
    APPS,
    Comparison,
    Report,
    arg_parser,
    finish,
    free_port,
    median,
    run_server,
    scopegen_serve_cmd,
    uvicorn_cmd,
)

INTERFACE = APPS / "stream_interface.py"


def _stream_seconds(http: httpx.Client, url: str, n: int) -> float:
    t0 = time.perf_counter()
    with http.stream("POST", url, json={"n": n}) as r:
        data = b"".join(r.iter_raw())
    elapsed = time.perf_counter() - t0
    assert data.endswith(b'{"done":true}\n') and data.count(b"\n") == n + 1, data[-200:]
    return elapsed


def _job_seconds(http: httpx.Client) -> float:
    t0 = time.perf_counter()
    job = http.post("/v1/jobs/add", json={"a": 1}).json()["job"]
    while job["status"] != "succeeded":
        job = http.get(f"/v1/jobs/{job['id']}").json()["job"]
    return time.perf_counter() - t0


def _call_seconds(http: httpx.Client) -> float:
    t0 = time.perf_counter()
    assert http.post("/v1/call/add", json={"a": 1}).json() == {"result": 2}
    return time.perf_counter() - t0


def main() -> int:
    parser = arg_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    items, rounds, jobs = (2000, 2, 50) if args.quick else (args.items, args.rounds, args.jobs)
    report = Report(
        "bench_stream.py",
        "Streams vs a bare NDJSON ASGI loop; job submit + poll vs a call",
        setup={"items": items, "rounds": rounds, "jobs": jobs},
    )
    sg_port, floor_port = free_port(), free_port()
    with (
        run_server("scopegen", scopegen_serve_cmd(INTERFACE, sg_port), sg_port) as sg,
        run_server("floor", uvicorn_cmd("stream_floor_app:app", floor_port), floor_port) as fl,
        httpx.Client(base_url=sg.url, timeout=60) as http,
    ):
        sides = {
            "sync generator": f"{sg.url}/v1/call/count",
            "async generator": f"{sg.url}/v1/call/acount",
            "bare loop": f"{fl.url}/",
        }
        for url in sides.values():  # warm
            _stream_seconds(http, url, 100)
        times: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(rounds):
            for name, url in sides.items():
                times[name].append(_stream_seconds(http, url, items))
        floor = times["bare loop"]
        for name in ("sync generator", "async generator"):
            per_round = [a / b for a, b in zip(times[name], floor, strict=True)]
            report.compare(
                Comparison(
                    f"{items:,}-item stream, time per item ({name})",
                    f"scopegen ({name})",
                    median(times[name]) / items * 1e6,
                    "bare NDJSON ASGI loop",
                    median(floor) / items * 1e6,
                    "µs/item",
                    target="<= 1.3x",
                    lower_is_better=True,
                    target_value=1.3,
                    paired_ratio=median(per_round),
                )
            )
        for _ in range(20):  # warm
            _job_seconds(http)
            _call_seconds(http)
        job_t: list[float] = []
        call_t: list[float] = []
        for _ in range(jobs):
            job_t.append(_job_seconds(http))
            call_t.append(_call_seconds(http))
        report.compare(
            Comparison(
                "job of add: submit + poll until succeeded",
                "job (POST + GETs)",
                median(job_t) * 1e3,
                "plain call (one POST)",
                median(call_t) * 1e3,
                "ms",
                lower_is_better=True,
            )
        )
        report.figure("job submit + poll latency, median", f"{median(job_t) * 1e3:.2f} ms")
    return finish(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
