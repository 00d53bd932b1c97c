"""Jobs over real HTTP on loopback (``docs/protocol.md``, Jobs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._protocol_cases import CASES, MAX_BODY, Case, encode
from tests._serving import RunningServer, running_server

HERE = Path(__file__).resolve().parents[1]
IFACE = HERE / "interfaces" / "server_stream.py"
BASIC = HERE / "interfaces" / "server_basic.py"
TOKEN = "j0b-token"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(IFACE, token=TOKEN) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv: RunningServer) -> Iterator[httpx.Client]:
    with srv.client(timeout=30) as c:
        yield c


def _wait(client: httpx.Client, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()["job"]
        if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def test_submit_then_read_the_result(client: httpx.Client) -> None:
    r = client.post("/v1/jobs/add", json={"a": 2, "b": 3})
    assert r.status_code == 202
    job = r.json()["job"]
    assert job["function"] == "add" and job["status"] in ("queued", "running", "succeeded")
    assert len(job["id"]) >= 22  # >= 128 random bits, url-safe base64
    done = _wait(client, job["id"])
    assert done["status"] == "succeeded" and done["result"] == 5
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]


def test_ids_are_unique_and_unguessable(client: httpx.Client) -> None:
    ids = {client.post("/v1/jobs/add", json={"a": 1}).json()["job"]["id"] for _ in range(20)}
    assert len(ids) == 20


def test_streaming_job_shows_items_while_running_and_lists_them_as_result(
    client: httpx.Client,
) -> None:
    job = client.post("/v1/jobs/count", json={"n": 3, "delay": 0.4}).json()["job"]
    time.sleep(0.3)
    running = client.get(f"/v1/jobs/{job['id']}").json()["job"]
    assert running["status"] == "running" and running["items"] == [0]
    done = _wait(client, job["id"])
    assert done["status"] == "succeeded" and done["result"] == [0, 1, 2]


@pytest.mark.parametrize("fn", ["fail_after", "afail_after"])
def test_failed_job_has_the_error(client: httpx.Client, fn: str) -> None:
    job = client.post(f"/v1/jobs/{fn}", json={"n": 1}).json()["job"]
    done = _wait(client, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "function_error"
    assert done["items"] == [0] if fn == "fail_after" else ["0"]


def test_cancelled_queued_job_never_runs(srv: RunningServer, client: httpx.Client) -> None:
    # One worker: the first job holds it, the second waits in the queue.
    first = client.post("/v1/jobs/slow", json={"seconds": 1.0, "tag": "first"}).json()["job"]
    queued = client.post("/v1/jobs/slow", json={"seconds": 0.1, "tag": "never"}).json()["job"]
    r = client.delete(f"/v1/jobs/{queued['id']}")
    assert r.status_code == 200 and r.json()["job"]["status"] == "cancelled"
    assert _wait(client, first["id"])["status"] == "succeeded"
    time.sleep(0.3)
    assert "MARK slow start first" in srv.log
    assert "MARK slow start never" not in srv.log
    assert _wait(client, queued["id"])["status"] == "cancelled"


def test_cancelled_running_stream_stops_at_its_next_item(
    srv: RunningServer, client: httpx.Client
) -> None:
    job = client.post("/v1/jobs/count", json={"n": 1003, "delay": 0.2}).json()["job"]
    time.sleep(0.5)
    assert client.delete(f"/v1/jobs/{job['id']}").json()["job"]["status"] == "cancelled"
    srv.wait_for_log("MARK count finally 1003", timeout=2.0)
    assert _wait(client, job["id"])["status"] == "cancelled"


def test_cancelled_running_plain_job_drops_its_result(client: httpx.Client) -> None:
    job = client.post("/v1/jobs/slow", json={"seconds": 0.5, "tag": "dropped"}).json()["job"]
    time.sleep(0.2)
    client.delete(f"/v1/jobs/{job['id']}")
    time.sleep(0.6)
    done = client.get(f"/v1/jobs/{job['id']}").json()["job"]
    assert done["status"] == "cancelled" and "result" not in done


def test_unknown_job_and_methods(client: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        r = client.request(method, "/v1/jobs/does-not-exist")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_job"
    # The Allow header lists what the path's OpenAPI operation documents.
    r = client.put("/v1/jobs/add")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.put("/v1/jobs/does-not-exist")
    assert r.status_code == 405 and r.headers["allow"] == "GET, DELETE"


def test_invalid_arguments_queue_nothing(srv: RunningServer, client: httpx.Client) -> None:
    r = client.post("/v1/jobs/slow", json={"seconds": "soon", "tag": "invalid"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_arguments"
    time.sleep(0.2)
    assert "MARK slow start invalid" not in srv.log


def test_jobs_need_the_token(srv: RunningServer) -> None:
    for method, path in (("POST", "/v1/jobs/add"), ("GET", "/v1/jobs/x"), ("DELETE", "/v1/jobs/x")):
        r = httpx.request(method, srv.url + path, json={"a": 1})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "bad_request"),
        (b"[1]", "bad_request"),
        (b'{"n": "3"}', "invalid_arguments"),
        (b'{"n": 3, "zzz": 1}', "invalid_arguments"),
    ],
)
@pytest.mark.parametrize("route", ["/v1/call/count", "/v1/jobs/count", "/v1/call/acount"])
def test_bad_inputs_get_the_same_answers_on_stream_and_job_routes(
    client: httpx.Client, route: str, content: bytes, code: str
) -> None:
    plain = client.post("/v1/call/add", content=content.replace(b'"n"', b'"a"'))
    r = client.post(route, content=content)
    assert r.headers["content-type"] == "application/json"
    assert (r.status_code, r.json()["error"]["code"]) == (plain.status_code, code)


@pytest.mark.parametrize("route", ["/v1/call/", "/v1/jobs/"])
def test_unknown_names_are_unknown_functions(client: httpx.Client, route: str) -> None:
    r = client.post(route + "__class__", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_function"


def test_max_jobs_evicts_the_oldest_finished_and_refuses_when_none_finished() -> None:
    with (
        running_server(IFACE, args=["--max-jobs", "50", "--no-access-log"]) as s,
        s.client(timeout=30) as c,
    ):
        statuses: list[int] = []
        ids: list[str] = []
        for _ in range(300):
            r = c.post("/v1/jobs/add", json={"a": 1})
            statuses.append(r.status_code)
            if r.status_code == 202:
                ids.append(r.json()["job"]["id"])
            else:
                assert r.json()["error"]["code"] == "too_many_jobs"
                assert r.headers["retry-after"] == "1"
        assert set(statuses) <= {202, 429} and statuses.count(202) >= 50
        # The table keeps at most 50: the earliest jobs were evicted, the last is kept.
        kept = [i for i in ids if c.get(f"/v1/jobs/{i}").status_code == 200]
        assert 0 < len(kept) <= 50
        assert ids[-1] in kept and ids[0] not in kept
        # Full of unfinished jobs: refused.
        busy = [c.post("/v1/jobs/slow", json={"seconds": 2}).status_code for _ in range(60)]
        assert busy.count(202) <= 50 and 429 in busy
        assert c.get("/healthz").status_code == 200


def test_finished_jobs_expire_after_the_ttl() -> None:
    with running_server(IFACE, args=["--job-ttl", "0.5"]) as s, s.client() as c:
        job = c.post("/v1/jobs/add", json={"a": 1}).json()["job"]
        assert _wait(c, job["id"])["status"] == "succeeded"
        time.sleep(0.7)
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 404


# The shared protocol table: every answer given before a call runs is the same on the job route.
_BEFORE_RUN = [c for c in CASES if c.values[0].code is not None and c.values[0].status < 500]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def basic() -> Iterator[httpx.Client]:
    with (
        running_server(BASIC, token=TOKEN, args=["--max-body", str(MAX_BODY)]) as s,
        s.client(timeout=30) as c,
    ):
        yield c


@pytest.mark.parametrize("case", _BEFORE_RUN)
def test_protocol_case_on_the_job_route(basic: httpx.Client, case: Case) -> None:
    r = basic.post(f"/v1/jobs/{case.function}", content=encode(case.args))
    assert r.headers["content-type"] == "application/json"
    case.check(r.status_code, r.json())


def test_job_answers_are_what_openapi_documents(client: httpx.Client) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    doc = client.get("/openapi.json").json()

    def check(path: str, method: str, r: httpx.Response) -> None:
        response = doc["paths"][path][method]["responses"][str(r.status_code)]
        schema = response["content"]["application/json"]["schema"]
        root = {"$ref": "#/$defs/t", "$defs": {"t": schema}, "components": doc["components"]}
        assert not [e.message for e in Draft202012Validator(root).iter_errors(r.json())]

    submitted = client.post("/v1/jobs/count", json={"n": 2})
    check("/v1/jobs/count", "post", submitted)
    job_id = submitted.json()["job"]["id"]
    _wait(client, job_id)
    check("/v1/jobs/{job_id}", "get", client.get(f"/v1/jobs/{job_id}"))
    check("/v1/jobs/{job_id}", "delete", client.delete(f"/v1/jobs/{job_id}"))
    check("/v1/jobs/{job_id}", "get", client.get("/v1/jobs/missing"))
    check("/v1/jobs/add", "post", client.post("/v1/jobs/add", json={"a": "x"}))
    failed = client.post("/v1/jobs/fail_after", json={"n": 0}).json()["job"]["id"]
    _wait(client, failed)
    check("/v1/jobs/{job_id}", "get", client.get(f"/v1/jobs/{failed}"))
