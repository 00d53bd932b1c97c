"""The ASGI app in-process: validators from the IR, loader, lifespan, manifest, OpenAPI."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate as validate_openapi
from pydantic_core import ValidationError

from scopegen.analyze import analyze_file
from scopegen.emit import schema
from scopegen.emit.openapi import openapi
from scopegen.server import (
    InterfaceLintError,
    ScopegenApp,
    ServerSettings,
    create_app,
    load_interface,
)
from scopegen.server._encode import INVALID, describe_unserializable, dumps_fallback, loads_exact
from scopegen.server._validate import build_validator
from scopegen.spec import (
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    DictType,
    EnumDef,
    Field,
    Function,
    Interface,
    ListType,
    LiteralType,
    ObjectDef,
    Parameter,
    RefType,
    TupleType,
    TypeDef,
    UnionType,
)

HERE = Path(__file__).resolve().parents[1]
BASIC = HERE / "interfaces" / "server_basic.py"


# --------------------------------------------------------------------------- ASGI driver


def asgi(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request straight through the ASGI callable (no server, no lifespan)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body_msg = sent
    hdrs = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], hdrs, orjson.loads(body_msg["body"])


@pytest.fixture(scope="module")
def app() -> Iterator[ScopegenApp]:
    application = create_app(BASIC, ServerSettings(token=None, access_log=False))
    yield application
    application.close()


def test_app_works_without_lifespan_events(app: ScopegenApp) -> None:
    status, headers, payload = asgi(app, "POST", "/v1/call/add", b'{"a": 1, "b": 2}')
    assert (status, payload) == (200, {"result": 3})
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]


def test_lifespan_startup_and_shutdown_are_answered() -> None:
    application = create_app(BASIC, ServerSettings(token=None, access_log=False))
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_token_is_checked_in_process() -> None:
    application = create_app(BASIC, ServerSettings(token="abc", access_log=False))
    try:
        assert asgi(application, "POST", "/v1/call/add", b'{"a":1,"b":2}')[0] == 401
        ok = asgi(
            application, "POST", "/v1/call/add", b'{"a":1,"b":2}', {"Authorization": "Bearer abc"}
        )
        assert ok[0] == 200
        assert asgi(application, "GET", "/healthz")[0] == 200
    finally:
        application.close()


def test_timeouts_work_when_the_app_is_reused_across_event_loops() -> None:
    application = create_app(BASIC, ServerSettings(token=None, access_log=False, call_timeout=0.2))
    try:
        for _ in range(2):  # each asgi() call runs in a fresh event loop
            status, _, payload = asgi(application, "POST", "/v1/call/sleepy", b'{"seconds": 0.6}')
            assert (status, payload["error"]["code"]) == (504, "timeout")
            # The only worker still runs the abandoned call: refused (503), never queued.
            status, _, payload = asgi(application, "POST", "/v1/call/sleepy", b'{"seconds": 0}')
            assert (status, payload["error"]["code"]) == (503, "unavailable")
            time.sleep(0.6)  # the abandoned call returns and frees the worker
        status, _, payload = asgi(application, "POST", "/v1/call/sleepy", b'{"seconds": 0.01}')
        assert (status, payload) == (200, {"result": 0.01})
    finally:
        application.close()


def test_invalid_arguments_say_which_type_was_sent_but_never_the_value(
    app: ScopegenApp,
) -> None:
    body = orjson.dumps({"a": "secret-text", "c": 3})
    status, _, answer = asgi(app, "POST", "/v1/call/add", body)
    assert status == 422
    by_loc = {tuple(d["loc"]): d["msg"] for d in answer["error"]["details"]}
    assert by_loc == {
        ("a",): "Input should be a valid integer, got str",
        ("b",): "Field required",
        ("c",): "Extra inputs are not permitted",
    }
    assert b"secret-text" not in orjson.dumps(answer)
    _, _, picked = asgi(app, "POST", "/v1/call/pick", orjson.dumps({"mode": "medium", "n": None}))
    assert [d["msg"] for d in picked["error"]["details"]] == [
        'Input should be "fast" or "slow", got str "medium"',
        "Input should be 1 or 2, got None",
    ]


def test_on_degraded_hooks_run_each_time_every_worker_becomes_stuck(
    capsys: pytest.CaptureFixture[str],
) -> None:
    application = create_app(BASIC, ServerSettings(token=None, access_log=False, call_timeout=0.2))
    runs: list[float] = []

    def broken() -> None:
        raise RuntimeError("a broken hook")

    # A hook that raises is reported, and the next one still runs.
    application.on_degraded.extend([broken, lambda: runs.append(time.monotonic())])
    try:
        for expected in (1, 2):
            status, _, _ = asgi(application, "POST", "/v1/call/sleepy", b'{"seconds": 0.6}')
            assert status == 504
            assert len(runs) == expected  # ran before the 504 went out
            status, _, _ = asgi(application, "POST", "/v1/call/sleepy", b'{"seconds": 0}')
            assert status == 503  # the watchdog kept working after the broken hook
            time.sleep(0.6)
        assert "on_all_stuck hook" in capsys.readouterr().err
    finally:
        application.close()

    wide = create_app(
        BASIC, ServerSettings(token=None, access_log=False, call_timeout=0.2, max_concurrency=2)
    )
    wide.on_degraded.append(lambda: runs.append(time.monotonic()))
    try:
        status, _, _ = asgi(wide, "POST", "/v1/call/sleepy", b'{"seconds": 0.5}')
        assert status == 504
        assert len(runs) == 2  # one of two workers stuck: not degraded, no hook
    finally:
        time.sleep(0.4)
        wide.close()


def test_settings_token_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOPEGEN_TOKEN", "from-env")
    assert ServerSettings().token == "from-env"
    monkeypatch.setenv("SCOPEGEN_TOKEN", "")
    assert ServerSettings().token is None


def test_access_log_goes_to_the_configured_stream() -> None:
    import io

    stream = io.StringIO()
    application = create_app(BASIC, ServerSettings(token=None, log_stream=stream))
    try:
        asgi(application, "POST", "/v1/call/add", b'{"a":1,"b":2}', {"x-request-id": "r-1"})
        application.close()  # flushes
        assert stream.getvalue().startswith("INFO:     call add 200 ")
        assert stream.getvalue().rstrip().endswith("ms r-1")
    finally:
        application.close()


# --------------------------------------------------------------------------- loader


def test_loader_runs_the_file_as_a_module_not_main() -> None:
    loaded = load_interface(BASIC)
    assert loaded.module.__name__ == "server_basic"
    assert loaded.module.__file__ == str(BASIC.resolve())
    assert list(loaded.functions)[:3] == ["add", "scale", "echo"]
    assert loaded.functions["add"](a=1, b=2) == 3
    assert sys.modules["server_basic"] is loaded.module


def test_loader_refuses_lint_errors_without_importing() -> None:
    with pytest.raises(InterfaceLintError) as info:
        load_interface(HERE / "interfaces" / "server_lint_error.py")
    assert info.value.errors[0].code == "SG001"
    assert "scopegen_module_that_does_not_exist" not in sys.modules


def test_loader_does_not_shadow_an_existing_module(tmp_path: Path) -> None:
    f = tmp_path / "json.py"
    f.write_text("from scopegen import expose\n\n@expose\ndef f() -> int:\n    return 1\n")
    loaded = load_interface(f)
    assert loaded.module.__name__ == "scopegen_interface_json"
    assert loaded.functions["f"]() == 1
    import json

    assert json.dumps([1]) == "[1]"


# --------------------------------------------------------------------------- validators


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Tree:
    name: str
    children: list[Tree] = dataclasses.field(default_factory=list)


TYPES: dict[str, TypeDef] = {
    "Color": EnumDef("Color", (("RED", "red"), ("BLUE", "blue"))),
    "Level": EnumDef("Level", (("LOW", 1), ("HIGH", 2))),
    "Tree": ObjectDef(
        "Tree",
        "dataclass",
        (
            Field("name", STR),
            Field("children", ListType(RefType("Tree")), required=False, has_default=True),
        ),
    ),
    "Span": ObjectDef("Span", "typeddict", (Field("start", INT), Field("end", INT))),
}
NAMESPACE = {"Color": Color, "Level": Level, "Tree": Tree}


def validator(*params: Parameter) -> Any:
    return build_validator(Function("f", params, NONE), TYPES, NAMESPACE)


def errors(v: Any, data: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        v.validate_python(data)
    return [(tuple(e["loc"]), e["type"]) for e in info.value.errors()]


def test_enum_parameters_become_members() -> None:
    v = validator(Parameter("c", RefType("Color")), Parameter("lv", RefType("Level")))
    out = v.validate_python({"c": "blue", "lv": 2})
    assert out["c"] is Color.BLUE
    assert out["lv"] is Level.HIGH
    assert errors(v, {"c": "green", "lv": True}) == [
        (("c",), "literal_error"),
        (("lv",), "literal_error"),
    ]


def test_recursive_dataclass_is_built_from_the_runtime_class() -> None:
    v = validator(Parameter("t", RefType("Tree")))
    out = v.validate_python({"t": {"name": "a", "children": [{"name": "b"}]}})
    assert out["t"] == Tree("a", [Tree("b")])
    assert errors(v, {"t": {"name": "a", "children": [{"name": 1}]}}) == [
        (("t", "children", 0, "name"), "string_type")
    ]


def test_typeddict_stays_a_dict_and_requires_its_fields() -> None:
    v = validator(Parameter("s", RefType("Span")))
    assert v.validate_python({"s": {"start": 1, "end": 2}}) == {"s": {"start": 1, "end": 2}}
    assert errors(v, {"s": {"start": 1}}) == [(("s", "end"), "missing")]


def test_named_types_without_a_runtime_class_validate_as_plain_json() -> None:
    v = build_validator(
        Function("f", (Parameter("c", RefType("Color")), Parameter("t", RefType("Tree"))), NONE),
        TYPES,
        {},
    )
    assert v.validate_python({"c": "red", "t": {"name": "x"}}) == {"c": "red", "t": {"name": "x"}}


@pytest.mark.parametrize(
    ("wire", "good", "bad"),
    [
        (INT, [0, -3, 10**30], [True, 1.0, "1", None]),
        (FLOAT, [1.5, 2, 0], [True, "1.5", None]),
        (BOOL, [True, False], [0, 1, "true", None]),
        (STR, ["", "x"], [1, None, b"x"]),
        (NONE, [None], [0, "", False]),
        (ListType(INT), [[], [1, 2]], [[1, True], (1,), {"a": 1}]),
        (TupleType((INT, STR)), [[1, "a"]], [[1], [1, "a", 2], ["a", 1]]),
        (TupleType((FLOAT,), variadic=True), [[], [1, 2.5]], [["x"], [True]]),
        (DictType(INT), [{}, {"a": 1}], [{"a": "1"}, [1]]),
        (DictType(None), [{"a": [None]}], [[], "x"]),
        (UnionType((INT, NONE)), [1, None], ["1", 1.5]),
        (UnionType((INT, STR)), [1, "1"], [1.5, None, True]),
        (LiteralType((None, "a", 0)), [None, "a", 0], [False, 0.0, "b"]),
    ],
)
def test_strict_json_typing(wire: Any, good: list[Any], bad: list[Any]) -> None:
    v = validator(Parameter("x", wire))
    for value in good:
        out = v.validate_python({"x": value})["x"]
        assert out == (tuple(value) if isinstance(wire, TupleType) else value)
    for value in bad:
        with pytest.raises(ValidationError):
            v.validate_python({"x": value})


def test_optional_and_var_keyword_parameters() -> None:
    v = validator(
        Parameter("a", INT),
        Parameter("b", STR, kind="keyword_only", has_default=True),
        Parameter("rest", FLOAT, kind="var_keyword"),
    )
    assert v.validate_python({"a": 1}) == {"a": 1}
    assert v.validate_python({"a": 1, "b": "x", "z": 2}) == {"a": 1, "b": "x", "z": 2.0}
    assert errors(v, {"z": "no"}) == [(("a",), "missing"), (("z",), "float_type")]


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class Holder:
    items: list[Any]


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"s": {1, 2}}, 'result["s"] is set; return a list (e.g. sorted(...))'),
        ([b"x"], "result[0] is bytes; return a str (decode it, or base64-encode binary data)"),
        ({1: "a"}, "result has a key 1 of type int; JSON object keys must be str"),
        (
            Holder([1, Opaque()]),
            f"result.items[1] is {__name__}.Opaque; "
            "return only JSON types (dict, list, str, int, float, bool, None)",
        ),
        ({"z": 1j}, 'result["z"] is complex; return [z.real, z.imag]'),
        ({"g": (i for i in range(0))}, 'result["g"] is generator; return a list, not an iterator'),
        ([2**70], "result[0] is an integer too large for JSON (over 64 bits); return it as a str"),
    ],
)
def test_unserializable_results_are_described(value: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        orjson.dumps(value)
    assert describe_unserializable(value, info.value) == message


def test_big_integers_have_an_exact_slow_path() -> None:
    assert loads_exact(b'{"a": [%d]}' % 2**70) == {"a": [2**70]}
    assert loads_exact(b'{"a": [1e400]}') is INVALID
    assert loads_exact(b'{"a": NaN}') is INVALID
    assert dumps_fallback({"n": [2**70, Color.RED, Tree("t")]}) == (
        b'{"result":{"n":[1180591620717411303424,"red",{"name":"t","children":[]}]}}'
    )
    assert dumps_fallback({"n": 2**70, "s": {1}}) is None


def test_circular_result_is_described() -> None:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    assert (
        describe_unserializable(loop) == 'result[1]["again"] contains itself (a circular reference)'
    )


# --------------------------------------------------------------------------- manifest and OpenAPI


def test_functions_route_equals_scopegen_schema(app: ScopegenApp) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scopegen", "schema", str(BASIC)],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    status, _, manifest = asgi(app, "GET", "/v1/functions")
    assert status == 200
    assert manifest == orjson.loads(out)
    assert manifest == schema.manifest(analyze_file(BASIC).interface)


def test_openapi_route_is_valid_openapi_3_1(app: ScopegenApp) -> None:
    status, _, doc = asgi(app, "GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    validate_openapi(doc)
    assert set(doc["paths"]) >= {f"/v1/call/{f.name}" for f in app.loaded.interface.functions}
    # Named types are components, referenced (never embedded as $defs).
    assert set(doc["components"]["schemas"]) >= {"Color", "Point", "Box", "Query"}
    assert "$defs" not in orjson.dumps(doc).decode()


def test_openapi_documents_every_status_of_a_call() -> None:
    interface = Interface(
        "demo",
        (
            Function(
                "f",
                (Parameter("x", RefType("Color")),),
                ListType(RefType("Span")),
                doc="F.\n\nMore.",
            ),
        ),
        types=(TYPES["Color"], TYPES["Span"]),
    )
    doc = openapi(interface)
    validate_openapi(doc)
    op = doc["paths"]["/v1/call/f"]["post"]
    assert set(op["responses"]) == {"200", "400", "401", "413", "422", "500", "503", "504"}
    assert op["summary"] == "F."
    assert op["requestBody"]["required"] is True
    result = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["properties"]["result"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Span"},
    }
    no_auth = openapi(interface, auth=False)
    validate_openapi(no_auth)
    assert "401" not in no_auth["paths"]["/v1/call/f"]["post"]["responses"]
