"""Calls to ``tests/interfaces/server_basic.py`` and the answers protocol v1 gives them.

One table, run twice: over real HTTP against ``scopegen serve`` (with
``--max-body 65536``; ``tests/e2e/test_server_protocol.py``) and in this
process through ``scopegen.testing.load`` (``tests/testing/test_load.py``),
so the two can never drift apart. Only calls that a caller of
``iface.call(name, **args)`` can make are here: named arguments, JSON
values. Malformed bodies, routes, methods, tokens and timing stay in the
HTTP tests.

``answer(status, payload)`` checks one answer: ``payload`` is the decoded
response body, ``{"result": ...}`` or ``{"error": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["CASES", "MAX_BODY", "Case", "encode"]

# The body limit both runs use (bytes).
MAX_BODY = 65536
_UNSET: Any = object()
BIG = 2**70


@dataclass(frozen=True)
class Case:
    id: str
    function: str
    args: dict[str, Any] = field(default_factory=dict)
    result: Any = _UNSET  # the result of a successful call
    status: int = 200
    code: str | None = None
    # (loc, type) of each validation error, in any order.
    details: list[tuple[tuple[Any, ...], str]] | None = None
    message: str | None = None  # the error's exact message
    type: str | None = None  # the remote exception's type
    traceback_has: tuple[str, ...] = ()
    traceback_lacks: tuple[str, ...] = ()
    error_lacks: str | None = None  # text that must appear nowhere in the error

    def check(self, status: int, payload: dict[str, Any]) -> None:
        if self.code is None:
            assert (status, payload) == (200, {"result": self.result})
            return
        assert status == self.status, payload
        err = payload["error"]
        assert err["code"] == self.code
        assert isinstance(err["message"], str) and err["message"]
        if self.details is not None:
            got = sorted((tuple(d["loc"]), d["type"]) for d in err["details"])
            assert got == sorted(self.details)
        if self.message is not None:
            assert err["message"] == self.message
        if self.type is not None:
            assert err["type"] == self.type
        for text in self.traceback_has:
            assert text in err["traceback"]
        for text in self.traceback_lacks:
            assert text not in err["traceback"]
        if self.error_lacks is not None:
            assert self.error_lacks not in str(err)


def encode(args: dict[str, Any]) -> bytes:
    """The request body of a case (integers past 64 bits stay exact)."""
    return json.dumps(args).encode()


def _invalid(id: str, function: str, args: dict[str, Any], *details: Any) -> Case:
    return Case(id, function, args, status=422, code="invalid_arguments", details=list(details))


def _unknown(name: str) -> Case:
    # Whatever the name, the answer says nothing of the module (SECRET's value).
    return Case(
        f"unknown-{name or 'empty'}",
        name,
        status=404,
        code="unknown_function",
        error_lacks="module-global",
    )


_SHAPES = {
    "color": "green",
    "point": {"x": 1, "y": 2.5},
    "box": {"label": "crate"},
    "query": {"text": "hi", "top_k": 7},
}

_TABLE = [
    # 200s
    Case("add", "add", {"a": 2, "b": 3}, result=5),
    Case("async-on-the-loop", "async_add", {"a": 2, "b": 40}, result=42),
    Case("no-arguments", "numbers", result={"sum": 3}),
    Case("int-for-float", "scale", {"x": 3}, result=6.0),
    Case("defaults-overridden", "scale", {"x": 1.5, "factor": 3}, result=4.5),
    Case(
        "named-types-are-real-objects",
        "shapes",
        _SHAPES,
        result={
            "color_is_enum": True,
            "color": "green",
            "point": {"x": 1.0, "y": 2.5},
            "box_is_dataclass": True,
            "box": {"label": "crate", "size": 1},
            "query_is_model": True,
            "top_k": 7,
        },
    ),
    Case("tuple", "pair", {"p": [1, "a"]}, result=[[1, "a"], None]),
    Case("optional-list", "pair", {"p": [1, "a"], "items": [3]}, result=[[1, "a"], [3]]),
    Case("var-keyword", "options", {"a": 1, "b": 2}, result={"a": 1, "b": 2}),
    Case("runs-as-a-module", "whoami", result={"name": "server_basic", "file": "server_basic.py"}),
    Case("folder-importable", "helper", result="from-helper"),
    Case("literal", "pick", {"mode": "slow", "n": 2}, result="slow:2"),
    Case("int-past-64-bits", "add", {"a": BIG, "b": 1}, result=BIG + 1),
    Case(
        "ints-past-a-double",
        "echo",
        {"value": [10**400, -BIG]},
        result={"value": [10**400, -BIG], "flag": False},
    ),
    Case(
        "largest-native-int",
        "echo",
        {"value": 2**64 - 1},
        result={"value": 2**64 - 1, "flag": False},
    ),
    Case(
        "under-the-body-limit",
        "echo",
        {"value": "y" * 60_000},
        result={"value": "y" * 60_000, "flag": False},
    ),
    # 422
    _invalid("var-keyword-typed", "options", {"a": "x"}, (("a",), "int_type")),
    _invalid("missing", "add", {"a": 1}, (("b",), "missing")),
    _invalid("all-missing", "add", {}, (("a",), "missing"), (("b",), "missing")),
    _invalid("extra", "add", {"a": 1, "b": 2, "c": 3}, (("c",), "extra_forbidden")),
    _invalid("true-is-not-an-int", "add", {"a": True, "b": 1}, (("a",), "int_type")),
    _invalid("string-is-not-a-number", "add", {"a": "5", "b": 1}, (("a",), "int_type")),
    _invalid("float-is-not-an-int", "add", {"a": 1.5, "b": 1}, (("a",), "int_type")),
    _invalid("null-is-not-an-int", "add", {"a": None, "b": 1}, (("a",), "int_type")),
    _invalid("list-is-not-an-int", "add", {"a": [1], "b": 1}, (("a",), "int_type")),
    _invalid("zero-is-not-a-bool", "echo", {"flag": 0}, (("flag",), "bool_type")),
    _invalid("string-is-not-a-float", "scale", {"x": "1.5"}, (("x",), "float_type")),
    _invalid("true-is-not-a-float", "scale", {"x": True}, (("x",), "float_type")),
    _invalid("bad-literal", "pick", {"mode": "medium"}, (("mode",), "literal_error")),
    _invalid(
        "true-is-not-literal-1", "pick", {"mode": "fast", "n": True}, (("n",), "literal_error")
    ),
    _invalid(
        "nested-locations",
        "shapes",
        {"color": "blue", "point": {"x": 1}, "box": {"label": 3}},
        (("box", "label"), "string_type"),
        (("color",), "literal_error"),
        (("point", "y"), "missing"),
    ),
    Case(
        "invalid-arguments-never-run",
        "boom",
        {"message": 1},
        status=422,
        code="invalid_arguments",
        error_lacks="kaboom",
    ),
    # 404: only exposed functions are reachable.
    *(
        _unknown(name)
        for name in [
            "nope",
            "_private_helper",  # a private helper of the module
            "SECRET",  # a module global
            "Box",  # a class
            "__init__",
            "__class__",
            "__builtins__",
            "__dict__",
            "expose",
            "get_model_path",
            "time",  # an imported module
            "add.__globals__",
            "",
        ]
    ),
    # 413
    Case(
        "over-the-body-limit",
        "echo",
        {"value": "x" * 70_000},
        status=413,
        code="payload_too_large",
    ),
    # 500
    Case(
        "raise-is-function-error",
        "boom",
        {"message": "it broke"},
        status=500,
        code="function_error",
        message="it broke",
        type="ValueError",
        traceback_has=("Traceback", "raise ValueError(message)"),
        traceback_lacks=("scopegen/server",),  # it starts in the user's function
    ),
    Case(
        "unserializable-result-names-path-and-type",
        "tensor",
        status=500,
        code="unserializable_result",
        message='result["embedding"] is server_basic._FakeTensor; return .tolist()',
    ),
]

CASES = [pytest.param(case, id=case.id) for case in _TABLE]
