"""The generated client's transport, through ``httpx.MockTransport`` passed as ``http_client=``.

``tests/interfaces/client_rich.py`` is built into a package and imported in
this process (it needs only httpx, orjson and pydantic). Each test drives the
public API, ``Client(url, http_client=httpx.Client(transport=...))``, and
checks the requests that reached the transport: what the real server cannot
be made to do (a 303 chain whose poll fails, a cross-origin hop, a 429 with a
date, a 301) is answered by the mock. Against a real server:
``tests/e2e/test_client_e2e.py``.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scopegen.analyze import analyze_file
from scopegen.emit import emit_client

ROOT = Path(__file__).resolve().parents[2]
RICH = ROOT / "tests" / "interfaces" / "client_rich.py"
PACKAGE = "transport_rich"
URL = "http://srv.example"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    out = tmp_path_factory.mktemp("client")
    for rel, text in emit_client(analyze_file(RICH).interface, package=PACKAGE).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    src = str(out / PACKAGE / "src")
    sys.path.insert(0, src)
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(src)
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _no_waiting(pkg: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries sleep for real elsewhere; here each wait is recorded and skipped."""
    waits: list[float] = []
    base = sys.modules[f"{PACKAGE}._base_client"]

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(base.time, "sleep", waits.append)
    monkeypatch.setattr(base, "_sleep", no_sleep)
    monkeypatch.delenv("MODAL_KEY", raising=False)
    monkeypatch.delenv("MODAL_SECRET", raising=False)
    return waits


def _result(value: object, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=orjson.dumps({"result": value}), headers=headers)


class Mock:
    """A transport that records every request and answers through ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        return self.handler(request)

    def client(self, pkg: ModuleType, **kwargs: Any) -> Any:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return pkg.Client(URL, http_client=http, **kwargs)

    def async_client(self, pkg: ModuleType, **kwargs: Any) -> Any:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return pkg.AsyncClient(URL, http_client=http, **kwargs)

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "POST"]


def _poll_chain(first_poll_fails: int) -> Handler:
    """POST -> 303 /poll/1; the first ``first_poll_fails`` polls cannot connect; then a result."""
    polls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if request.method == "POST":
            return httpx.Response(303, headers={"location": "/poll/1"})
        polls += 1
        if polls <= first_poll_fails:
            raise httpx.ConnectError("network blip", request=request)
        return _result("done")

    return handler


# --------------------------------------------------------------------------- redirects


def test_a_poll_that_cannot_connect_retries_the_poll_and_posts_exactly_once(
    pkg: ModuleType,
) -> None:
    mock = Mock(_poll_chain(first_poll_fails=1))
    assert mock.client(pkg).echo("x") == "done"
    assert [(r.method, r.url.path) for r in mock.seen] == [
        ("POST", "/v1/call/echo"),
        ("GET", "/poll/1"),
        ("GET", "/poll/1"),
    ]


def test_async_a_poll_that_cannot_connect_posts_exactly_once(pkg: ModuleType) -> None:
    mock = Mock(_poll_chain(first_poll_fails=1))

    async def main() -> str:
        async with mock.async_client(pkg) as client:
            result: str = await client.echo("x")
            return result

    assert asyncio.run(main()) == "done"
    assert len(mock.posts) == 1


def test_polls_that_never_connect_end_in_connection_lost_not_a_second_post(
    pkg: ModuleType,
) -> None:
    mock = Mock(_poll_chain(first_poll_fails=100))
    with pytest.raises(pkg.ConnectionLost, match="may still be running") as info:
        mock.client(pkg, max_retries=2).echo("x")
    assert not isinstance(info.value, pkg.ConnectionFailed)
    assert len(mock.posts) == 1
    assert len(mock.seen) == 1 + 3  # the poll was tried 1 + max_retries times
    assert info.value.request_id == mock.seen[0].headers["x-request-id"]


def test_credentials_go_to_the_configured_origin_only(
    pkg: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAL_KEY", "mk")
    monkeypatch.setenv("MODAL_SECRET", "ms")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(303, headers={"location": "/poll/1"})
        if request.url.host == "srv.example":
            return httpx.Response(303, headers={"location": "http://other.example/poll/2"})
        return _result("done")

    mock = Mock(handler)
    assert mock.client(pkg, token="tok").echo("x") == "done"
    same, other = mock.seen[1], mock.seen[2]
    for header in ("authorization", "modal-key", "modal-secret"):
        assert header in mock.seen[0].headers and header in same.headers
        assert header not in other.headers, header
    # One request id follows the call through every hop.
    assert len({r.headers["x-request-id"] for r in mock.seen}) == 1


def test_credentials_are_dropped_on_a_cross_origin_hop_of_an_owned_client(
    pkg: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An owned httpx client carries the credentials itself (client-level headers).
    monkeypatch.setenv("MODAL_KEY", "mk")
    monkeypatch.setenv("MODAL_SECRET", "ms")
    mock = Mock(
        lambda r: (
            httpx.Response(303, headers={"location": "https://elsewhere.example/p"})
            if r.method == "POST"
            else _result("ok")
        )
    )
    client = pkg.Client(URL, token="tok")
    client._client._transport = httpx.MockTransport(mock)
    assert client.echo("x") == "ok"
    assert "modal-key" in mock.seen[0].headers
    assert not {"authorization", "modal-key", "modal-secret"} & set(mock.seen[1].headers)


@pytest.mark.parametrize("status", [301, 302])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_an_error_saying_so(
    pkg: ModuleType, status: int
) -> None:
    mock = Mock(lambda r: httpx.Response(status, headers={"location": "https://srv.example/"}))
    with pytest.raises(pkg.UnexpectedRedirect, match="turn the call into a GET") as info:
        mock.client(pkg).echo("x")
    assert "https://srv.example/" in str(info.value)
    assert [r.method for r in mock.seen] == ["POST"]  # nothing followed


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_repeat_the_post_with_its_body(pkg: ModuleType, status: int) -> None:
    mock = Mock(
        lambda r: (
            httpx.Response(status, headers={"location": "/v1/call/echo2"})
            if r.url.path == "/v1/call/echo"
            else _result(orjson.loads(r.content)["text"])
        )
    )
    assert mock.client(pkg).echo("again") == "again"
    assert [(r.method, r.url.path) for r in mock.seen] == [
        ("POST", "/v1/call/echo"),
        ("POST", "/v1/call/echo2"),
    ]


def test_the_redirect_budget_is_scopegens_even_through_an_injected_client(
    pkg: ModuleType,
) -> None:
    # httpx caps its own redirects at 20: Modal polls every ~150 s, so that is 50 minutes.
    hops = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal hops
        hops += 1
        if hops <= 30:
            return httpx.Response(303, headers={"location": f"/poll/{hops}"})
        return _result("done")

    mock = Mock(handler)
    assert mock.client(pkg).echo("x") == "done"
    assert len(mock.posts) == 1 and len(mock.seen) == 31


def test_an_injected_client_with_httpx_default_timeout_gets_scopegens(pkg: ModuleType) -> None:
    base = sys.modules[f"{PACKAGE}._base_client"]
    assert pkg.Client(URL, http_client=httpx.Client()).timeout == base.DEFAULT_TIMEOUT
    # One configured on purpose is kept; an explicit timeout= wins over both.
    theirs = httpx.Timeout(30.0)
    assert pkg.Client(URL, http_client=httpx.Client(timeout=theirs)).timeout == theirs
    assert pkg.Client(URL, http_client=httpx.Client(), timeout=7).timeout.read == 7
    # ... and is what each request carries (httpx reads it from the request).
    mock = Mock(lambda r: _result(str(r.extensions["timeout"]["read"])))
    assert mock.client(pkg).echo("x") == str(base.DEFAULT_TIMEOUT.read)


# --------------------------------------------------------------------------- retries


def test_429_and_408_are_retried_honouring_retry_after(
    pkg: ModuleType, _no_waiting: list[float]
) -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after": "2"}),
            httpx.Response(408, headers={"retry-after": email.utils.formatdate(time.time() + 9)}),
            _result("ok"),
        ]
    )
    mock = Mock(lambda r: next(answers))
    assert mock.client(pkg).echo("x") == "ok"
    assert len(mock.posts) == 3
    assert _no_waiting[0] == 2.0
    assert 7.0 <= _no_waiting[1] <= 9.0


@pytest.mark.parametrize("retry_after", ["3600", "__date__"])
def test_a_retry_after_past_the_cap_is_not_waited_for(
    pkg: ModuleType, retry_after: str, _no_waiting: list[float]
) -> None:
    if retry_after == "__date__":
        retry_after = email.utils.formatdate(time.time() + 3600, usegmt=True)
    mock = Mock(lambda r: httpx.Response(429, headers={"retry-after": retry_after}))
    with pytest.raises(pkg.RateLimited) as info:
        mock.client(pkg).echo("x")
    assert len(mock.posts) == 1 and _no_waiting == []
    assert info.value.status == info.value.status_code == 429


@pytest.mark.parametrize(
    ("status", "cls"), [(403, "Forbidden"), (409, "Conflict"), (429, "RateLimited")]
)
def test_bare_proxy_statuses_get_their_own_classes(pkg: ModuleType, status: int, cls: str) -> None:
    mock = Mock(lambda r: httpx.Response(status, text="from a proxy"))
    with pytest.raises(getattr(pkg, cls)) as info:
        mock.client(pkg, max_retries=0).echo("x")
    assert isinstance(info.value, pkg.RemoteError)
    assert info.value.request_id == mock.seen[0].headers["x-request-id"]


def test_a_connect_error_before_the_post_is_retried_then_connection_failed(
    pkg: ModuleType,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    mock = Mock(refuse)
    with pytest.raises(pkg.ConnectionFailed, match="tried 3 times") as info:
        mock.client(pkg).echo("x")
    assert len(mock.posts) == 3
    assert info.value.request_id == mock.seen[0].headers["x-request-id"]


# --------------------------------------------------------------------------- errors


def _instances(pkg: ModuleType) -> list[BaseException]:
    """One instance of every exception class the package exports, with attributes set."""
    out: list[BaseException] = []
    for name in pkg.__all__:
        cls = getattr(pkg, name)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        if issubclass(cls, pkg.RemoteError):
            body = {"type": "ValueError", "traceback": "tb", "details": [{"loc": ["a"]}]}
            err = cls("msg", code="some_code", status=418, request_id="rid-1", body=body)
        elif issubclass(cls, pkg.InvalidResponse):
            err = cls("msg", body=b'{"result": 1}', value=1, request_id="rid-2")
        elif issubclass(cls, pkg.ArgumentNotSerializable):
            err = cls("msg", function="echo", argument="text")
        elif issubclass(cls, Warning):
            continue
        else:
            err = cls("msg")
            err.request_id = "rid-3"
        err.hint = "the hint"
        out.append(err)
    return out


def test_every_error_class_pickles_with_its_attributes(pkg: ModuleType) -> None:
    instances = _instances(pkg)
    assert len(instances) >= 20
    for err in instances:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert str(back) == str(err)
        assert vars(back) == vars(err), type(err).__name__
        assert back.args == err.args


def test_invalid_response_keeps_the_finished_result_and_the_request_id(pkg: ModuleType) -> None:
    mock = Mock(lambda r: _result({"not": "a string"}))
    with pytest.raises(pkg.InvalidResponse) as info:
        mock.client(pkg).echo("x")
    err = info.value
    assert err.value == {"not": "a string"}
    assert orjson.loads(err.body) == {"result": {"not": "a string"}}
    assert err.request_id == mock.seen[0].headers["x-request-id"]


def test_an_argument_that_is_not_json_names_the_function_and_the_argument(
    pkg: ModuleType,
) -> None:
    mock = Mock(lambda r: _result("never"))
    with pytest.raises(pkg.ArgumentNotSerializable, match=r"echo\(\): argument 'text'") as info:
        mock.client(pkg).echo({1, 2})
    assert isinstance(info.value, TypeError) and isinstance(info.value, pkg.ScopegenError)
    assert (info.value.function, info.value.argument) == ("echo", "text")
    assert mock.seen == []  # nothing was sent


def test_numpy_values_and_integers_wider_than_64_bits_encode(pkg: ModuleType) -> None:
    answers = {"stats": {}, "pair": [3, 4], "big": "ok"}
    mock = Mock(lambda r: _result(answers[r.url.path.rsplit("/", 1)[1]]))
    client = mock.client(pkg)
    client.stats([np.float32(1.5), np.float64(2.0)])
    client.pair(np.int64(3), b=np.int32(4))
    client.stats(np.arange(3.0))
    client.big(2**70)
    bodies = [r.content for r in mock.seen]
    assert [orjson.loads(b) for b in bodies[:3]] == [
        {"values": [1.5, 2.0], "weights": None},
        {"a": 3, "b": 4},
        {"values": [0.0, 1.0, 2.0], "weights": None},
    ]
    # orjson cannot hold 2**70; the body carries it exactly (the server reads it exactly).
    assert bodies[3] == b'{"n":1180591620717411303424}'


def test_every_error_carries_a_request_id_that_the_client_sent(pkg: ModuleType) -> None:
    mock = Mock(lambda r: httpx.Response(500, text="proxy trouble"))
    with pytest.raises(pkg.RemoteError) as info:
        mock.client(pkg).echo("x")
    sent = mock.seen[0].headers["x-request-id"]
    assert sent and info.value.request_id == sent
    assert sent in str(info.value)


def test_a_closed_client_raises_a_scopegen_error(pkg: ModuleType) -> None:
    client = pkg.Client(URL)
    client.close()
    with pytest.raises(pkg.ClientClosed, match="closed"):
        client.echo("x")


# --------------------------------------------------------------------------- hints


def test_401_names_the_token_variable(pkg: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRANSPORT_RICH_TOKEN", raising=False)
    monkeypatch.delenv("SCOPEGEN_TOKEN", raising=False)
    mock = Mock(
        lambda r: httpx.Response(401, json={"error": {"code": "unauthorized", "message": "m"}})
    )
    with pytest.raises(pkg.Unauthorized, match="no token was sent: set TRANSPORT_RICH_TOKEN"):
        mock.client(pkg).echo("x")
    monkeypatch.setenv("TRANSPORT_RICH_TOKEN", "wrong")
    with pytest.raises(pkg.Unauthorized, match="token from TRANSPORT_RICH_TOKEN was refused"):
        mock.client(pkg).echo("x")


def test_a_refused_connection_to_the_default_url_says_the_url_variable_is_unset(
    pkg: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRANSPORT_RICH_URL", raising=False)
    monkeypatch.delenv("SCOPEGEN_URL", raising=False)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(pkg.ConnectionFailed, match="TRANSPORT_RICH_URL is not set"):
        pkg.Client(http_client=http, max_retries=0).echo("x")
    monkeypatch.setenv("TRANSPORT_RICH_URL", "http://gpu.example:9000")
    with pytest.raises(
        pkg.ConnectionFailed, match=r"http://gpu.example:9000 came from TRANSPORT_RICH_URL"
    ):
        pkg.Client(http_client=http, max_retries=0).echo("x")


def test_a_base_url_ending_in_v1_says_use_the_server_root(pkg: ModuleType) -> None:
    body = {"error": {"code": "not_found", "message": "no such route"}}
    mock = Mock(lambda r: httpx.Response(404, json=body))
    http = httpx.Client(transport=httpx.MockTransport(mock))
    with pytest.raises(
        pkg.NotFound, match=r"ends in /v1: use the server root \(http://srv.example\)"
    ):
        pkg.Client(URL + "/v1", http_client=http).echo("x")


# --------------------------------------------------------------------------- drift


def test_drift_warns_once_per_new_hash_and_every_later_error_names_it(pkg: ModuleType) -> None:
    hashes = iter(["aaaa", "aaaa", "bbbb", pkg.__interface_hash__])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="x", headers={"x-scopegen-interface-hash": next(hashes)})

    client = Mock(handler).client(pkg, max_retries=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for expected in ("aaaa", "aaaa", "bbbb"):
            with pytest.raises(pkg.RemoteError) as info:
                client.echo("x")
            assert f"serves interface hash {expected}" in str(info.value)
        with pytest.raises(pkg.RemoteError) as info:
            client.echo("x")
        assert info.value.interface_mismatch is None  # the server serves ours again
    mismatch = [w for w in caught if issubclass(w.category, pkg.InterfaceMismatchWarning)]
    assert [("aaaa" in str(w.message), "bbbb" in str(w.message)) for w in mismatch] == [
        (True, False),
        (False, True),
    ]
    assert all(w.filename == __file__ for w in mismatch)  # points at the caller's line


# --------------------------------------------------------------------------- raw responses


def test_with_raw_response_gives_status_headers_request_id_and_timing(pkg: ModuleType) -> None:
    mock = Mock(
        lambda r: _result("ok", **{"server-timing": "queue;dur=1.5, run;dur=20.25", "x-a": "b"})
    )
    raw = mock.client(pkg).with_raw_response.echo("x")
    assert isinstance(raw, pkg.RawResponse)
    assert raw.status_code == 200 and raw.headers["x-a"] == "b"
    assert raw.request_id == mock.seen[0].headers["x-request-id"]
    assert raw.server_timing == {"queue": 1.5, "run": 20.25}
    assert raw.elapsed >= 0.0
    assert raw.parse() == "ok"


def test_async_with_raw_response_raises_error_answers_as_the_plain_method(
    pkg: ModuleType,
) -> None:
    body = {"error": {"code": "function_error", "message": "boom", "type": "ValueError"}}
    mock = Mock(lambda r: httpx.Response(500, json=body))

    async def main() -> None:
        async with mock.async_client(pkg) as client:
            with pytest.raises(pkg.FunctionError, match="boom"):
                await client.with_raw_response.echo("x")

    asyncio.run(main())


# --------------------------------------------------------------------------- models


def test_models_name_their_fields_before_the_first_instance(pkg: ModuleType) -> None:
    import inspect

    assert str(inspect.signature(pkg.types.Span)) == (
        "(*, start: int, end: int, label: str = None) -> None"
    )
    params = inspect.signature(pkg.types.Box).parameters
    assert list(params) == ["width", "height", "tags"]
    assert params["tags"].default == []
    assert list(inspect.signature(pkg.types.Meta).parameters) == ["schema_", "model_id", "json_"]


def test_renamed_fields_build_under_the_python_and_the_wire_name(pkg: ModuleType) -> None:
    by_python = pkg.types.Meta(schema_="s", model_id="m", json_=1)
    by_wire = pkg.types.Meta.model_validate({"schema": "s", "model_id": "m", "json": 1})
    assert by_python == by_wire and by_python.schema_ == "s" and by_python.json_ == 1
    assert by_python.model_dump(by_alias=True) == {"schema": "s", "model_id": "m", "json": 1}


def test_a_received_model_is_sent_back_unchanged(pkg: ModuleType) -> None:
    # The server left out ``label`` and ``tags``: the client must not send None for them.
    report = {
        "title": "t",
        "color": "red",
        "level": 1,
        "spans": [{"start": 0, "end": 1}],
        "box": {"width": 2.0, "height": 1.0},
        "area": 0.0,
    }
    answers = iter([_result(report), _result(2.0)])
    mock = Mock(lambda r: next(answers))
    client = mock.client(pkg)
    got = client.make_report("t")
    assert got.spans[0].label is None and got.box.tags == []
    client.box_area(got.box)
    assert orjson.loads(mock.seen[1].content) == {"box": {"width": 2.0, "height": 1.0}}


def test_fields_from_a_newer_server_are_kept(pkg: ModuleType) -> None:
    box = pkg.types.Box.model_validate({"width": 1.0, "depth": 3.0})
    assert box.model_extra == {"depth": 3.0}


def test_an_enum_value_the_client_does_not_know_keeps_the_result_and_warns(
    pkg: ModuleType,
) -> None:
    report = {"title": "t", "color": "pink", "level": 3, "spans": []}
    mock = Mock(lambda r: _result(report))
    with pytest.warns(pkg.InterfaceMismatchWarning, match="'pink' is not a known Color"):
        got = mock.client(pkg).make_report("t")
    assert got.color == "pink" and got.color.name == "UNKNOWN_pink"
    assert got.level.value == 3
    assert isinstance(got.color, pkg.types.Color)
