"""JSON Schema of the IR, and the manifest built from it.

The manifest is what ``scopegen schema`` prints and ``GET /v1/functions``
answers (see docs/protocol.md). Each function's schemas are self-contained:
they carry the ``$defs`` they refer to, so a parameter schema can be handed
to a validator or an MCP client on its own. ``emit/openapi.py`` rewrites the
same schemas to point at its components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from scopegen.protocol import tensor_schema
from scopegen.spec import (
    AnyType,
    DictType,
    EnumDef,
    Function,
    Interface,
    ListType,
    LiteralType,
    Primitive,
    TensorType,
    TupleType,
    TypeDef,
    UnionType,
    WireType,
    referenced_types,
)

__all__ = [
    "MANIFEST_VERSION",
    "manifest",
    "manifest_json",
    "parameters_schema",
    "type_schema",
    "typedef_schema",
]

# The manifest's ``scopegen`` key: bumped when its shape changes.
MANIFEST_VERSION = 1

_JSON_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def manifest(interface: Interface) -> dict[str, Any]:
    """Every exposed function with its JSON Schemas, plus the interface's name, hash and models."""
    types = interface.type_map()
    return {
        "scopegen": MANIFEST_VERSION,
        "name": interface.name,
        "source": interface.source_name,
        "hash": interface.hash,
        "models": list(interface.model_ids),
        "functions": [_function_json(f, types) for f in interface.functions],
    }


def manifest_json(interface: Interface) -> bytes:
    """The manifest as indented JSON with sorted keys (what ``scopegen schema`` prints)."""
    return orjson.dumps(manifest(interface), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def parameters_schema(interface: Interface, fn: Function) -> dict[str, Any]:
    """The JSON Schema of ``fn``'s arguments object, with the ``$defs`` it uses."""
    return _params_schema(fn, interface.type_map())


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
    if isinstance(t, TensorType):
        return tensor_schema(t.dtype)
    return {"$ref": f"#/$defs/{t.name}"}


def typedef_schema(t: TypeDef) -> dict[str, Any]:
    """JSON Schema of a named type (the body of its ``$defs`` entry)."""
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
        # ``returns`` is then the schema of each item (``docs/protocol.md``, Streaming results).
        "streams": fn.streams,
        "parameters": _params_schema(fn, types),
        "returns": _with_defs(type_schema(fn.returns), [fn.returns], types),
    }
