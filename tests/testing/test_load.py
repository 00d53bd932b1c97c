"""``scopegen.testing.load``: the server's own code, called in this process.

The shared protocol table (``tests/_protocol_cases.py``) runs here exactly as
over HTTP in ``tests/e2e/test_server_protocol.py``: same interface, same
limits, same expected answers.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scopegen import runtime
from scopegen.analyze import analyze_file
from scopegen.emit.schema import manifest
from scopegen.testing import (
    CallError,
    Interface,
    InterfaceImportError,
    InterfaceLintError,
    load,
)
from tests._protocol_cases import CASES, MAX_BODY, Case

INTERFACES = Path(__file__).resolve().parents[1] / "interfaces"
BASIC = INTERFACES / "server_basic.py"


@pytest.fixture(scope="module")
def iface() -> Iterator[Interface]:
    with load(BASIC, call_timeout=0.5, max_body=MAX_BODY) as loaded:
        yield loaded


def _answer(iface: Interface, case: Case) -> tuple[int, dict[str, Any]]:
    try:
        return 200, {"result": iface.call(case.function, **case.args)}
    except CallError as exc:
        return exc.status, {"error": exc.error}


@pytest.mark.parametrize("case", CASES)
def test_protocol_case(iface: Interface, case: Case) -> None:
    case.check(*_answer(iface, case))


# --------------------------------------------------------------------------- calling


def test_functions_are_the_manifests_entries(iface: Interface) -> None:
    expected = manifest(analyze_file(BASIC).interface)
    assert iface.manifest == expected
    assert iface.functions == expected["functions"]
    assert iface.request("GET", "/v1/functions").json() == expected


def test_attribute_calls_are_calls_and_positionals_take_the_declared_order(
    iface: Interface,
) -> None:
    assert iface.add(a=2, b=3) == iface.call("add", a=2, b=3) == 5
    assert iface.add(2, 3) == iface.add(2, b=3) == iface.call("add", 2, 3) == 5
    assert iface.scale(1.5) == 3.0
    assert iface.echo(7, flag=True) == {"value": 7, "flag": True}
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        iface.echo(7, True)  # flag is keyword-only
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        iface.add(1, a=2)
    assert iface.add.__name__ == "add"
    assert iface.add.__doc__ == "Add two integers."
    assert {"add", "shapes", "async_add"} <= set(dir(iface))


def test_a_name_that_is_not_exposed_is_no_attribute(iface: Interface) -> None:
    for name in ("_private_helper", "SECRET", "nope"):
        with pytest.raises(AttributeError, match="not an exposed function"):
            getattr(iface, name)
        assert not hasattr(iface, name)


def test_errors_carry_code_status_details_and_read_well(iface: Interface) -> None:
    with pytest.raises(CallError) as info:
        iface.add(a=True, b=1)
    err = info.value
    assert (err.code, err.status) == ("invalid_arguments", 422)
    assert err.details is not None and err.details[0]["loc"] == ["a"]
    assert err.request_id
    assert str(err).splitlines()[1].startswith("  a: Input should be a valid integer")
    with pytest.raises(CallError, match=r"(?s)function_error \(500\): no.*raise ValueError"):
        iface.boom(message="no")


def test_named_type_instances_are_sent_as_a_client_sends_them(iface: Interface) -> None:
    module = iface.module
    result = iface.shapes(
        color=module.Color.GREEN,
        point={"x": 1, "y": 2},
        box=module.Box("crate", 3),
        query=module.Query(text="q", top_k=4),
    )
    assert result["color"] == "green" and result["box"] == {"label": "crate", "size": 3}
    assert result["query_is_model"] is True and result["top_k"] == 4


def test_raw_requests_reach_every_route(iface: Interface) -> None:
    assert iface.request("GET", "/healthz").json() == {"status": "ok"}
    assert iface.request("GET", "/openapi.json").json()["openapi"].startswith("3.1")
    bad = iface.request("POST", "/v1/call/add", content=b"{")
    assert bad.status == 400 and bad.json()["error"]["code"] == "bad_request"
    assert iface.request("GET", "/v1/call/add").status == 405


def test_the_call_timeout_applies(iface: Interface) -> None:
    with pytest.raises(CallError) as info:
        iface.async_sleepy(seconds=5)
    assert (info.value.code, info.value.status) == ("timeout", 504)


def test_calls_from_many_threads_share_the_one_app(iface: Interface) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: iface.add(i, 1000) + iface.async_add(i, 1), range(100)))
    assert results == [2 * i + 1001 for i in range(100)]


# --------------------------------------------------------------------------- the process


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_async_functions_run_on_one_loop_that_outlives_each_call(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "loops.py",
        """
        import asyncio

        @expose
        async def loop_id() -> int:
            return id(asyncio.get_running_loop())

        @expose
        async def start_ticker() -> None:
            global TICKS
            TICKS = 0
            async def tick() -> None:
                global TICKS
                while True:
                    TICKS += 1
                    await asyncio.sleep(0.005)
            asyncio.get_running_loop().create_task(tick())

        @expose
        def ticks() -> int:
            return TICKS
        """,
    )
    with load(path) as iface:
        assert iface.loop_id() == iface.loop_id()
        iface.start_ticker()
        first = iface.ticks()
        import time

        time.sleep(0.1)
        assert iface.ticks() > first  # the loop keeps running between calls, as a server's


def test_close_puts_the_process_back(tmp_path: Path) -> None:
    _write(tmp_path, "near_helper.py", "VALUE = 1\n")
    path = _write(
        tmp_path,
        "restored.py",
        """
        from near_helper import VALUE

        @expose
        def value() -> int:
            return VALUE
        """,
    )
    paths_before = runtime.configure_model_paths(runtime.ModelPaths())
    runtime.configure_model_paths(paths_before)
    sys_path = list(sys.path)
    with load(path, models={"acme/x": tmp_path}) as iface:
        assert iface.value() == 1
        assert "restored" in sys.modules and "near_helper" in sys.modules
        assert runtime.get_model_path("acme/x") == str(tmp_path)
    assert "restored" not in sys.modules and "near_helper" not in sys.modules
    assert sys.path == sys_path
    assert runtime.configure_model_paths(paths_before) is paths_before
    # A second load runs the edited helper afresh.
    _write(tmp_path, "near_helper.py", "VALUE = 2\n")
    with load(path) as iface:
        assert iface.value() == 2
    with pytest.raises(RuntimeError, match="closed"):
        iface.value()


def test_models_feed_get_model_path(tmp_path: Path) -> None:
    (tmp_path / "acme--tiny-model").mkdir()
    with load(INTERFACES / "server_models.py", models_dir=tmp_path, use_hf_cache=False) as iface:
        assert iface.model_dir() == str(tmp_path / "acme--tiny-model")
    other = tmp_path / "elsewhere"
    other.mkdir()
    models = {"acme/tiny-model": other}
    with load(INTERFACES / "server_models.py", models=models, use_hf_cache=False) as iface:
        assert iface.model_dir() == str(other)
        with pytest.raises(CallError) as info:
            iface.other_model("acme/missing")
        assert info.value.type == "scopegen.runtime.ModelNotFoundError"


def test_a_file_that_raises_is_an_import_error_with_its_traceback(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken.py",
        """
        def load_model() -> None:
            raise RuntimeError("weights missing")

        load_model()

        @expose
        def f() -> int:
            return 1
        """,
    )
    sys_path = list(sys.path)
    with pytest.raises(InterfaceImportError) as info:
        load(path)
    assert 'raise RuntimeError("weights missing")' in info.value.traceback_text
    assert str(path) in info.value.traceback_text
    assert "broken" not in sys.modules and sys.path == sys_path


def test_lint_errors_refuse_before_importing(tmp_path: Path) -> None:
    source = "raise SystemExit('imported!')\n\n@expose\ndef f(x):\n    return x\n"
    path = _write(tmp_path, "untyped.py", source)
    with pytest.raises(InterfaceLintError) as info:
        load(path)  # a SystemExit would mean the file ran
    assert sorted(d.code for d in info.value.errors) == ["SG001", "SG002"]
    assert "untyped" not in sys.modules


# --------------------------------------------------------------------------- pytest plugin


def test_the_plugin_fixture_loads_beside_the_test_file_once(scopegen_load: Any) -> None:
    first = scopegen_load("../interfaces/server_basic.py")
    assert first.add(a=1, b=2) == 3
    assert scopegen_load(BASIC) is first
    assert scopegen_load(BASIC, call_timeout=1.0) is not first


# --------------------------------------------------------------------------- streaming


STREAMS = INTERFACES / "server_stream.py"


@pytest.fixture(scope="module")
def streams() -> Iterator[Interface]:
    with load(STREAMS, max_concurrency=2) as loaded:
        yield loaded


@pytest.mark.parametrize("fn", ["count", "acount"])
def test_streaming_functions_return_their_items(streams: Interface, fn: str) -> None:
    assert list(streams.call(fn, n=3)) == [0, 1, 2]


def test_streamed_items_are_decoded_like_results(streams: Interface) -> None:
    assert list(streams.tokens("a b")) == [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]


def test_a_midstream_error_raises_after_the_items(streams: Interface) -> None:
    got: list[Any] = []
    with pytest.raises(CallError) as info:
        got.extend(streams.fail_after(2))
    assert got == [0, 1]
    assert info.value.code == "function_error" and info.value.type == "ValueError"


def test_closing_a_stream_stops_the_generator(
    streams: Interface, capfd: pytest.CaptureFixture[str]
) -> None:
    with streams.count(1004, 0.05) as stream:
        assert next(iter(stream)) == 0
    deadline = time.monotonic() + 2.0
    while "MARK count finally 1004" not in capfd.readouterr().err:
        assert time.monotonic() < deadline
        time.sleep(0.01)
