"""Tensors on the wire: the generated client vs bare httpx fetching the same raw bytes.

``scopegen serve _apps/tensor_interface.py`` serves one layer's activations
(512 x 3584 float32, 7.3 MB) and takes a 3,584-float steering vector; the floor
is ``_apps/raw_bytes_app.py`` under uvicorn, answering (or reading) exactly the
raw bytes with no framing. Measured, rounds interleaving the sides:

- the activations through the generated sync client (binary framing, zero-copy
  decode) vs bare ``httpx.Client.post`` of the raw bytes (target <= 2x, aim
  1.3x) vs the same data as ``list[list[float]]`` through the client (the
  tensor side >= 8x faster);
- bytes on the wire for it (target <= raw x 1.02 + 64 KiB), and the JSON
  form's, for curl users;
- the server's encode of the result into the binary framing, in-process
  (target <= 5 ms; it includes the one copy that joins the body);
- the steering vector uploaded as a parameter: the same three sides.

    .venv/bin/python benchmarks/bench_tensors.py [--calls 20] [--rounds 5]
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import (
    APPS,
    Comparison,
    Report,
    arg_parser,
    build_client,
    finish,
    fmt,
    free_port,
    median,
    run_server,
    scopegen_serve_cmd,
    uvicorn_cmd,
)

PACKAGE = "benchtensors"
INTERFACE = APPS / "tensor_interface.py"
RAW_SIZE = 512 * 3584 * 4
BINARY = "application/x-scopegen-tensors"


def _seconds_per_call(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _compare(
    report: Report,
    name: str,
    per_round: dict[str, list[float]],
    a: str,
    b: str,
    *,
    target: float | None,
    lower_is_better: bool,
) -> None:
    ratios = [x / y for x, y in zip(per_round[a], per_round[b], strict=True)]
    sign = "<=" if lower_is_better else ">="
    report.compare(
        Comparison(
            name,
            a,
            median(per_round[a]) * 1000,
            b,
            median(per_round[b]) * 1000,
            "ms",
            target=f"{sign} {target}x" if target is not None else "",
            target_value=target,
            paired_ratio=median(ratios),
            lower_is_better=lower_is_better,
        )
    )


def main() -> int:
    p = arg_parser(__doc__ or "")
    p.add_argument("--calls", type=int, default=20, help="calls per side per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    calls = 5 if args.quick else args.calls
    rounds = 2 if args.quick else args.rounds
    list_calls = max(1, calls // 5)  # ~0.5 s a call

    report = Report("bench_tensors.py", "Tensors on the wire")
    report.setup = {
        "calls per side per round": f"{calls} ({list_calls} for the list sides)",
        "rounds (median of per-round ratios)": rounds,
        "result": "512 x 3584 float32 (7,340,032 bytes)",
        "servers": "scopegen serve --no-access-log; the floor: a raw ASGI app under uvicorn",
    }
    with tempfile.TemporaryDirectory() as tmp:
        project = build_client(INTERFACE, Path(tmp) / "out", PACKAGE)
        sys.path.insert(0, str(project / "src"))
        pkg = importlib.import_module(PACKAGE)
        port, raw_port = free_port(), free_port()
        raw_cmd = uvicorn_cmd("raw_bytes_app:app", raw_port)
        with (
            run_server("scopegen", scopegen_serve_cmd(INTERFACE, port), port, pin=False) as srv,
            run_server("raw", raw_cmd, raw_port, timeout=120, pin=False) as raw,
            pkg.Client(base_url=srv.url) as client,
            httpx.Client(timeout=60) as bare,
        ):
            _download(report, client, bare, raw.url, calls, list_calls, rounds)
            _wire_bytes(report, bare, srv.url)
            _upload(report, client, bare, raw.url, calls, rounds)
    _encode_time(report, calls, rounds)
    for k, v in report.setup.items():
        print(f"{k}: {v}")
    return finish(report, args.json)


def _download(
    report: Report,
    client: Any,
    bare: httpx.Client,
    raw_url: str,
    calls: int,
    list_calls: int,
    rounds: int,
) -> None:
    got = client.activations()
    assert got.shape == (512, 3584) and got.dtype == np.float32
    floor = bare.post(f"{raw_url}/download").content
    assert len(floor) == RAW_SIZE and floor == got.tobytes()
    sides = {
        "generated Client (tensor)": (client.activations, calls),
        "httpx.Client.post (raw bytes)": (lambda: bare.post(f"{raw_url}/download").content, calls),
        "generated Client (list[list[float]])": (client.activations_list, list_calls),
    }
    per_round: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for name, (fn, n) in sides.items():
            per_round[name].append(_seconds_per_call(fn, n))
    tensor, floor_name, lists = list(sides)
    _compare(
        report,
        "512x3584 float32 result, time per call",
        per_round,
        tensor,
        floor_name,
        target=2.0,
        lower_is_better=True,
    )
    _compare(
        report,
        "512x3584 result: list[list[float]] vs tensor",
        per_round,
        lists,
        tensor,
        target=8.0,
        lower_is_better=False,
    )


def _wire_bytes(report: Report, bare: httpx.Client, url: str) -> None:
    binary = bare.post(f"{url}/v1/call/activations", headers={"accept": BINARY})
    as_json = bare.post(f"{url}/v1/call/activations")
    lists = bare.post(f"{url}/v1/call/activations_list")
    limit = RAW_SIZE * 1.02 + 64 * 1024
    size = len(binary.content)
    report.figure(
        "bytes on the wire, binary framing",
        f"{size:,} ({size / RAW_SIZE:.4f}x raw {RAW_SIZE:,}); JSON form {len(as_json.content):,}"
        f" ({len(as_json.content) / RAW_SIZE:.2f}x); list[list[float]] {len(lists.content):,}"
        f" ({len(lists.content) / RAW_SIZE:.2f}x)",
        target="<= raw x 1.02 + 64 KiB",
        met=size <= limit,
    )


def _upload(
    report: Report, client: Any, bare: httpx.Client, raw_url: str, calls: int, rounds: int
) -> None:
    vector = np.random.default_rng(0).standard_normal(3584).astype(np.float32)
    as_list = vector.tolist()
    raw = vector.tobytes()
    assert client.steer(vector) == float(vector[0])
    n = calls * 20  # small calls: more of them
    sides = {
        "generated Client (tensor parameter)": lambda: client.steer(vector),
        "httpx.Client.post (raw bytes)": lambda: bare.post(f"{raw_url}/upload", content=raw),
        "generated Client (list[float] parameter)": lambda: client.steer_list(as_list),
    }
    per_round: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            per_round[name].append(_seconds_per_call(fn, n))
    tensor, floor_name, lists = list(sides)
    _compare(
        report,
        "3584-float steering vector upload, time per call",
        per_round,
        tensor,
        floor_name,
        target=2.0,
        lower_is_better=True,
    )
    _compare(
        report,
        "steering vector upload: list[float] vs tensor",
        per_round,
        lists,
        tensor,
        target=None,
        lower_is_better=False,
    )


def _encode_time(report: Report, calls: int, rounds: int) -> None:
    import torch

    from scopegen.server._tensors import TensorPolicy

    policy = TensorPolicy(result_tensors=True)
    scope = {"headers": [(b"accept", BINARY.encode())]}
    tensor = torch.randn(512, 3584)
    encode = []
    for _ in range(rounds * calls):
        t0 = time.perf_counter()
        policy.encode(scope, tensor)  # the body as the app sends it: one joined bytes
        encode.append(time.perf_counter() - t0)
    ms = median(encode) * 1000
    report.figure(
        "server-side encode of the 512x3584 result (binary framing, the whole body)",
        f"{fmt(ms)} ms",
        target="<= 5 ms",
        met=ms <= 5.0,
    )

if __name__ == "__main__":
    raise SystemExit(main())
