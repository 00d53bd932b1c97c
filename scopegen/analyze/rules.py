"""The rule catalog: SG000-SG013 (README: "Lint codes").

Each rule is one class: code, severity, a one-paragraph docstring, ``VALID``
and ``INVALID`` snippets (the test suite runs every one of them, so a rule
cannot drift from its documentation), and a ``check`` that reads the facts the
single traversal gathered. Codes are stable: a new rule takes a new code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import libcst as cst

from scopegen import protocol, spec
from scopegen.analyze._diagnostics import Severity
from scopegen.analyze._facts import Facts, FunctionFacts
from scopegen.analyze._values import literal_value

__all__ = ["RULES", "Finding", "Rule", "rule_by_code"]


@dataclass(frozen=True)
class Finding:
    node: cst.CSTNode
    message: str


class Rule:
    CODE: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    NAME: ClassVar[str]
    VALID: ClassVar[tuple[str, ...]]
    INVALID: ClassVar[tuple[str, ...]]

    def check(self, facts: Facts) -> Iterator[Finding]:
        return iter(())


class ParseError(Rule):
    """The file cannot be parsed. The finding carries CPython's message and position;
    nothing else is checked until it parses."""

    CODE = "SG000"
    SEVERITY = "error"
    NAME = "parse-error"
    VALID = ("@expose\ndef f(x: int) -> int:\n    return x\n",)
    INVALID = ("@expose\ndef f(x: int) -> int\n    return x\n", "def (:\n")
    # Reported by the analyzer itself when parsing fails.


class MissingParamAnnotation(Rule):
    """Every parameter of an exposed function needs a type annotation: the client's
    signature and the server's validation are built from it."""

    CODE = "SG001"
    SEVERITY = "error"
    NAME = "missing-parameter-annotation"
    VALID = (
        "@expose\ndef f(text: str, n: int = 3) -> str:\n    return text * n\n",
        "@expose\ndef f(**options: float) -> dict:\n    return options\n",
    )
    INVALID = (
        "@expose\ndef f(text) -> str:\n    return text\n",
        "@expose\ndef f(text: str, **options) -> str:\n    return text\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if p.annotation is None and p.kind not in ("var_positional",):
                    star = "**" if p.kind == "var_keyword" else ""
                    yield Finding(
                        p.node,
                        f"parameter `{star}{p.name}` of `{fn.name}` has no type annotation;"
                        f" annotate it, e.g. `{star}{p.name}: str`",
                    )


class MissingReturnAnnotation(Rule):
    """An exposed function needs a return annotation: the client validates results
    into it and agents read it."""

    CODE = "SG002"
    SEVERITY = "error"
    NAME = "missing-return-annotation"
    VALID = ("@expose\ndef f() -> dict:\n    return {}\n",)
    INVALID = ("@expose\ndef f():\n    return {}\n",)

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            if fn.node.returns is None:
                yield Finding(
                    fn.node.name,
                    f"`{fn.name}` has no return annotation; add one, e.g. `-> dict`",
                )


class ReturnNotWire(Rule):
    """The return annotation must be a wire type (JSON-serializable): tensors, arrays,
    bytes, sets and other objects cannot cross the wire. Convert them first."""

    CODE = "SG003"
    SEVERITY = "error"
    NAME = "return-not-wire-type"
    VALID = (
        "@expose\ndef f() -> list[float]:\n    return [1.0]\n",
        "from typing import TypedDict\nclass R(TypedDict):\n    x: float\n"
        "@expose\ndef f() -> R:\n    return {'x': 1.0}\n",
    )
    INVALID = (
        "import torch\n@expose\ndef f() -> torch.Tensor:\n    return torch.zeros(1)\n",
        "@expose\ndef f() -> set[int]:\n    return {1}\n",
        "@expose\ndef f() -> bytes:\n    return b''\n",
        "class Plain:\n    pass\n@expose\ndef f() -> Plain:\n    return Plain()\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.return_problems:
                if p.kind == "not_wire":
                    msg = _pick_hint(p.message, param=False)
                    yield Finding(p.node, f"return type of `{fn.name}`: {msg}")


class ParamNotWire(Rule):
    """A parameter annotation must be a wire type: the agent sends JSON, so the
    function can only receive what JSON can carry."""

    CODE = "SG004"
    SEVERITY = "error"
    NAME = "parameter-not-wire-type"
    VALID = (
        "from typing import Literal\n@expose\n"
        "def f(xs: list[float], mode: Literal['a', 'b'] = 'a') -> float:\n    return sum(xs)\n",
    )
    INVALID = (
        "import numpy as np\n@expose\ndef f(x: np.ndarray) -> float:\n    return 0.0\n",
        "@expose\ndef f(x: dict[int, str]) -> int:\n    return 0\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for param in fn.params:
                for p in param.problems:
                    if p.kind == "not_wire":
                        msg = _pick_hint(p.message, param=True)
                        yield Finding(p.node, f"parameter `{param.name}` of `{fn.name}`: {msg}")


class PositionalOnly(Rule):
    """Calls arrive as a JSON object of named arguments, so ``*args`` and positional-only
    parameters cannot be passed. Use named parameters or a ``list[...]``."""

    CODE = "SG005"
    SEVERITY = "error"
    NAME = "positional-only-parameters"
    VALID = ("@expose\ndef f(a: int, *, b: int = 0) -> int:\n    return a + b\n",)
    INVALID = (
        "@expose\ndef f(*args: int) -> int:\n    return sum(args)\n",
        "@expose\ndef f(a: int, /) -> int:\n    return a\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if p.kind == "var_positional":
                    yield Finding(
                        p.node,
                        f"`*{p.name}` in `{fn.name}`: calls pass named arguments only;"
                        f" take `{p.name}: list[...]` instead",
                    )
                elif p.kind == "positional_only":
                    yield Finding(
                        p.node,
                        f"`{p.name}` of `{fn.name}` is positional-only; remove the `/`"
                        " so it can be passed by name",
                    )


class DefaultMismatch(Rule):
    """A literal default must match its parameter's annotation; otherwise the client's
    signature and the server's validation would disagree with the function."""

    CODE = "SG006"
    SEVERITY = "error"
    NAME = "default-type-mismatch"
    VALID = (
        "@expose\ndef f(n: int = 5, t: float = 1, s: str | None = None) -> int:\n    return n\n",
    )
    INVALID = (
        "@expose\ndef f(n: int = '5') -> int:\n    return n\n",
        "from typing import Literal\n@expose\ndef f(m: Literal['a', 'b'] = 'c') -> str:\n"
        "    return m\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        types = facts.converter.typedefs
        for fn in facts.functions:
            for p in fn.params:
                if p.default is None or not p.default_is_literal or p.annotation is None:
                    continue
                if p.default_value is None:
                    continue  # None defaults are SG007's business
                if not value_matches(p.default_value, p.type, types):
                    yield Finding(
                        p.default,
                        f"default {cst.Module([]).code_for_node(p.default)} of `{p.name}` in"
                        f" `{fn.name}` does not match its annotation"
                        f" `{spec.type_to_python(p.type)}`",
                    )


class ImplicitOptional(Rule):
    """``x: str = None`` is an implicit Optional: the client will type it ``str | None``.
    Spell it ``x: str | None = None`` so readers see the same."""

    CODE = "SG007"
    SEVERITY = "warning"
    NAME = "implicit-optional"
    VALID = ("@expose\ndef f(x: str | None = None) -> str:\n    return x or ''\n",)
    INVALID = ("@expose\ndef f(x: str = None) -> str:\n    return x or ''\n",)

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if (
                    p.default is not None
                    and p.default_is_literal
                    and p.default_value is None
                    and p.annotation is not None
                    and not value_matches(None, p.type, facts.converter.typedefs)
                ):
                    t = spec.type_to_python(p.type)
                    yield Finding(
                        p.node,
                        f"`{p.name}: {t} = None` in `{fn.name}` is an implicit Optional;"
                        f" write `{p.name}: {t} | None = None`",
                    )


class MisplacedExpose(Rule):
    """``@expose`` works on module-level functions only: methods need an instance and
    nested functions a closure, neither of which exists on the wire."""

    CODE = "SG008"
    SEVERITY = "error"
    NAME = "expose-not-module-function"
    VALID = ("@expose\ndef f() -> int:\n    return 1\n",)
    INVALID = (
        "class A:\n    @expose\n    def f(self) -> int:\n        return 1\n",
        "def outer() -> None:\n    @expose\n    def f() -> int:\n        return 1\n",
        "@expose\nclass A:\n    pass\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for node, what in facts.misplaced:
            name = node.name.value if isinstance(node, (cst.FunctionDef, cst.ClassDef)) else "?"
            yield Finding(
                node.name if isinstance(node, (cst.FunctionDef, cst.ClassDef)) else node,
                f"`@expose` on {what} `{name}`: only module-level functions can be exposed;"
                " move it to the top level",
            )


class BadExposedName(Rule):
    """Exposed names become client methods and package attributes: they must be unique,
    public, and not collide with what the client defines (``Client``, error classes,
    ``close``, …) or with a type of the interface. Named types become classes of the
    client's ``types`` module: they must be public and not shadow its imports
    (``Field``, ``BaseModel``, …). The reserved names are ``scopegen.protocol``'s."""

    CODE = "SG009"
    SEVERITY = "error"
    NAME = "bad-exposed-name"
    VALID = ("@expose\ndef embed() -> int:\n    return 1\n",)
    INVALID = (
        "@expose\ndef _private() -> int:\n    return 1\n",
        "@expose\ndef close() -> int:\n    return 1\n",
        "@expose\ndef f() -> int:\n    return 1\n@expose\ndef f() -> int:\n    return 2\n",
        "from typing import TypedDict\nclass Field(TypedDict):\n    x: int\n"
        "@expose\ndef f() -> Field:\n    return {'x': 1}\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        seen: set[str] = set()
        for fn in facts.functions:
            name = fn.name
            if name in seen:
                yield Finding(fn.node.name, f"`{name}` is exposed twice; names must be unique")
            seen.add(name)
            if name.startswith("_"):
                yield Finding(
                    fn.node.name,
                    f"`{name}` starts with `_`: private names are never exposed; rename it",
                )
            # The client emitter refuses exactly these names (scopegen.protocol).
            elif protocol.reserved_function_name(name):
                yield Finding(
                    fn.node.name,
                    f"`{name}` collides with a name the generated client defines; rename it",
                )
            elif name in facts.converter.typedefs:
                yield Finding(
                    fn.node.name, f"`{name}` collides with the type `{name}` of this interface"
                )
        for name in facts.converter.typedefs:
            if protocol.reserved_type_name(name):
                why = (
                    "starts with `_`"
                    if name.startswith("_")
                    else "collides with a name the generated client's `types` module binds"
                )
                yield Finding(
                    facts.converter.names.classes[name].name, f"type `{name}` {why}; rename it"
                )


class LoadInsideFunction(Rule):
    """Models and weights should load once, at module level, when the server starts;
    loading inside an exposed function repeats the load on every call."""

    CODE = "SG010"
    SEVERITY = "warning"
    NAME = "load-inside-function"
    VALID = (
        "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('/m')\n"
        "@expose\ndef f() -> int:\n    return model.config.hidden_size\n",
    )
    INVALID = (
        "from transformers import AutoModel\n@expose\ndef f() -> int:\n"
        "    model = AutoModel.from_pretrained('/m')\n    return model.config.hidden_size\n",
        "import torch\n@expose\ndef f() -> int:\n    sd = torch.load('w.pt')\n    return len(sd)\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for call, what in fn.load_calls:
                yield Finding(
                    call,
                    f"`{what}` inside `{fn.name}` loads weights on every call;"
                    " load once at module level",
                )


class NonLiteralModelId(Rule):
    """``get_model_path`` with a literal id lets scopegen download the model into the
    Modal volume before the GPU starts; a computed id cannot be fetched ahead of time."""

    CODE = "SG011"
    SEVERITY = "warning"
    NAME = "non-literal-model-id"
    VALID = (
        "path = get_model_path('google/gemma-2-9b')\n@expose\ndef f() -> str:\n    return path\n",
    )
    INVALID = (
        "MODEL = 'google/gemma-2-9b'\npath = get_model_path(MODEL)\n"
        "@expose\ndef f() -> str:\n    return path\n",
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for call in facts.model_path_calls:
            if model_id_of(call) is None:
                yield Finding(
                    call,
                    "`get_model_path` with a non-literal id: the model cannot be fetched ahead"
                    " of time; pass the id as a string literal or list it under `models` in"
                    " the scopegen config",
                )


class NothingExposed(Rule):
    """An interface file must expose at least one function with ``@expose``."""

    CODE = "SG012"
    SEVERITY = "error"
    NAME = "nothing-exposed"
    VALID = ("@expose\ndef f() -> int:\n    return 1\n",)
    INVALID = ("def f() -> int:\n    return 1\n",)

    def check(self, facts: Facts) -> Iterator[Finding]:
        if not facts.functions:
            yield Finding(
                facts.module,
                "this file exposes no function; mark functions with `@expose`",
            )


class UnresolvedType(Rule):
    """An annotation names a type that is not defined in this file (imported from
    elsewhere): scopegen cannot see its fields, so the client types it ``Any``."""

    CODE = "SG013"
    SEVERITY = "warning"
    NAME = "unresolved-type"
    VALID = (
        "from typing import TypedDict\nclass R(TypedDict):\n    x: int\n"
        "@expose\ndef f() -> R:\n    return {'x': 1}\n",
    )
    INVALID = ("from mylib import Result\n@expose\ndef f() -> Result:\n    return Result()\n",)

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.return_problems:
                if p.kind == "unresolved":
                    yield Finding(p.node, f"return type of `{fn.name}`: {p.message}")
            for param in fn.params:
                for p in param.problems:
                    if p.kind == "unresolved":
                        yield Finding(
                            p.node, f"parameter `{param.name}` of `{fn.name}`: {p.message}"
                        )


RULES: tuple[Rule, ...] = (
    ParseError(),
    MissingParamAnnotation(),
    MissingReturnAnnotation(),
    ReturnNotWire(),
    ParamNotWire(),
    PositionalOnly(),
    DefaultMismatch(),
    ImplicitOptional(),
    MisplacedExpose(),
    BadExposedName(),
    LoadInsideFunction(),
    NonLiteralModelId(),
    NothingExposed(),
    UnresolvedType(),
)


def _pick_hint(message: str, *, param: bool) -> str:
    # Hints may carry a return-side and a parameter-side fix, split by "|".
    if "|" not in message:
        return message
    marker = "is not a wire type: "
    prefix, _, hints = message.partition(marker)
    ret_hint, _, param_hint = hints.partition("|")
    return f"{prefix}{marker}{param_hint if param else ret_hint}"


def rule_by_code(code: str) -> Rule:
    for r in RULES:
        if r.CODE == code:
            return r
    raise KeyError(code)


def model_id_of(call: cst.Call) -> str | None:
    """The literal model id of a ``get_model_path(...)`` call, if it has one."""
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value == "model_id":
            ok, v = literal_value(arg.value)
            return v if ok and isinstance(v, str) else None
    return None


def value_matches(value: spec.JSONValue, t: spec.WireType, types: dict[str, spec.TypeDef]) -> bool:
    """Would the server accept ``value`` (a JSON literal) for type ``t``? Strict JSON typing."""
    if isinstance(t, spec.AnyType):
        return True
    if isinstance(t, spec.Primitive):
        if t.name == "none":
            return value is None
        if t.name == "bool":
            return isinstance(value, bool)
        if t.name == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if t.name == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, str)
    if isinstance(t, spec.UnionType):
        return any(value_matches(value, o, types) for o in t.options)
    if isinstance(t, spec.LiteralType):
        return any(value == v and type(value) is type(v) for v in t.values)
    if isinstance(t, spec.ListType):
        return isinstance(value, list) and (
            t.item is None or all(value_matches(v, t.item, types) for v in value)
        )
    if isinstance(t, spec.TupleType):
        if not isinstance(value, list):
            return False
        if t.variadic:
            return all(value_matches(v, t.items[0], types) for v in value)
        return len(value) == len(t.items) and all(
            value_matches(v, i, types) for v, i in zip(value, t.items, strict=True)
        )
    if isinstance(t, spec.DictType):
        return isinstance(value, dict) and (
            t.value is None or all(value_matches(v, t.value, types) for v in value.values())
        )
    td = types.get(t.name)
    if isinstance(td, spec.EnumDef):
        return any(value == v for _, v in td.members)
    return isinstance(value, dict)


def function_ir_params(fn: FunctionFacts, module: cst.Module) -> tuple[spec.Parameter, ...]:
    """The IR parameters of an exposed function (implicit Optional applied)."""
    from scopegen.analyze._types import union

    out: list[spec.Parameter] = []
    for p in fn.params:
        if p.kind in ("var_positional",):
            continue
        kind: spec.ParamKind = (
            "var_keyword"
            if p.kind == "var_keyword"
            else "keyword_only"
            if p.kind == "keyword_only"
            else "positional_or_keyword"
        )
        t = p.type
        if p.default is not None and p.default_is_literal and p.default_value is None:
            t = union([t, spec.NONE])
        out.append(
            spec.Parameter(
                name=p.name,
                type=t,
                kind=kind,
                has_default=p.default is not None,
                default=p.default_value if p.default_is_literal else None,
                default_is_literal=p.default_is_literal,
                default_source=module.code_for_node(p.default) if p.default is not None else None,
            )
        )
    return tuple(out)
