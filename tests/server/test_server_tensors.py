"""Tensors through the ASGI app in-process: the JSON form, the binary framing, lying headers."""

from __future__ import annotations

import asyncio
import base64
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ml_dtypes
import numpy as np
import orjson
import pytest

from scopegen import protocol
from scopegen.server import ScopegenApp, ServerSettings, create_app

IFACE = Path(__file__).resolve().parents[1] / "interfaces" / "tensor_echo.py"
BINARY = protocol.TENSOR_MEDIA_TYPE
DTYPES = {
    "bool": np.bool_,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}


@pytest.fixture(scope="module")
def app() -> Iterator[ScopegenApp]:
    app = create_app(IFACE, ServerSettings(access_log=False))
    yield app
    app.close()


def post(app: ScopegenApp, fn: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post(f"/v1/call/{fn}", **kwargs)

    return asyncio.run(go())


def json_form(a: np.ndarray) -> dict[str, Any]:
    data = base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()
    return {"$tensor": {"dtype": a.dtype.name, "shape": list(a.shape), "data": data}}


def from_json_form(obj: dict[str, Any]) -> np.ndarray:
    h = obj["$tensor"]
    return np.frombuffer(base64.b64decode(h["data"]), DTYPES[h["dtype"]]).reshape(h["shape"])


def binary_body(envelope: dict[str, Any], buffers: bytes) -> bytes:
    env = orjson.dumps(envelope)
    head = struct.pack("<4sI", protocol.TENSOR_MAGIC, len(env)) + env
    return head + bytes(-len(head) % protocol.TENSOR_ALIGN) + buffers


def parse_binary(body: bytes) -> tuple[Any, bytes]:
    magic, n = struct.unpack_from("<4sI", body)
    assert magic == protocol.TENSOR_MAGIC
    start = -(-(8 + n) // protocol.TENSOR_ALIGN) * protocol.TENSOR_ALIGN
    return orjson.loads(body[8 : 8 + n]), body[start:]


def sample(dtype: str, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    values = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) - 2.5
    if dtype == "bool":
        return values > 0
    return values.astype(DTYPES[dtype])


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("fn", ["echo_torch", "echo_numpy"])
def test_every_dtype_round_trips_exactly_in_the_json_form(
    app: ScopegenApp, fn: str, dtype: str
) -> None:
    for shape in [(2, 3), (), (0,), (1, 0, 4)]:
        a = sample(dtype, shape)
        r = post(app, fn, json={"x": json_form(a)})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        out = from_json_form(r.json()["result"])
        assert out.dtype == a.dtype and out.shape == a.shape
        assert out.tobytes() == a.tobytes()


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype_round_trips_exactly_in_the_binary_framing(
    app: ScopegenApp, dtype: str
) -> None:
    a = sample(dtype, (3, 5))
    header = {"dtype": dtype, "shape": [3, 5], "offset": 0, "nbytes": a.nbytes}
    body = binary_body({"x": {"$tensor": header}}, a.tobytes())
    headers = {"content-type": BINARY, "accept": BINARY}
    r = post(app, "echo_torch", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == BINARY
    env, buffers = parse_binary(r.content)
    h = env["result"]["$tensor"]
    assert h == {"dtype": dtype, "shape": [3, 5], "offset": 0, "nbytes": a.nbytes}
    assert buffers[h["offset"] : h["offset"] + h["nbytes"]] == a.tobytes()


def test_the_function_receives_the_kind_its_annotation_names(app: ScopegenApp) -> None:
    a = sample("float32")
    r = post(app, "kind_of", json={"t": json_form(a), "a": json_form(a)})
    assert r.json() == {"result": ["torch.Tensor", "numpy.ndarray"]}


def test_arguments_are_writable_copies(app: ScopegenApp) -> None:
    x, v = sample("float32", (4,)), np.ones(4, dtype=np.float32)
    r = post(app, "add_float32", json={"x": json_form(x), "v": json_form(v)})
    assert from_json_form(r.json()["result"]).tolist() == (x + v).tolist()


def test_a_declared_dtype_refuses_another(app: ScopegenApp) -> None:
    r = post(
        app,
        "add_float32",
        json={"x": json_form(sample("float64")), "v": json_form(sample("float32"))},
    )
    assert r.status_code == 422
    (d,) = r.json()["error"]["details"]
    assert d["loc"] == ["x"] and "dtype 'float64' is not one of float32" in d["msg"]


def test_results_hold_tensors_anywhere_and_the_server_detaches_and_copies(
    app: ScopegenApp,
) -> None:
    r = post(app, "hidden", json={"n": 3})
    result = r.json()["result"]
    assert result["layer"] == 3
    h = from_json_form(result["hidden"])
    assert h.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).T.tolist()
    r = post(app, "bare")
    out = {
        k: from_json_form(v) if isinstance(v, dict) else v for k, v in r.json()["result"].items()
    }
    assert out["empty"].shape == (2, 0) and out["empty"].dtype == np.int16
    assert out["scalar"].shape == () and out["scalar"].item() == 3.5
    assert out["bf16"].dtype == ml_dtypes.bfloat16 and out["bf16"].tolist() == [1.0, 1.0, 1.0]
    assert out["strided"].tolist() == [0, 2, 4, 6, 8]
    assert out["big_endian"].tolist() == [0.0, 1.0, 2.0]
    assert out["n"] == 1.5


def test_binary_results_of_nested_tensors_point_into_aligned_buffers(app: ScopegenApp) -> None:
    xs = [sample("int8", (3,)), sample("float64", (2, 2))]
    r = post(
        app,
        "many",
        json={"xs": [json_form(x) for x in xs], "named": {"a": json_form(sample("uint8", (5,)))}},
        headers={"accept": f"application/json, {BINARY}"},
    )
    env, buffers = parse_binary(r.content)
    headers = [*(t["$tensor"] for t in env["result"]["xs"]), env["result"]["named"]["a"]["$tensor"]]
    for h, want in zip(headers, [*xs, sample("uint8", (5,))], strict=True):
        assert h["offset"] % protocol.TENSOR_ALIGN == 0
        assert buffers[h["offset"] : h["offset"] + h["nbytes"]] == want.tobytes()


def test_json_is_the_default_whatever_else_accept_says(app: ScopegenApp) -> None:
    for accept in (None, "*/*", "application/*", "application/json"):
        headers = {"accept": accept} if accept else {}
        r = post(app, "hidden", json={"n": 1}, headers=headers)
        assert r.headers["content-type"] == "application/json"


def test_a_dtype_that_does_not_cross_the_wire_is_a_clear_error(app: ScopegenApp) -> None:
    r = post(app, "complex_result")
    assert r.status_code == 500
    message = r.json()["error"]["message"]
    assert "complex64" in message and "float32" in message


def test_numpy_in_a_result_typed_as_json_stays_a_list(app: ScopegenApp) -> None:
    assert post(app, "as_list").json() == {"result": [0.0, 1.0, 2.0]}


GOOD = {"dtype": "float32", "shape": [2], "data": base64.b64encode(bytes(8)).decode()}
LIES = [
    ({**GOOD, "dtype": "complex64"}, "dtype 'complex64'"),
    ({**GOOD, "dtype": 7}, "dtype 'int'"),
    ({**GOOD, "shape": [-2]}, "every dimension"),
    ({**GOOD, "shape": [True, 2]}, "every dimension"),
    ({**GOOD, "shape": [2**63]}, "every dimension"),
    ({**GOOD, "shape": [2**62, 2**62]}, "does not hold"),
    ({**GOOD, "shape": [0, 2**62, 2**62], "data": ""}, "cannot be built"),
    ({**GOOD, "shape": [1] * 65}, "at most 64"),
    ({**GOOD, "shape": [3]}, "does not hold 12 bytes"),
    ({**GOOD, "data": "AAAA=AAAAAA="}, "not valid base64"),
    ({**GOOD, "data": "AAAAAA\u00e9AAAA="}, "not valid base64"),
    ({**GOOD, "data": "AAAAAAAAAA=="}, "does not hold 8 bytes"),
    ({**GOOD, "extra": 1}, "exactly the keys"),
    ({"dtype": "float32", "shape": [2]}, "exactly the keys"),
]


@pytest.mark.parametrize(("header", "says"), LIES, ids=[s for _, s in LIES])
def test_a_lying_json_header_is_a_422_naming_the_argument(
    app: ScopegenApp, header: dict[str, Any], says: str
) -> None:
    r = post(
        app, "many", json={"xs": [json_form(sample("int8")), {"$tensor": header}], "named": {}}
    )
    assert r.status_code == 422, r.text
    (d,) = r.json()["error"]["details"]
    assert d["loc"] == ["xs", 1] and says in d["msg"], d
    # The server serves the next call.
    assert post(app, "hidden", json={"n": 1}).status_code == 200


RAW = {"dtype": "float32", "shape": [2], "offset": 0, "nbytes": 8}
RAW_LIES = [
    ({**RAW, "nbytes": 12}, "nbytes is 12"),
    ({**RAW, "offset": 4}, "past the end"),
    ({**RAW, "offset": -1}, "non-negative"),
    ({**RAW, "shape": [2**62, 2**62]}, "need"),
    ({**RAW, "dtype": "str"}, "dtype 'str'"),
]


@pytest.mark.parametrize(("header", "says"), RAW_LIES, ids=[s for _, s in RAW_LIES])
def test_a_lying_binary_header_is_a_422_naming_the_argument(
    app: ScopegenApp, header: dict[str, Any], says: str
) -> None:
    body = binary_body({"x": {"$tensor": header}}, bytes(8))
    r = post(app, "echo_numpy", content=body, headers={"content-type": BINARY})
    assert r.status_code == 422, r.text
    (d,) = r.json()["error"]["details"]
    assert d["loc"] == ["x"] and says in d["msg"], d


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"SGT", "shorter"),
        (b"XXXX\x00\x00\x00\x00", "does not start"),
        (struct.pack("<4sI", b"SGT1", 1000) + b"{}", "runs past"),
        (struct.pack("<4sI", b"SGT1", 2) + b"{,", "not valid JSON"),
        (struct.pack("<4sI", b"SGT1", 2) + b"[]", "JSON object"),
    ],
)
def test_broken_binary_framing_is_a_400(app: ScopegenApp, body: bytes, says: str) -> None:
    r = post(app, "echo_numpy", content=body, headers={"content-type": BINARY})
    assert r.status_code == 400 and says in r.json()["error"]["message"], r.text


def test_the_protocol_document_shows_the_real_json_form_and_schema() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    section = text[text.index("### The JSON form") : text.index("### The binary framing")]
    example, schema = (orjson.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S))
    assert from_json_form(example).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert schema == protocol.tensor_schema("float32")
    assert BINARY in text and protocol.TENSOR_MAGIC.decode() in text
