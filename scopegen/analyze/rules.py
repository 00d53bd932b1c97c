"""The rule catalog: SG000-SG013 and SG015 (README: "Lint codes").

Each rule is one class, as in Fixit: code, severity, name, a one-paragraph
docstring, its message templates, ``VALID`` and ``INVALID`` examples that say
where the rule reports (the test suite runs every one and checks the line and
column of each report), and a ``check`` that reads the facts the single
traversal gathered and decides what to report. Codes are stable: a new rule
takes a new code.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import libcst as cst

from scopegen import protocol, spec
from scopegen.analyze._diagnostics import Diagnostic, Severity
from scopegen.analyze._facts import Facts, FunctionFacts, ParamFacts
from scopegen.analyze._ir import model_id_of
from scopegen.analyze._types import Problem, Reason
from scopegen.spec import admits_none, fits, python_type

__all__ = ["RULES", "Finding", "Invalid", "Rule", "Valid"]


@dataclass(frozen=True)
class Finding:
    node: cst.CSTNode
    message: str


@dataclass(frozen=True)
class Valid:
    """An example the rule does not report."""

    source: str


@dataclass(frozen=True)
class Invalid:
    """An example the rule reports at ``line``:``col`` (1-based, as lint prints them).

    ``also`` lists further places, when the rule reports the example more than once.
    """

    source: str
    line: int
    col: int
    also: tuple[tuple[int, int], ...] = ()

    @property
    def reports(self) -> tuple[tuple[int, int], ...]:
        """Every ``(line, col)`` the rule reports, in file order."""
        return tuple(sorted([(self.line, self.col), *self.also]))


class Rule:
    CODE: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    NAME: ClassVar[str]
    MESSAGE: ClassVar[str]
    VALID: ClassVar[tuple[Valid, ...]]
    INVALID: ClassVar[tuple[Invalid, ...]]

    def check(self, facts: Facts) -> Iterator[Finding]:
        return iter(())

    def report(self, node: cst.CSTNode, template: str | None = None, **values: Any) -> Finding:
        """A finding at ``node``: ``template`` (default ``MESSAGE``) filled with ``values``."""
        return Finding(node, (template or self.MESSAGE).format(**values))


def _return_of(fn: FunctionFacts) -> str:
    return f"return type of `{fn.name}`"


def _param_of(param: ParamFacts, fn: FunctionFacts) -> str:
    return f"parameter `{param.name}` of `{fn.name}`"


def _through_aliases(p: Problem, text: str) -> str:
    return "".join(f"in type alias `{a}`: " for a in p.aliases) + text


class ParseError(Rule):
    """The file cannot be parsed. The finding carries CPython's message and position;
    nothing else is checked until it parses."""

    CODE = "SG000"
    SEVERITY = "error"
    NAME = "parse-error"
    MESSAGE = "syntax error: {error}"
    CANNOT_PARSE = "cannot parse: {error}"
    TOO_DEEP = "the file is nested too deeply to analyze"
    INTERNAL = "internal analyzer error on {file}: {error} (please report it)"
    VALID = (Valid("@expose\ndef f(x: int) -> int:\n    return x\n"),)
    INVALID = (
        Invalid("@expose\ndef f(x: int) -> int\n    return x\n", line=2, col=21),
        Invalid("def (:\n", line=1, col=5),
    )

    # Nothing to check on facts: there are facts only when the file parsed.

    def syntax_error(self, source: str, path: str, exc: cst.ParserSyntaxError) -> Diagnostic:
        """The diagnostic for a file libcst could not parse."""
        # CPython's own message and position are what users know; libcst's parser
        # disagrees on a few constructs, so fall back to its message then.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings are noise here
                ast.parse(source, filename=path)
        except SyntaxError as err:
            line = err.lineno or 1
            col = err.offset or 1
            end = (err.end_lineno or line, max(err.end_offset or col, col))
            return self._at(path, self.MESSAGE.format(error=err.msg), (line, col), end)
        except (ValueError, RecursionError, MemoryError) as err:
            return self.at_start(path, self.CANNOT_PARSE.format(error=err))
        msg = str(exc).splitlines()[0] if str(exc) else "syntax error"
        at = (exc.raw_line, exc.raw_column + 1)
        return self._at(path, msg, at, at)

    def at_start(self, path: str, message: str) -> Diagnostic:
        """A diagnostic on the first character of the file (the analysis as a whole failed)."""
        return self._at(path, message, (1, 1), (1, 1))

    def _at(
        self, path: str, message: str, start: tuple[int, int], end: tuple[int, int]
    ) -> Diagnostic:
        return Diagnostic(path, *start, *end, self.CODE, self.SEVERITY, message)


class MissingParamAnnotation(Rule):
    """Every parameter of an exposed function needs a type annotation: the client's
    signature and the server's validation are built from it."""

    CODE = "SG001"
    SEVERITY = "error"
    NAME = "missing-parameter-annotation"
    MESSAGE = (
        "parameter `{name}` of `{function}` has no type annotation;"
        " annotate it, e.g. `{name}: str`"
    )
    VALID = (
        Valid("@expose\ndef f(text: str, n: int = 3) -> str:\n    return text * n\n"),
        Valid("@expose\ndef f(**options: float) -> dict:\n    return options\n"),
    )
    INVALID = (
        Invalid("@expose\ndef f(text) -> str:\n    return text\n", line=2, col=7),
        Invalid(
            "@expose\ndef f(text: str, **options) -> str:\n    return text\n", line=2, col=18
        ),
        Invalid("@expose\ndef f(a, b) -> str:\n    return a\n", line=2, col=7, also=((2, 10),)),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if p.annotation is None and p.kind != "var_positional":  # SG005's
                    star = "**" if p.kind == "var_keyword" else ""
                    yield self.report(p.node, name=star + p.name, function=fn.name)


class MissingReturnAnnotation(Rule):
    """An exposed function needs a return annotation: the client validates results
    into it and agents read it."""

    CODE = "SG002"
    SEVERITY = "error"
    NAME = "missing-return-annotation"
    MESSAGE = "`{function}` has no return annotation; add one, e.g. `-> dict`"
    VALID = (Valid("@expose\ndef f() -> dict:\n    return {}\n"),)
    INVALID = (Invalid("@expose\ndef f():\n    return {}\n", line=2, col=5),)

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            if fn.node.returns is None:
                yield self.report(fn.node.name, function=fn.name)


class Hint(NamedTuple):
    """How to fix a known non-wire type: as a return type, and as a parameter type."""

    returned: str
    taken: str


def _both(text: str) -> Hint:
    return Hint(text, text)


# Known non-wire types by qualified name, and whole packages whose objects never
# cross the wire, with how to fix them.
_TYPE_HINTS: dict[str, Hint] = {
    **dict.fromkeys(
        ("bytes", "bytearray", "memoryview"),
        Hint(
            "bytes are not JSON: return a base64 `str`", "bytes are not JSON: take a base64 `str`"
        ),
    ),
    **dict.fromkeys(
        ("set", "frozenset", "typing.Set", "typing.FrozenSet"),
        _both("use `list[...]` (JSON has no sets)"),
    ),
    "complex": Hint(
        "return `[real, imag]` as `list[float]`", "take `[real, imag]` as `list[float]`"
    ),
    "object": _both("use a concrete JSON type, or `Any`"),
    **dict.fromkeys(
        ("type", "typing.Type"),
        Hint("return the type's name as `str`", "take the type's name as `str`"),
    ),
    **dict.fromkeys(
        ("typing.Callable", "collections.abc.Callable"), _both("callables cannot cross the wire")
    ),
    **dict.fromkeys(
        (
            f"{module}.{name}"
            for module in ("typing", "collections.abc")
            for name in ("Iterator", "Generator", "AsyncIterator", "AsyncGenerator")
        ),
        Hint(
            "only the whole return annotation can stream (`-> Iterator[T]`);"
            " here, use a `list[...]`",
            "take a `list[...]`",
        ),
    ),
    **dict.fromkeys(
        (
            f"{module}.{name}"
            for module in ("typing", "collections.abc")
            for name in ("Iterable", "Sequence")
        ),
        _both("use `list[...]`"),
    ),
    **dict.fromkeys(
        ("typing.Mapping", "collections.abc.Mapping"), _both("use `dict[str, ...]`")
    ),
}
_PACKAGE_HINTS: dict[str, Hint] = {
    "torch": Hint(
        "return a `torch.Tensor` (a wire type) or plain data",
        "take a `torch.Tensor` (a wire type) or plain data",
    ),
    "numpy": Hint(
        "return a `numpy.ndarray` / `NDArray[...]` (a wire type) or plain data",
        "take a `numpy.ndarray` / `NDArray[...]` (a wire type) or plain data",
    ),
    "jax": Hint("return a list: `.tolist()`", "take `list[float]` and build the array inside"),
    "tensorflow": Hint(
        "return a list: `.numpy().tolist()`", "take `list[float]` and build the tensor inside"
    ),
    "pandas": Hint(
        'return records: `.to_dict(orient="records")`',
        "take `list[dict[str, Any]]` records and build the frame inside",
    ),
    "PIL": Hint(
        "return the image as a base64 `str` (PNG bytes)",
        "take a base64 `str` and decode the image inside",
    ),
    "transformers": Hint(
        "return plain data (str, numbers, lists, dicts), not model objects",
        "take plain data (str, numbers, lists, dicts), not model objects",
    ),
}


def _known_not_wire(p: Problem) -> Hint | None:
    """How to fix ``p`` when it names a type known not to cross the wire (``torch.Tensor``)."""
    if p.reason not in ("unresolved", "not_wire") or not p.qualified:
        return None
    return _TYPE_HINTS.get(p.qualified) or _PACKAGE_HINTS.get(p.qualified.split(".")[0])


class _NotWire(Rule):
    """What SG003 and SG004 share: the wording of every way an annotation fails."""

    MESSAGE = "{where}: {problem}"
    HINTED = "`{subject}` is not a wire type: {hint}"
    PROBLEMS: ClassVar[dict[Reason, str]] = {
        "not_wire": "`{subject}` is not a wire type: use str, int, float, bool, None, list,"
        " tuple, dict[str, ...], Literal, torch.Tensor, numpy.ndarray, NDArray[...], or a"
        " TypedDict, dataclass, pydantic BaseModel or Enum defined in this file",
        "not_a_type": "this annotation is not a type expression scopegen knows",
        "bytes_annotation": "a bytes annotation is not a type",
        "bad_string": "cannot parse string annotation {subject!r}",
        "alias_cycle": "type alias `{subject}` refers to itself",
        "slice": "slices are not types",
        "dict_arity": "`dict` takes two type arguments",
        "dict_key": "JSON object keys are strings: use `dict[str, ...]`",
        "arity": "expected exactly one type argument",
        "literal_value": "Literal values must be str, int, bool or None",
        "class_not_wire": "class `{subject}` is not a wire type: make it a TypedDict,"
        " @dataclass, pydantic BaseModel, or an Enum with str/int values",
        "enum_value": "enum member `{subject}` needs a literal str or int value to cross the wire",
        "enum_mixed": "enum `{subject}` mixes str and int values",
        "stream_args": "a streaming result sends nothing in and returns nothing at the end:"
        " write `{subject}[T, None, None]` (`AsyncGenerator[T, None]`)",
        "stream_kind": "`{subject}[...]` does not match the function: a `def` streams with"
        " `Iterator[T]` / `Generator[T, None, None]`, an `async def` with `AsyncIterator[T]`"
        " / `AsyncGenerator[T, None]`",
        "tensor_dtype": "`{subject}` is not a tensor dtype that crosses the wire: use bool,"
        " int8, int16, int32, int64, uint8, float16, ml_dtypes.bfloat16, float32 or float64",
    }

    def _hint(self, hint: Hint) -> str:
        raise NotImplementedError

    def problem_text(self, p: Problem) -> str | None:
        """What ``p`` says on this rule's side; ``None`` when it is SG013's (defined elsewhere)."""
        hint = _known_not_wire(p)
        subject = f"{p.subject}[...]" if p.subscripted else p.subject
        if hint is not None:
            text = self.HINTED.format(subject=subject, hint=self._hint(hint))
        elif p.reason == "unresolved":
            return None
        else:
            text = self.PROBLEMS[p.reason].format(subject=subject)
        return _through_aliases(p, text)


class ReturnNotWire(_NotWire):
    """The return annotation must be a wire type (JSON data, tensors and arrays): models,
    bytes, sets and other objects cannot cross the wire. Convert them first."""

    CODE = "SG003"
    SEVERITY = "error"
    NAME = "return-not-wire-type"
    VALID = (
        Valid("@expose\ndef f() -> list[float]:\n    return [1.0]\n"),
        Valid("import torch\n@expose\ndef f() -> torch.Tensor:\n    return torch.zeros(1)\n"),
        Valid(
            "import numpy as np\nfrom numpy.typing import NDArray\n"
            "@expose\ndef f() -> dict[str, NDArray[np.float32]]:\n    return {}\n"
        ),
        Valid(
            "from typing import TypedDict\nclass R(TypedDict):\n    x: float\n"
            "@expose\ndef f() -> R:\n    return {'x': 1.0}\n"
        ),
        Valid("from typing import Iterator\n@expose\ndef f() -> Iterator[int]:\n    yield 1\n"),
    )
    INVALID = (
        Invalid(
            "import torch\n@expose\ndef f() -> torch.nn.Module:\n    return torch.nn.ReLU()\n",
            line=3,
            col=12,
        ),
        Invalid(
            "import numpy as np\nfrom numpy.typing import NDArray\n"
            "@expose\ndef f() -> NDArray[np.complex64]:\n    return np.zeros(1)\n",
            line=4,
            col=20,
        ),
        Invalid("@expose\ndef f() -> set[int]:\n    return {1}\n", line=2, col=12),
        Invalid("@expose\ndef f() -> bytes:\n    return b''\n", line=2, col=12),
        Invalid(
            "class Plain:\n    pass\n@expose\ndef f() -> Plain:\n    return Plain()\n",
            line=4,
            col=12,
        ),
        Invalid(
            "import numpy as np\nVec = np.dtype\n@expose\ndef f() -> Vec:\n    return 0\n",
            line=4,
            col=12,
        ),
        Invalid(
            "from typing import Iterator\n@expose\nasync def f() -> Iterator[int]:\n    yield 1\n",
            line=3,
            col=18,
        ),
    )

    def _hint(self, hint: Hint) -> str:
        return hint.returned

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.return_problems:
                text = self.problem_text(p)
                if text is not None:
                    yield self.report(p.node, where=_return_of(fn), problem=text)


class ParamNotWire(_NotWire):
    """A parameter annotation must be a wire type: the agent sends JSON, so the
    function can only receive what JSON (and the tensor forms) can carry."""

    CODE = "SG004"
    SEVERITY = "error"
    NAME = "parameter-not-wire-type"
    VALID = (
        Valid(
            "from typing import Literal\n@expose\n"
            "def f(xs: list[float], mode: Literal['a', 'b'] = 'a') -> float:\n"
            "    return sum(xs)\n"
        ),
        Valid("import torch\n@expose\ndef f(v: torch.Tensor) -> float:\n    return 0.0\n"),
    )
    INVALID = (
        Invalid(
            "import numpy as np\n@expose\ndef f(x: np.dtype) -> float:\n    return 0.0\n",
            line=3,
            col=10,
        ),
        Invalid("@expose\ndef f(x: dict[int, str]) -> int:\n    return 0\n", line=2, col=15),
        Invalid(
            "@expose\ndef f(x: bytes, y: set[str]) -> int:\n    return 0\n",
            line=2,
            col=10,
            also=((2, 20),),
        ),
    )

    def _hint(self, hint: Hint) -> str:
        return hint.taken

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for param in fn.params:
                for p in param.problems:
                    text = self.problem_text(p)
                    if text is not None:
                        yield self.report(p.node, where=_param_of(param, fn), problem=text)


class PositionalOnly(Rule):
    """Calls arrive as a JSON object of named arguments, so ``*args`` and positional-only
    parameters cannot be passed. Use named parameters or a ``list[...]``."""

    CODE = "SG005"
    SEVERITY = "error"
    NAME = "positional-only-parameters"
    MESSAGE = (
        "`*{name}` in `{function}`: calls pass named arguments only;"
        " take `{name}: list[...]` instead"
    )
    POSITIONAL_ONLY = (
        "`{name}` of `{function}` is positional-only; remove the `/` so it can be passed by name"
    )
    VALID = (Valid("@expose\ndef f(a: int, *, b: int = 0) -> int:\n    return a + b\n"),)
    INVALID = (
        Invalid("@expose\ndef f(*args: int) -> int:\n    return sum(args)\n", line=2, col=7),
        Invalid("@expose\ndef f(a: int, /) -> int:\n    return a\n", line=2, col=7),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if p.kind == "var_positional":
                    yield self.report(p.node, name=p.name, function=fn.name)
                elif p.kind == "positional_only":
                    yield self.report(
                        p.node, self.POSITIONAL_ONLY, name=p.name, function=fn.name
                    )


class DefaultMismatch(Rule):
    """A literal default must match its parameter's annotation; otherwise the client's
    signature and the server's validation would disagree with the function."""

    CODE = "SG006"
    SEVERITY = "error"
    NAME = "default-type-mismatch"
    MESSAGE = (
        "default {default} of `{name}` in `{function}` does not match its annotation `{type}`"
    )
    VALID = (
        Valid(
            "@expose\ndef f(n: int = 5, t: float = 1, s: str | None = None) -> int:\n"
            "    return n\n"
        ),
    )
    INVALID = (
        Invalid("@expose\ndef f(n: int = '5') -> int:\n    return n\n", line=2, col=16),
        Invalid(
            "from typing import Literal\n@expose\ndef f(m: Literal['a', 'b'] = 'c') -> str:\n"
            "    return m\n",
            line=3,
            col=30,
        ),
        Invalid("@expose\ndef f(flag: int = True) -> int:\n    return flag\n", line=2, col=19),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        types = facts.converter.typedefs
        for fn in facts.functions:
            for p in fn.params:
                if p.default is None or not p.default_is_literal or p.annotation is None:
                    continue
                if p.default_value is None:
                    continue  # None defaults are SG007's business
                if not fits(p.default_value, p.type, types):
                    yield self.report(
                        p.default,
                        default=facts.module.code_for_node(p.default),
                        name=p.name,
                        function=fn.name,
                        type=python_type(p.type),
                    )


class ImplicitOptional(Rule):
    """``x: str = None`` is an implicit Optional: the client will type it ``str | None``.
    Spell it ``x: str | None = None`` so readers see the same."""

    CODE = "SG007"
    SEVERITY = "warning"
    NAME = "implicit-optional"
    MESSAGE = (
        "`{name}: {type} = None` in `{function}` is an implicit Optional;"
        " write `{name}: {type} | None = None`"
    )
    VALID = (Valid("@expose\ndef f(x: str | None = None) -> str:\n    return x or ''\n"),)
    INVALID = (
        Invalid("@expose\ndef f(x: str = None) -> str:\n    return x or ''\n", line=2, col=7),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.params:
                if (
                    p.default is not None
                    and p.default_is_literal
                    and p.default_value is None
                    and p.annotation is not None
                    and not admits_none(p.type)
                ):
                    yield self.report(
                        p.node, name=p.name, type=python_type(p.type), function=fn.name
                    )


class MisplacedExpose(Rule):
    """``@expose`` works on module-level functions only: methods need an instance and
    nested functions a closure, neither of which exists on the wire."""

    CODE = "SG008"
    SEVERITY = "error"
    NAME = "expose-not-module-function"
    MESSAGE = (
        "`@expose` on {what} `{name}`: only module-level functions can be exposed;"
        " move it to the top level"
    )
    VALID = (Valid("@expose\ndef f() -> int:\n    return 1\n"),)
    INVALID = (
        Invalid(
            "class A:\n    @expose\n    def f(self) -> int:\n        return 1\n", line=3, col=9
        ),
        Invalid(
            "def outer() -> None:\n    @expose\n    def f() -> int:\n        return 1\n",
            line=3,
            col=9,
        ),
        Invalid("@expose\nclass A:\n    pass\n", line=2, col=7),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for node, what in facts.misplaced:
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                yield self.report(node.name, what=what, name=node.name.value)
            else:
                yield self.report(node, what=what, name="?")


class BadExposedName(Rule):
    """Exposed names become client methods and package attributes: they must be unique,
    public, and not collide with what the client defines (``Client``, error classes,
    ``close``, …) or with a type of the interface. Named types become classes of the
    client's ``types`` module: they must be public and not shadow its imports
    (``Field``, ``BaseModel``, …). The reserved names are ``scopegen.protocol``'s."""

    CODE = "SG009"
    SEVERITY = "error"
    NAME = "bad-exposed-name"
    MESSAGE = "`{name}` collides with a name the generated client defines; rename it"
    TWICE = "`{name}` is exposed twice; names must be unique"
    PRIVATE = "`{name}` starts with `_`: private names are never exposed; rename it"
    TYPE_NAME = "`{name}` collides with the type `{name}` of this interface"
    PRIVATE_TYPE = "type `{name}` starts with `_`; rename it"
    RESERVED_TYPE = (
        "type `{name}` collides with a name the generated client's `types` module binds;"
        " rename it"
    )
    VALID = (Valid("@expose\ndef embed() -> int:\n    return 1\n"),)
    INVALID = (
        Invalid("@expose\ndef _private() -> int:\n    return 1\n", line=2, col=5),
        Invalid("@expose\ndef close() -> int:\n    return 1\n", line=2, col=5),
        Invalid(
            "@expose\ndef f() -> int:\n    return 1\n@expose\ndef f() -> int:\n    return 2\n",
            line=5,
            col=5,
        ),
        Invalid(
            "from typing import TypedDict\nclass Field(TypedDict):\n    x: int\n"
            "@expose\ndef f() -> Field:\n    return {'x': 1}\n",
            line=2,
            col=7,
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        seen: set[str] = set()
        for fn in facts.functions:
            name, node = fn.name, fn.node.name
            if name in seen:
                yield self.report(node, self.TWICE, name=name)
            seen.add(name)
            if name.startswith("_"):
                yield self.report(node, self.PRIVATE, name=name)
            # The client emitter refuses exactly these names (scopegen.protocol).
            elif protocol.reserved_function_name(name):
                yield self.report(node, name=name)
            elif name in facts.converter.typedefs:
                yield self.report(node, self.TYPE_NAME, name=name)
        for name in facts.converter.typedefs:
            if protocol.reserved_type_name(name):
                why = self.PRIVATE_TYPE if name.startswith("_") else self.RESERVED_TYPE
                yield self.report(facts.converter.names.classes[name].name, why, name=name)


class LoadInsideFunction(Rule):
    """Models and weights should load once, at module level, when the server starts;
    loading inside an exposed function repeats the load on every call."""

    CODE = "SG010"
    SEVERITY = "warning"
    NAME = "load-inside-function"
    MESSAGE = "`{call}` inside `{function}` loads weights on every call; load once at module level"
    VALID = (
        Valid(
            "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('/m')\n"
            "@expose\ndef f() -> int:\n    return model.config.hidden_size\n"
        ),
    )
    INVALID = (
        Invalid(
            "from transformers import AutoModel\n@expose\ndef f() -> int:\n"
            "    model = AutoModel.from_pretrained('/m')\n    return model.config.hidden_size\n",
            line=4,
            col=13,
        ),
        Invalid(
            "import torch\n@expose\ndef f() -> int:\n    sd = torch.load('w.pt')\n"
            "    return len(sd)\n",
            line=4,
            col=10,
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for call, what in fn.load_calls:
                yield self.report(call, call=what, function=fn.name)


class NonLiteralModelId(Rule):
    """``get_model_path`` with a literal id lets scopegen download the model into the
    Modal volume before the GPU starts; a computed id cannot be fetched ahead of time."""

    CODE = "SG011"
    SEVERITY = "warning"
    NAME = "non-literal-model-id"
    MESSAGE = (
        "`get_model_path` with a non-literal id: the model cannot be fetched ahead of time;"
        " pass the id as a string literal or list it under `models` in the scopegen config"
    )
    VALID = (
        Valid(
            "path = get_model_path('google/gemma-2-9b')\n@expose\ndef f() -> str:\n"
            "    return path\n"
        ),
    )
    INVALID = (
        Invalid(
            "MODEL = 'google/gemma-2-9b'\npath = get_model_path(MODEL)\n"
            "@expose\ndef f() -> str:\n    return path\n",
            line=2,
            col=8,
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for call in facts.model_path_calls:
            if model_id_of(call) is None:
                yield self.report(call)


class NothingExposed(Rule):
    """An interface file must expose at least one function with ``@expose``."""

    CODE = "SG012"
    SEVERITY = "error"
    NAME = "nothing-exposed"
    MESSAGE = "this file exposes no function; mark functions with `@expose`"
    VALID = (Valid("@expose\ndef f() -> int:\n    return 1\n"),)
    INVALID = (Invalid("def f() -> int:\n    return 1\n", line=1, col=1),)

    def check(self, facts: Facts) -> Iterator[Finding]:
        if not facts.functions:
            yield self.report(facts.module)


class UnresolvedType(Rule):
    """An annotation names a type that is not defined in this file (imported from
    elsewhere): scopegen cannot see its fields, so the client types it ``Any``."""

    CODE = "SG013"
    SEVERITY = "warning"
    NAME = "unresolved-type"
    MESSAGE = (
        "{where}: {aliases}`{subject}` is not defined in this file; the client types it `Any`"
        " (define the type in the interface file to keep it typed)"
    )
    VALID = (
        Valid(
            "from typing import TypedDict\nclass R(TypedDict):\n    x: int\n"
            "@expose\ndef f() -> R:\n    return {'x': 1}\n"
        ),
    )
    INVALID = (
        Invalid(
            "from mylib import Result\n@expose\ndef f() -> Result:\n    return Result()\n",
            line=3,
            col=12,
        ),
        Invalid(
            "from mylib import Box, Result\n@expose\ndef f(b: Box[int]) -> Result:\n"
            "    return Result()\n",
            line=3,
            col=10,
            also=((3, 23),),
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            for p in fn.return_problems:
                if self._mine(p):
                    yield self._report(p, _return_of(fn))
            for param in fn.params:
                for p in param.problems:
                    if self._mine(p):
                        yield self._report(p, _param_of(param, fn))

    @staticmethod
    def _mine(p: Problem) -> bool:
        # A known non-wire type (``torch.Tensor``) is SG003/SG004's, however it was imported.
        return p.reason == "unresolved" and _known_not_wire(p) is None

    def _report(self, p: Problem, where: str) -> Finding:
        return self.report(p.node, where=where, aliases=_through_aliases(p, ""), subject=p.subject)


class BlockingInAsync(Rule):
    """An exposed ``async def`` runs on the server's event loop: a call in it that blocks
    (a model's forward pass, ``.generate()``, ``torch`` ops, ``time.sleep``, ``requests``,
    file reads) stops every other request until it returns, and the per-call timeout
    cannot interrupt it. A plain ``def`` runs in a worker thread instead."""

    CODE = "SG015"
    SEVERITY = "warning"
    NAME = "blocking-in-async"
    MESSAGE = (
        "`{call}` blocks the event loop inside `async def {function}`{more}: no other request"
        " is served until it returns; make `{function}` a plain `def` (it runs in a worker"
        " thread) or `await asyncio.to_thread(...)` the blocking part"
    )
    VALID = (
        Valid(
            "import asyncio\n@expose\nasync def f(s: float) -> str:\n"
            "    await asyncio.sleep(s)\n    return 'ok'\n"
        ),
        Valid("import time\n@expose\ndef f(s: float) -> str:\n    time.sleep(s)\n    return ''\n"),
        Valid(
            "import asyncio\nfrom transformers import AutoModel\n"
            "model = AutoModel.from_pretrained('/m')\n"
            "@expose\nasync def f(n: int) -> int:\n"
            "    out = await asyncio.to_thread(model, n)\n"
            "    return await asyncio.to_thread(lambda: model.generate(out))\n"
        ),
    )
    INVALID = (
        Invalid(
            "import time\n@expose\nasync def f(s: float) -> str:\n    time.sleep(s)\n"
            "    return 'ok'\n",
            line=4,
            col=5,
        ),
        Invalid(
            "import torch\nfrom transformers import AutoModel, AutoTokenizer\n"
            "tok = AutoTokenizer.from_pretrained('/m')\n"
            "model = AutoModel.from_pretrained('/m').eval()\n"
            "@expose\nasync def f(text: str) -> int:\n"
            "    inputs = tok(text, return_tensors='pt')\n"
            "    with torch.no_grad():\n"
            "        out = model(**inputs)\n"
            "    return int(out.last_hidden_state.shape[1])\n",
            line=9,
            col=15,
        ),
        Invalid(
            "import requests\ndef fetch(u: str) -> str:\n    return requests.get(u).text\n"
            "@expose\nasync def f(u: str) -> str:\n    return fetch(u)\n",
            line=6,
            col=12,
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            if fn.blocking_calls:
                call, label = fn.blocking_calls[0]
                n = len(fn.blocking_calls) - 1
                more = f" (and {n} more blocking call{'s' if n > 1 else ''})" if n else ""
                yield self.report(call, call=label, function=fn.name, more=more)


class ReturnsToList(Rule):
    """A nested list of numbers built by ``.tolist()`` is the slowest way to send a tensor:
    36 MB of JSON text for one layer's 7 MB of float32. Tensors are wire types: return
    the tensor (``-> torch.Tensor`` or ``-> NDArray[np.float32]``) and it crosses the wire
    as raw bytes, about ten times faster."""

    CODE = "SG014"
    SEVERITY = "warning"
    NAME = "returns-tolist"
    MESSAGE = (
        "`{function}` returns a nested list built by `.tolist()`: return the tensor instead"
        " (annotate `-> torch.Tensor` or `-> NDArray[...]`); it crosses the wire as raw bytes,"
        " about 10x faster and 5x smaller than JSON numbers"
    )
    VALID = (
        Valid(
            "import torch\n@expose\ndef f() -> torch.Tensor:\n    return torch.zeros(2, 3)\n"
        ),
        Valid(
            "import torch\n@expose\ndef f() -> list[float]:\n    return torch.zeros(3).tolist()\n"
        ),
        Valid(
            "@expose\ndef f(rows: list[list[float]]) -> list[list[float]]:\n    return rows\n"
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n@expose\ndef f() -> list[list[float]]:\n"
            "    h = torch.zeros(2, 3)\n    return h.tolist()\n",
            line=5,
            col=12,
        ),
        Invalid(
            "import numpy as np\n@expose\ndef f(n: int) -> list[list[list[int]]] | None:\n"
            "    if n:\n        return None\n    return np.zeros((1, 1, 1)).tolist()\n",
            line=6,
            col=12,
        ),
    )

    def check(self, facts: Facts) -> Iterator[Finding]:
        for fn in facts.functions:
            if not _nested_numbers(fn.returns):
                continue
            for call in _returned_tolist(fn.node.body):
                yield self.report(call, function=fn.name)


def _nested_numbers(t: spec.WireType | None, depth: int = 0) -> bool:
    """``list[list[float]]`` (two levels or more), possibly ``| None``."""
    if isinstance(t, spec.UnionType):
        return any(_nested_numbers(o, depth) for o in t.options if o != spec.NONE)
    if isinstance(t, spec.ListType):
        return _nested_numbers(t.item, depth + 1)
    return depth >= 2 and t in (spec.FLOAT, spec.INT)


def _returned_tolist(node: cst.CSTNode) -> Iterator[cst.Call]:
    """The ``x.tolist()`` calls a function returns (not those of nested functions)."""
    for child in node.children:
        if isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(child, cst.Return):
            value = child.value
            if (
                isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "tolist"
                and not value.args
            ):
                yield value
            continue
        yield from _returned_tolist(child)


PARSE_ERROR = ParseError()

RULES: tuple[Rule, ...] = (
    PARSE_ERROR,
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
    ReturnsToList(),
    BlockingInAsync(),
)
