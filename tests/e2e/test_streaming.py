"""Streaming results over real HTTP on loopback (``docs/protocol.md``, Streaming results)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests._serving import RunningServer, running_server

IFACE = Path(__file__).parents[1] / "interfaces" / "server_stream.py"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(IFACE, args=["--max-concurrency", "4"]) as s:
        yield s


def _lines(r: httpx.Response) -> list[dict[str, object]]:
    assert r.text.endswith("\n")
    return [orjson.loads(line) for line in r.text.splitlines()]


@pytest.mark.parametrize("fn", ["count", "acount"])
def test_stream_is_ndjson_items_then_done(srv: RunningServer, fn: str) -> None:
    r = httpx.post(f"{srv.url}/v1/call/{fn}", json={"n": 3})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["x-request-id"]
    assert _lines(r) == [{"item": 0}, {"item": 1}, {"item": 2}, {"done": True}]


def test_items_are_validated_types(srv: RunningServer) -> None:
    r = httpx.post(f"{srv.url}/v1/call/tokens", json={"text": "a b"})
    assert _lines(r) == [
        {"item": {"index": 0, "text": "a"}},
        {"item": {"index": 1, "text": "b"}},
        {"done": True},
    ]


@pytest.mark.parametrize(
    ("fn", "items", "kind"),
    [("fail_after", [0, 1], "ValueError"), ("afail_after", ["0", "1"], "RuntimeError")],
)
def test_midstream_raise_is_items_then_error_and_no_done(
    srv: RunningServer, fn: str, items: list[object], kind: str
) -> None:
    lines = _lines(httpx.post(f"{srv.url}/v1/call/{fn}", json={"n": 2}))
    assert [line["item"] for line in lines[:-1]] == items
    error = lines[-1]["error"]
    assert isinstance(error, dict)
    assert error["code"] == "function_error" and error["type"] == kind
    assert "scopegen/server" not in str(error["traceback"])  # starts in the user's code


def test_unserializable_item_ends_the_stream(srv: RunningServer) -> None:
    lines = _lines(httpx.post(f"{srv.url}/v1/call/bad_item"))
    assert lines[0] == {"item": 1}
    assert lines[1]["error"]["code"] == "unserializable_result"  # type: ignore[index]
    assert len(lines) == 2


@pytest.mark.parametrize("fn", ["count", "acount"])
def test_first_item_arrives_as_produced(srv: RunningServer, fn: str) -> None:
    t0 = time.monotonic()
    arrivals = []
    with httpx.stream("POST", f"{srv.url}/v1/call/{fn}", json={"n": 3, "delay": 1.0}) as r:
        for line in r.iter_lines():
            arrivals.append((time.monotonic() - t0, orjson.loads(line)))
    assert arrivals[0][1] == {"item": 0} and arrivals[0][0] < 1.5
    assert arrivals[1][0] >= 0.9  # not buffered until the end: the second came later
    assert arrivals[-1][1] == {"done": True}


@pytest.mark.parametrize(("fn", "delay"), [("count", 0.2), ("acount", 30.0)])
def test_disconnect_runs_finally_within_a_second(srv: RunningServer, fn: str, delay: float) -> None:
    n = 1000 + (1 if fn == "count" else 2)
    with httpx.stream("POST", f"{srv.url}/v1/call/{fn}", json={"n": n, "delay": delay}) as r:
        first = next(r.iter_lines())
        assert orjson.loads(first) == {"item": 0}
    t0 = time.monotonic()
    srv.wait_for_log(f"MARK {fn} finally {n}", timeout=5.0)
    assert time.monotonic() - t0 < 1.0
    assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_bad_arguments_are_answered_before_streaming(srv: RunningServer) -> None:
    r = httpx.post(f"{srv.url}/v1/call/count", json={"n": "3"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"


def test_streams_are_logged(srv: RunningServer) -> None:
    httpx.post(f"{srv.url}/v1/call/tokens", json={"text": "x"}, headers={"x-request-id": "tok-1"})
    assert "call tokens 200" in srv.wait_for_log("tok-1")


def test_item_timeout_ends_the_stream() -> None:
    with running_server(IFACE, args=["--item-timeout", "0.5"]) as s:
        lines = _lines(httpx.post(f"{s.url}/v1/call/count", json={"n": 3, "delay": 1.0}))
        assert lines[0] == {"item": 0}
        assert lines[-1]["error"]["code"] == "timeout"  # type: ignore[index]
        assert {"done": True} not in lines


def test_a_timed_out_sync_stream_counts_as_a_stuck_worker_until_it_stops() -> None:
    args = ["--call-timeout", "0.5", "--max-concurrency", "1"]
    with running_server(IFACE, args=args) as s:
        lines = _lines(httpx.post(f"{s.url}/v1/call/count", json={"n": 1006, "delay": 1.5}))
        assert lines[0] == {"item": 0} and lines[-1]["error"]["code"] == "timeout"  # type: ignore[index]
        # The only worker sleeps in the generator until its next yield: degraded, then healthy.
        assert httpx.get(f"{s.url}/healthz").status_code == 503
        s.wait_for_log("MARK count finally 1006", timeout=3.0)
        time.sleep(0.1)
        assert httpx.get(f"{s.url}/healthz").status_code == 200
        assert _lines(httpx.post(f"{s.url}/v1/call/count", json={"n": 2}))[-1] == {"done": True}


def test_every_line_is_what_openapi_documents(srv: RunningServer) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    doc = httpx.get(f"{srv.url}/openapi.json").json()
    for fn, args in (("tokens", {"text": "a b"}), ("fail_after", {"n": 1}), ("bad_item", {})):
        ok = doc["paths"][f"/v1/call/{fn}"]["post"]["responses"]["200"]
        schema = ok["content"]["application/x-ndjson"]["schema"]
        root = {"$ref": "#/$defs/t", "$defs": {"t": schema}, "components": doc["components"]}
        validator = Draft202012Validator(root)
        for line in _lines(httpx.post(f"{srv.url}/v1/call/{fn}", json=args)):
            assert not [e.message for e in validator.iter_errors(line)], (fn, line)
