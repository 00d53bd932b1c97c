"""The interface IR: what the analyzer learns from ``interface.py``.

Every emitter (client, Modal app, OpenAPI, manifest, lint report) and the
server's argument validation consume these objects; nothing else parses the
source. All nodes are frozen dataclasses so they can be hashed, shared and
compared.

Wire types form a small closed language (``docs/protocol.md``, "Wire types")::

    WireType = Primitive | AnyType | ListType | TupleType | DictType
             | UnionType | LiteralType | RefType

``RefType`` names a ``TypeDef`` (``ObjectDef`` for TypedDict / dataclass /
BaseModel, ``EnumDef`` for Enum) that lives in ``Interface.types``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson

__all__ = [
    "AnyType",
    "DictType",
    "EnumDef",
    "Field",
    "Function",
    "Interface",
    "JSONValue",
    "ListType",
    "LiteralType",
    "Location",
    "ObjectDef",
    "ParamKind",
    "Parameter",
    "Primitive",
    "RefType",
    "TupleType",
    "TypeDef",
    "UnionType",
    "WireType",
    "type_to_python",
]

JSONValue: TypeAlias = (
    bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
)
LiteralValue: TypeAlias = bool | int | str | None
PrimitiveName = Literal["str", "int", "float", "bool", "none"]
ParamKind = Literal["positional_or_keyword", "keyword_only", "var_keyword"]
ObjectKind = Literal["typeddict", "dataclass", "basemodel"]

SPEC_VERSION = 1


# --------------------------------------------------------------------------- wire types


@dataclass(frozen=True, slots=True)
class Primitive:
    name: PrimitiveName


@dataclass(frozen=True, slots=True)
class AnyType:
    pass


@dataclass(frozen=True, slots=True)
class ListType:
    """``list[item]``; ``item`` is ``None`` for a bare ``list``."""

    item: WireType | None = None


@dataclass(frozen=True, slots=True)
class TupleType:
    """``tuple[a, b]`` (fixed) or ``tuple[a, ...]`` (``variadic``, one item)."""

    items: tuple[WireType, ...]
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class DictType:
    """``dict[str, value]``; ``value`` is ``None`` for a bare ``dict``."""

    value: WireType | None = None


@dataclass(frozen=True, slots=True)
class UnionType:
    options: tuple[WireType, ...]


@dataclass(frozen=True, slots=True)
class LiteralType:
    values: tuple[LiteralValue, ...]


@dataclass(frozen=True, slots=True)
class RefType:
    """A class defined in the interface file; see ``Interface.types``."""

    name: str


WireType: TypeAlias = (
    Primitive | AnyType | ListType | TupleType | DictType | UnionType | LiteralType | RefType
)

STR = Primitive("str")
INT = Primitive("int")
FLOAT = Primitive("float")
BOOL = Primitive("bool")
NONE = Primitive("none")
ANY = AnyType()


# --------------------------------------------------------------------------- named types


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: WireType
    required: bool = True
    # JSON literal default, only meaningful when ``has_default``.
    default: JSONValue = None
    has_default: bool = False


@dataclass(frozen=True, slots=True)
class ObjectDef:
    name: str
    kind: ObjectKind
    fields: tuple[Field, ...]
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class EnumDef:
    name: str
    # (member name, value); values are all str or all int.
    members: tuple[tuple[str, str | int], ...]
    doc: str | None = None


TypeDef: TypeAlias = ObjectDef | EnumDef


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class Location:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: WireType
    kind: ParamKind = "positional_or_keyword"
    has_default: bool = False
    # When the default is a literal, its JSON value; the client repeats it.
    default: JSONValue = None
    default_is_literal: bool = False
    # Source text of the default (for docs), e.g. ``DEFAULT_PROMPT``.
    default_source: str | None = None

    @property
    def required(self) -> bool:
        return not self.has_default and self.kind != "var_keyword"


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[Parameter, ...]
    returns: WireType
    doc: str | None = None
    is_async: bool = False
    location: Location = field(default=Location(1, 0), compare=False)


@dataclass(frozen=True, slots=True)
class Interface:
    """A whole interface file, as the analyzer understood it."""

    name: str
    functions: tuple[Function, ...]
    types: tuple[TypeDef, ...] = ()
    model_ids: tuple[str, ...] = ()
    # File name relative to nothing in particular (``interface.py``); never absolute.
    source_name: str = "interface.py"

    def function(self, name: str) -> Function | None:
        for fn in self.functions:
            if fn.name == name:
                return fn
        return None

    def type_map(self) -> dict[str, TypeDef]:
        return {t.name: t for t in self.types}

    @property
    def hash(self) -> str:
        """Stable content hash of the callable surface (not of whitespace or bodies)."""
        payload = {
            "functions": [_function_json(f, {}) for f in self.functions],
            "types": [typedef_schema(t) | {"name": t.name} for t in self.types],
        }
        digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()[:16]

    # ----------------------------------------------------------------- manifest

    def manifest(self) -> dict[str, Any]:
        """The manifest (``scopegen schema`` / ``GET /v1/functions``; ``docs/protocol.md``).

        Each schema is self-contained: it carries the ``$defs`` it refers to, so
        a function's parameter schema can be handed to a validator or an MCP
        client on its own.
        """
        types = self.type_map()
        return {
            "scopegen": SPEC_VERSION,
            "name": self.name,
            "source": self.source_name,
            "hash": self.hash,
            "models": list(self.model_ids),
            "functions": [_function_json(f, types) for f in self.functions],
        }

    def manifest_json(self) -> bytes:
        return orjson.dumps(self.manifest(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    def parameters_schema(self, fn: Function) -> dict[str, Any]:
        return _params_schema(fn, self.type_map())

    def returns_schema(self, fn: Function) -> dict[str, Any]:
        return _with_defs(type_schema(fn.returns), [fn.returns], self.type_map())


# --------------------------------------------------------------------------- JSON Schema


def type_schema(t: WireType) -> dict[str, Any]:
    """JSON Schema of a wire type; named types become ``$ref: #/$defs/Name``."""
    if isinstance(t, Primitive):
        return {"type": "null" if t.name == "none" else _JSON_NAMES[t.name]}
    if isinstance(t, AnyType):
        return {}
    if isinstance(t, ListType):
        return {"type": "array"} | ({"items": type_schema(t.item)} if t.item else {})
    if isinstance(t, TupleType):
        if t.variadic:
            return {"type": "array", "items": type_schema(t.items[0])}
        n = len(t.items)
        return {
            "type": "array",
            "prefixItems": [type_schema(i) for i in t.items],
            "items": False,
            "minItems": n,
            "maxItems": n,
        }
    if isinstance(t, DictType):
        schema: dict[str, Any] = {"type": "object"}
        if t.value is not None:
            schema["additionalProperties"] = type_schema(t.value)
        return schema
    if isinstance(t, UnionType):
        return {"anyOf": [type_schema(o) for o in t.options]}
    if isinstance(t, LiteralType):
        if len(t.values) == 1:
            return {"const": t.values[0]}
        return {"enum": list(t.values)}
    return {"$ref": f"#/$defs/{t.name}"}


_JSON_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def typedef_schema(t: TypeDef) -> dict[str, Any]:
    if isinstance(t, EnumDef):
        schema: dict[str, Any] = {"title": t.name, "enum": [v for _, v in t.members]}
    else:
        props: dict[str, Any] = {}
        for f in t.fields:
            p = type_schema(f.type)
            if f.has_default:
                p = p | {"default": f.default}
            props[f.name] = p
        schema = {
            "title": t.name,
            "type": "object",
            "properties": props,
            "required": [f.name for f in t.fields if f.required],
        }
    if t.doc:
        schema["description"] = t.doc
    return schema


def iter_refs(t: WireType | None) -> Iterator[str]:
    if t is None:
        return
    if isinstance(t, RefType):
        yield t.name
    elif isinstance(t, ListType):
        yield from iter_refs(t.item)
    elif isinstance(t, DictType):
        yield from iter_refs(t.value)
    elif isinstance(t, (TupleType)):
        for i in t.items:
            yield from iter_refs(i)
    elif isinstance(t, UnionType):
        for o in t.options:
            yield from iter_refs(o)


def referenced_types(roots: list[WireType], types: Mapping[str, TypeDef]) -> list[str]:
    """Names of every type reachable from ``roots``, sorted."""
    seen: set[str] = set()
    stack = [name for r in roots for name in iter_refs(r)]
    while stack:
        name = stack.pop()
        if name in seen or name not in types:
            continue
        seen.add(name)
        td = types[name]
        if isinstance(td, ObjectDef):
            for f in td.fields:
                stack.extend(iter_refs(f.type))
    return sorted(seen)


def _with_defs(
    schema: dict[str, Any], roots: list[WireType], types: Mapping[str, TypeDef]
) -> dict[str, Any]:
    names = referenced_types(roots, types)
    if names:
        schema = schema | {"$defs": {n: typedef_schema(types[n]) for n in names}}
    return schema


def _params_schema(fn: Function, types: Mapping[str, TypeDef]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    extra: dict[str, Any] | bool = False
    for p in fn.params:
        if p.kind == "var_keyword":
            extra = type_schema(p.type)
            continue
        s = type_schema(p.type)
        if p.has_default and p.default_is_literal:
            s = s | {"default": p.default}
        props[p.name] = s
    schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": [p.name for p in fn.params if p.required],
        "additionalProperties": extra,
    }
    return _with_defs(schema, [p.type for p in fn.params], types)


def _function_json(fn: Function, types: Mapping[str, TypeDef]) -> dict[str, Any]:
    return {
        "name": fn.name,
        "doc": fn.doc,
        "async": fn.is_async,
        "parameters": _params_schema(fn, types),
        "returns": _with_defs(type_schema(fn.returns), [fn.returns], types),
    }


# --------------------------------------------------------------------------- Python spelling


def type_to_python(t: WireType, *, any_name: str = "Any") -> str:
    """How a wire type is spelled in generated Python (``list[float] | None``)."""
    if isinstance(t, Primitive):
        return "None" if t.name == "none" else t.name
    if isinstance(t, AnyType):
        return any_name
    if isinstance(t, ListType):
        inner = type_to_python(t.item, any_name=any_name) if t.item else any_name
        return f"list[{inner}]"
    if isinstance(t, TupleType):
        if t.variadic:
            return f"tuple[{type_to_python(t.items[0], any_name=any_name)}, ...]"
        if not t.items:
            return "tuple[()]"
        return "tuple[" + ", ".join(type_to_python(i, any_name=any_name) for i in t.items) + "]"
    if isinstance(t, DictType):
        inner = type_to_python(t.value, any_name=any_name) if t.value else any_name
        return f"dict[str, {inner}]"
    if isinstance(t, UnionType):
        return " | ".join(type_to_python(o, any_name=any_name) for o in t.options)
    if isinstance(t, LiteralType):
        return "Literal[" + ", ".join(repr(v) for v in t.values) + "]"
    return t.name
