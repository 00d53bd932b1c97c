"""Tensors end to end: a real server, the generated client pip-installed into a venv without torch.

Every dtype round-trips exactly through the binary framing (what the client
negotiates) and through the JSON form (what curl and other clients use), both
ways; bad tensors get a 422 and the server serves the next call.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._serving import RunningServer, running_server
from tests._venvs import BASE_PACKAGES, Venv, install_client, make_venv

ROOT = Path(__file__).resolve().parents[2]
IFACE = ROOT / "tests" / "interfaces" / "tensor_echo.py"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    # Its own venv: the client brings numpy and ml_dtypes, and torch must not be there.
    venv = make_venv(tmp_path_factory.mktemp("tensor-venv") / "venv", BASE_PACKAGES)
    install_client(venv, IFACE, "sg_tensors", tmp_path_factory)
    return venv


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(IFACE, startup_timeout=120) as srv:
        yield srv


PRELUDE = textwrap.dedent(
    """
    import base64, importlib.util, sys
    import httpx, ml_dtypes, numpy as np
    import sg_tensors
    from sg_tensors import Client, InvalidArguments
    from sg_tensors._tensors import decode_result
    assert importlib.util.find_spec("torch") is None, "torch is in the client venv"
    DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16",
              "float32", "float64"]

    def sample(dtype, shape):
        values = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) - 2.5
        if dtype == "bool":
            return np.asarray(values > 0)  # an array even when 0-d
        return values.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)

    def same(a, b):
        assert isinstance(b, np.ndarray), type(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        assert a.tobytes() == b.tobytes()
    """
)


def run(venv: Venv, server: RunningServer, body: str) -> str:
    code = PRELUDE + textwrap.dedent(body)
    return venv.run_python(code, env={"SG_TENSORS_URL": server.url}).stdout


def test_every_dtype_round_trips_exactly_through_the_binary_framing(
    venv: Venv, server: RunningServer
) -> None:
    out = run(
        venv,
        server,
        """
        with Client() as c:
            for dtype in DTYPES:
                for shape in [(2, 3), (), (0,), (4, 0, 2), (7,)]:
                    a = sample(dtype, shape)
                    same(a, c.echo_numpy(a))
                    same(a, c.echo_torch(a))
                    # Non-contiguous and big-endian inputs are sent as their values.
                    same(a.T.copy(), c.echo_numpy(a.T))
            r = c.many([sample("int8", (3,)), sample("float64", (2, 2))],
                       {"a": sample("uint8", (5,))})
            same(sample("int8", (3,)), r["xs"][0])
            same(sample("float64", (2, 2)), r["xs"][1])
            same(sample("uint8", (5,)), r["named"]["a"])
            h = c.hidden(3)
            assert h.layer == 3 and h.hidden.shape == (4, 3), h
            x = c.add_float32(np.zeros(3, dtype=np.float32), np.ones(3, dtype=np.float32))
            assert x.tolist() == [1.0, 1.0, 1.0]
            assert c.kind_of(sample("float32", (2,)), sample("float32", (2,))) == [
                "torch.Tensor", "numpy.ndarray"]
            bare = c.bare()
            assert bare["bf16"].dtype == ml_dtypes.bfloat16 and bare["scalar"].shape == ()
            assert sg_tensors.as_list() == [0.0, 1.0, 2.0]
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_every_dtype_round_trips_exactly_through_the_json_form(
    venv: Venv, server: RunningServer
) -> None:
    out = run(
        venv,
        server,
        """
        def json_form(a):
            data = base64.b64encode(a.tobytes()).decode()
            return {"$tensor": {"dtype": a.dtype.name, "shape": list(a.shape), "data": data}}

        with httpx.Client(base_url=sys.argv[0] and __import__("os").environ["SG_TENSORS_URL"]) as h:
            for dtype in DTYPES:
                for shape in [(2, 3), (), (0, 5)]:
                    a = sample(dtype, shape)
                    r = h.post("/v1/call/echo_torch", json={"x": json_form(a)})
                    assert r.headers["content-type"] == "application/json"
                    same(a, decode_result(r.content, r.headers))
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_bad_tensors_are_422_and_the_server_serves_the_next_call(
    venv: Venv, server: RunningServer
) -> None:
    out = run(
        venv,
        server,
        """
        url = __import__("os").environ["SG_TENSORS_URL"]
        bad = [
            {"dtype": "complex64", "shape": [1], "data": "AAAAAAAAAAA="},
            {"dtype": "float32", "shape": [-1], "data": ""},
            {"dtype": "float32", "shape": [2**62, 2**62], "data": "AAAA"},
            {"dtype": "float32", "shape": [1], "data": "AA=A"},
            {"dtype": "float32", "shape": [3], "data": "AAAAAA=="},
        ]
        with httpx.Client(base_url=url) as h, Client() as c:
            for header in bad:
                r = h.post("/v1/call/echo_numpy", json={"x": {"$tensor": header}})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["details"][0]["loc"] == ["x"]
                same(sample("int16", (2,)), c.echo_numpy(sample("int16", (2,))))
            try:
                c.add_float32(np.zeros(2), np.zeros(2, dtype=np.float32))  # float64: refused
            except InvalidArguments as exc:
                assert "float32" in str(exc.details), exc.details
            else:
                raise AssertionError("a float64 array for NDArray[np.float32] was accepted")
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_tensors_in_stream_items_and_job_results_arrive_as_arrays(
    venv: Venv, server: RunningServer
) -> None:
    out = run(
        venv,
        server,
        """
        with Client() as c:
            items = list(c.layers(3))
            assert [float(a[0, 0]) for a in items] == [0.0, 1.0, 2.0], items
            assert all(a.dtype == np.float32 and a.shape == (2, 3) for a in items)
            dicts = list(c.layer_dicts(2))
            assert dicts[1]["act"].dtype == ml_dtypes.bfloat16, dicts
            assert dicts[1]["act"].astype(np.float32).tolist() == [1.0, 2.0, 3.0, 4.0]
            job = c.jobs.layers(2)
            got = job.result(timeout=60)
            assert [a.shape for a in got] == [(2, 3), (2, 3)] and float(got[1][0, 0]) == 1.0
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_a_stream_line_carries_the_json_form(server: RunningServer) -> None:
    import httpx
    import orjson

    with httpx.Client(base_url=server.url, headers=server.headers) as h:
        r = h.post("/v1/call/layers", json={"n": 1})
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    tensor = lines[0]["item"]["$tensor"]
    assert tensor["dtype"] == "float32" and tensor["shape"] == [2, 3]
    assert lines[-1] == {"done": True}
