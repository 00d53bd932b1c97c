"""The MCP bridge's calls follow redirects as the generated client does (``protocol.next_hop``).

``Remote.call`` is driven through an ``httpx.MockTransport`` behind the same
``httpx.AsyncClient`` settings ``Remote.async_client`` makes; the bridge
against a real server is ``tests/e2e/test_mcp_bridge.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import orjson
import pytest

from scopegen import protocol
from scopegen.mcp import Remote
from scopegen.mcp._remote import CallOutcome, request_headers

URL = "http://srv.example"


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(anyio, "sleep", no_sleep)


def _call(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[CallOutcome, list[Any]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    environ = {"T": "tok", protocol.MODAL_KEY_ENV: "mk", protocol.MODAL_SECRET_ENV: "ms"}
    remote = Remote(URL, "T", request_headers("tok", environ), {"functions": []})

    async def main() -> CallOutcome:
        async with remote.async_client() as http:
            http._transport = httpx.MockTransport(record)
            return await remote.call(http, "echo", {"text": "x"})

    return anyio.run(main), seen


def test_a_poll_that_cannot_connect_retries_the_poll_never_the_call() -> None:
    polls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if request.method == "POST":
            return httpx.Response(303, headers={"location": "/poll/1"})
        polls += 1
        if polls == 1:
            raise httpx.ConnectError("blip", request=request)
        return httpx.Response(200, content=orjson.dumps({"result": "done"}))

    outcome, seen = _call(handler)
    assert outcome.ok and outcome.text == "done"
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/v1/call/echo"),
        ("GET", "/poll/1"),
        ("GET", "/poll/1"),
    ]


def test_polls_that_never_connect_say_the_call_may_still_be_running() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(303, headers={"location": "/poll/1"})
        raise httpx.ConnectError("down", request=request)

    outcome, seen = _call(handler)
    assert not outcome.ok and outcome.text.startswith("connection_lost:")
    assert "was not sent again" in outcome.text
    assert [r.method for r in seen].count("POST") == 1


def test_no_credentials_on_a_cross_origin_hop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(303, headers={"location": "https://other.example/poll"})
        return httpx.Response(200, content=orjson.dumps({"result": 1}))

    outcome, seen = _call(handler)
    assert outcome.ok
    for name in ("authorization", "modal-key", "modal-secret"):
        assert name in seen[0].headers
        assert name not in seen[1].headers, name


def test_a_301_on_the_call_is_an_error_saying_it_would_become_a_get() -> None:
    outcome, seen = _call(
        lambda r: httpx.Response(301, headers={"location": "https://srv.example/v1/call/echo"})
    )
    assert not outcome.ok and "turn the call into a GET" in outcome.text
    assert len(seen) == 1


@pytest.mark.parametrize("status", [408, 429])
def test_proxy_retry_statuses_are_retried_and_reported_by_code(status: int) -> None:
    answers = iter([httpx.Response(status), httpx.Response(status), httpx.Response(status)])
    outcome, seen = _call(lambda r: next(answers))
    assert len(seen) == 1 + protocol.MAX_RETRIES
    code = next(e.code for e in protocol.PROXY_ERRORS if e.status == status)
    assert outcome.text.startswith(f"{code} (HTTP {status}): ")
