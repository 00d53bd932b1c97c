"""Argument validators built once per function from the IR (pydantic-core).

The validator checks exactly what ``/openapi.json`` documents, with strict
JSON typing (``true`` is not an int, ``0`` is not a bool, ``"5"`` is not a
number; ints are accepted for floats), and hands the function what a Python
caller would: dataclass and BaseModel parameters become instances of the real
classes of the loaded module, Enum parameters become members, TypedDicts stay
dicts. Input is the already-parsed JSON body, so tuples arrive as lists.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import PydanticCustomError, SchemaValidator
from pydantic_core import core_schema as cs

from scopegen.server._tensors import tensor_schema
from scopegen.spec import (
    AnyType,
    DictType,
    EnumDef,
    Function,
    ListType,
    LiteralType,
    ObjectDef,
    Primitive,
    RefType,
    TensorType,
    TupleType,
    TypeDef,
    UnionType,
    WireType,
)

__all__ = ["build_validator", "error_details"]

_PRIMITIVES: dict[str, Callable[[], cs.CoreSchema]] = {
    "str": lambda: cs.str_schema(strict=True),
    "int": lambda: cs.int_schema(strict=True),
    "float": lambda: cs.float_schema(strict=True),
    "bool": lambda: cs.bool_schema(strict=True),
    "none": cs.none_schema,
}


def build_validator(
    fn: Function, types: Mapping[str, TypeDef], namespace: Mapping[str, Any]
) -> SchemaValidator:
    """A validator of ``fn``'s argument object; its output is the call's kwargs.

    Parameters the caller leaves out stay out, so the function applies its own
    defaults (literal or not). ``namespace`` is the loaded module's globals,
    where the classes behind ``RefType`` are looked up by name.
    """
    builder = _Builder(types, namespace)
    fields: dict[str, cs.TypedDictField] = {}
    extras: cs.CoreSchema | None = None
    for p in fn.params:
        if p.kind == "var_keyword":
            extras = builder.wire(p.type)
            continue
        fields[p.name] = cs.typed_dict_field(builder.wire(p.type), required=p.required)
    root: cs.CoreSchema
    if extras is None:
        root = cs.typed_dict_schema(fields, extra_behavior="forbid", cls_name=fn.name)
    else:
        root = cs.typed_dict_schema(
            fields, extra_behavior="allow", extras_schema=extras, cls_name=fn.name
        )
    if builder.definitions:
        root = cs.definitions_schema(root, list(builder.definitions.values()))
    return SchemaValidator(root)


def error_details(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic-core errors -> the protocol's ``details`` (``loc``, ``msg``, ``type``).

    ``msg`` ends with the type the caller sent (``..., got str``), from the
    errors' ``input`` (only the type is shown, and a short literal's value:
    arguments can be long or private). Missing and unexpected arguments have
    nothing to add.
    """
    out = []
    for e in errors:
        msg = e["msg"]
        if e["type"] not in _NO_GOT and "input" in e:
            msg = f"{msg}, got {_got(e['input'], e['type'])}"
        out.append({"loc": list(e["loc"]), "msg": msg, "type": e["type"]})
    return out


_NO_GOT = frozenset({"missing", "extra_forbidden", "unexpected_keyword_argument", "tensor_invalid"})
# Python's names for what a JSON body decodes to (the annotations' vocabulary).
_JSON_NAMES = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "None",
    list: "list",
    dict: "dict",
}


def _got(value: Any, error_type: str) -> str:
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    if error_type == "literal_error" and type(value) in _SHOWN_LITERALS:
        shown = json.dumps(value, ensure_ascii=False)
        if len(shown) <= 40:
            return f"{name} {shown}"
    return name


_SHOWN_LITERALS = frozenset({str, int, bool})


class _Builder:
    def __init__(self, types: Mapping[str, TypeDef], namespace: Mapping[str, Any]) -> None:
        self._types = types
        self._namespace = namespace
        self.definitions: dict[str, cs.CoreSchema] = {}

    def wire(self, t: WireType | None) -> cs.CoreSchema:
        if t is None:
            return cs.any_schema()
        if isinstance(t, Primitive):
            return _PRIMITIVES[t.name]()
        if isinstance(t, AnyType):
            return cs.any_schema()
        if isinstance(t, ListType):
            return cs.list_schema(self.wire(t.item), strict=True)
        if isinstance(t, TupleType):
            items = [self.wire(i) for i in t.items]
            if t.variadic:
                return cs.tuple_schema(items, variadic_item_index=0)
            return cs.tuple_schema(items)
        if isinstance(t, DictType):
            return cs.dict_schema(cs.str_schema(strict=True), self.wire(t.value), strict=True)
        if isinstance(t, UnionType):
            return self._union(t.options)
        if isinstance(t, LiteralType):
            return _literal(t.values)
        if isinstance(t, TensorType):
            return tensor_schema(t)
        return self._ref(t)

    def _union(self, options: tuple[WireType, ...]) -> cs.CoreSchema:
        rest = [o for o in options if o != Primitive("none")]
        nullable = len(rest) < len(options)
        if not rest:
            return cs.none_schema()
        inner = (
            self.wire(rest[0]) if len(rest) == 1 else cs.union_schema([self.wire(o) for o in rest])
        )
        return cs.nullable_schema(inner) if nullable else inner

    def _ref(self, t: RefType) -> cs.CoreSchema:
        if t.name not in self._types:
            # The IR never refers to a type it does not define; be lenient anyway.
            return cs.any_schema()
        if t.name not in self.definitions:
            # Placeholder first: a recursive type refers to itself while being built.
            self.definitions[t.name] = cs.any_schema(ref=t.name)
            self.definitions[t.name] = self._typedef(self._types[t.name])
        return cs.definition_reference_schema(t.name)

    def _typedef(self, td: TypeDef) -> cs.CoreSchema:
        runtime = self._namespace.get(td.name)
        if not isinstance(runtime, type) or runtime.__name__ != td.name:
            runtime = None
        if isinstance(td, EnumDef):
            values = _literal(tuple(v for _, v in td.members))
            if runtime is not None and issubclass(runtime, enum.Enum):
                return cs.no_info_after_validator_function(runtime, values, ref=td.name)
            return _with_ref(values, td.name)
        fields = {
            f.name: cs.typed_dict_field(self.wire(f.type), required=f.required) for f in td.fields
        }
        # Extra keys are ignored, as the documented schema allows them.
        obj = cs.typed_dict_schema(fields, extra_behavior="ignore", cls_name=td.name)
        make = _constructor(td, runtime)
        if make is None:
            return _with_ref(obj, td.name)
        return cs.no_info_after_validator_function(make, obj, ref=td.name)


def _with_ref(schema: cs.CoreSchema, ref: str) -> cs.CoreSchema:
    # Every definition needs a ref; a no-op after-validator is the cheapest carrier.
    return cs.no_info_after_validator_function(_identity, schema, ref=ref)


def _identity(value: Any) -> Any:
    return value


def _constructor(td: ObjectDef, runtime: type | None) -> Callable[[Any], Any] | None:
    if runtime is None or td.kind == "typeddict":
        return None
    if td.kind == "dataclass" and dataclasses.is_dataclass(runtime):
        cls = runtime

        def make_dataclass(data: dict[str, Any]) -> Any:
            try:
                return cls(**data)
            except ValueError:
                raise
            except Exception as exc:
                # e.g. a TypeError from __post_init__: the caller's data, not a crash.
                raise ValueError(f"{cls.__name__}: {exc}") from exc

        return make_dataclass
    model_validate = getattr(runtime, "model_validate", None)
    if td.kind == "basemodel" and callable(model_validate):
        validate = model_validate

        def make_model(data: dict[str, Any]) -> Any:
            try:
                return validate(data)
            except ValueError:
                raise
            except Exception as exc:
                raise ValueError(f"{td.name}: {exc}") from exc

        return make_model
    return None


def _literal(values: tuple[Any, ...]) -> cs.CoreSchema:
    """``Literal[...]`` with JSON typing: ``True`` does not match ``1``, nor ``1.0``."""
    allowed = frozenset((type(v), v) for v in values)
    expected = _expected(values)

    def check(value: Any) -> Any:
        # Hashing is safe: only scalar types reach the set lookup.
        if type(value) in _SCALARS and (type(value), value) in allowed:
            return value
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )

    return cs.no_info_plain_validator_function(check)


_SCALARS = frozenset({str, int, bool, type(None)})


def _expected(values: tuple[Any, ...]) -> str:
    # Literal values are str, int, bool or None: shown as JSON, the way the caller sent them.
    shown = [json.dumps(v, ensure_ascii=False) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]
