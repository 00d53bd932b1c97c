"""The interface IR: what the analyzer learns from ``interface.py``, and small queries on it.

Every emitter (client, Modal app, OpenAPI, JSON Schema) and the server's
argument validation consume these objects; nothing else parses the source.
All nodes are frozen dataclasses so they can be hashed, shared and compared.

Wire types form a small closed language (``docs/protocol.md``, "Wire types")::

    WireType = Primitive | AnyType | ListType | TupleType | DictType
             | UnionType | LiteralType | RefType | TensorType

``RefType`` names a ``TypeDef`` (``ObjectDef`` for TypedDict / dataclass /
BaseModel, ``EnumDef`` for Enum) that lives in ``Interface.types``.

The queries are what every consumer would otherwise write again: ``union``
(normalisation), ``fits`` (does a JSON value fit a type), ``admits_none``,
``referenced_types``, and ``python_type``, the one Python spelling of a wire
type (the lint messages and the client emitter both use it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

__all__ = [
    "ANY",
    "BOOL",
    "FLOAT",
    "INT",
    "NONE",
    "NUMPY_SCALARS",
    "STR",
    "AnyType",
    "DictType",
    "EnumDef",
    "Field",
    "Function",
    "Interface",
    "JSONValue",
    "ListType",
    "LiteralType",
    "LiteralValue",
    "ObjectDef",
    "ParamKind",
    "Parameter",
    "Primitive",
    "RefType",
    "TensorType",
    "TupleType",
    "TypeDef",
    "UnionType",
    "WireType",
    "admits_none",
    "fits",
    "iter_refs",
    "py_str",
    "python_type",
    "referenced_types",
    "union",
]

JSONValue: TypeAlias = (
    bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
)
LiteralValue: TypeAlias = bool | int | str | None
PrimitiveName = Literal["str", "int", "float", "bool", "none"]
ParamKind = Literal["positional_or_keyword", "keyword_only", "var_keyword"]
ObjectKind = Literal["typeddict", "dataclass", "basemodel"]
TensorKind = Literal["torch", "numpy"]


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


@dataclass(frozen=True, slots=True)
class TensorType:
    """``torch.Tensor`` / ``numpy.ndarray`` / ``NDArray[np.float32]``: a tensor on the wire.

    ``kind`` is what the function receives (the server converts to it);
    ``dtype`` is the wire dtype name (``scopegen.protocol.TENSOR_DTYPES``) when the
    annotation declares one, else ``None`` (any listed dtype).
    """

    kind: TensorKind
    dtype: str | None = None


WireType: TypeAlias = (
    Primitive
    | AnyType
    | ListType
    | TupleType
    | DictType
    | UnionType
    | LiteralType
    | RefType
    | TensorType
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
    returns: WireType  # for a streaming function, the type of each item
    doc: str | None = None
    is_async: bool = False
    # ``-> Iterator[T]`` and kin: the result is a stream of ``returns`` items
    # (``docs/protocol.md``, Streaming results).
    streams: bool = False


@dataclass(frozen=True, slots=True)
class Interface:
    """A whole interface file, as the analyzer understood it."""

    name: str
    functions: tuple[Function, ...]
    types: tuple[TypeDef, ...] = ()
    model_ids: tuple[str, ...] = ()
    # File name relative to nothing in particular (``interface.py``); never absolute.
    source_name: str = "interface.py"
    # ``hash``, once computed; ``dataclasses.replace`` starts a copy without it.
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    def function(self, name: str) -> Function | None:
        for fn in self.functions:
            if fn.name == name:
                return fn
        return None

    def type_map(self) -> dict[str, TypeDef]:
        return {t.name: t for t in self.types}

    @property
    def hash(self) -> str:
        """Content hash of the callable surface: names, parameters, defaults and types.

        Docstrings, bodies and the source text of non-literal defaults are left
        out, so only an edit that changes how the interface is called makes a
        client built earlier warn.
        """
        digest = self._hash
        if digest is None:
            # Imported here: lint never needs the hash, and these cost ~4% of a lint.
            import hashlib

            import orjson

            payload = {"functions": _surface(self.functions), "types": _surface(self.types)}
            data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
            digest = hashlib.sha256(data).hexdigest()[:16]
            object.__setattr__(self, "_hash", digest)
        return digest


# Fields that say nothing about how a function is called.
_NOT_SURFACE = frozenset({"doc", "default_source"})


def _surface(value: Any) -> Any:
    """IR nodes as plain JSON data (tagged with their class), without ``_NOT_SURFACE``."""
    if isinstance(value, tuple):
        return [_surface(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        out: dict[str, Any] = {"": type(value).__name__}
        for f in fields(value):
            if f.name not in _NOT_SURFACE and f.init:
                out[f.name] = _surface(getattr(value, f.name))
        return out
    return value  # JSON values (defaults, literals) and names


# --------------------------------------------------------------------------- queries


def union(options: Iterable[WireType]) -> WireType:
    """``a | b``, normalised: nested unions flattened, duplicates dropped, None last.

    A union with ``Any`` is ``Any``; a union of one option is that option.
    """
    flat: list[WireType] = []
    for o in options:
        for x in o.options if isinstance(o, UnionType) else (o,):
            if x not in flat:
                flat.append(x)
    if any(isinstance(x, AnyType) for x in flat):
        return ANY
    # None goes last, as people write it (``str | None``).
    flat.sort(key=lambda x: x == NONE)
    return flat[0] if len(flat) == 1 else UnionType(tuple(flat))


def admits_none(t: WireType) -> bool:
    """Does ``null`` fit ``t``?"""
    if isinstance(t, AnyType):
        return True
    if isinstance(t, Primitive):
        return t.name == "none"
    if isinstance(t, UnionType):
        return any(admits_none(o) for o in t.options)
    if isinstance(t, LiteralType):
        return None in t.values
    return False


def _same_json(a: JSONValue, b: JSONValue) -> bool:
    # ``True == 1`` in Python; on the wire they differ.
    return type(a) is type(b) and a == b


def fits(value: JSONValue, t: WireType | None, types: Mapping[str, TypeDef]) -> bool:
    """Would the server accept the JSON value ``value`` for ``t``? Strict JSON typing.

    ``None`` for ``t`` is the item of a bare ``list`` / ``dict``: anything fits.
    """
    if t is None or isinstance(t, AnyType):
        return True
    if isinstance(t, Primitive):
        if t.name == "none":
            return value is None
        if t.name == "bool":
            return isinstance(value, bool)
        if t.name == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if t.name == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, str)
    if isinstance(t, UnionType):
        return any(fits(value, o, types) for o in t.options)
    if isinstance(t, LiteralType):
        return any(_same_json(value, v) for v in t.values)
    if isinstance(t, ListType):
        return isinstance(value, list) and all(fits(v, t.item, types) for v in value)
    if isinstance(t, TupleType):
        if not isinstance(value, list):
            return False
        if t.variadic:
            return all(fits(v, t.items[0], types) for v in value)
        return len(value) == len(t.items) and all(
            fits(v, i, types) for v, i in zip(value, t.items, strict=True)
        )
    if isinstance(t, DictType):
        return isinstance(value, dict) and all(fits(v, t.value, types) for v in value.values())
    if isinstance(t, TensorType):
        # A literal default is never a tensor; the JSON form is an object.
        return isinstance(value, dict) and "$tensor" in value
    td = types.get(t.name)
    if isinstance(td, EnumDef):
        return any(_same_json(value, v) for _, v in td.members)
    return isinstance(value, dict)


def iter_refs(t: WireType | None) -> Iterator[str]:
    if t is None:
        return
    if isinstance(t, RefType):
        yield t.name
    elif isinstance(t, ListType):
        yield from iter_refs(t.item)
    elif isinstance(t, DictType):
        yield from iter_refs(t.value)
    elif isinstance(t, TupleType):
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


# --------------------------------------------------------------------------- Python spelling

# Wire dtype -> the numpy scalar type that ``NDArray[...]`` names. bfloat16 is
# ``ml_dtypes.bfloat16`` at run time, typed ``NDArray[Any]`` (no numpy scalar type).
NUMPY_SCALARS: dict[str, str] = {
    "bool": "bool_",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "float16": "float16",
    "float32": "float32",
    "float64": "float64",
}


def py_str(s: str) -> str:
    """A Python string literal, double-quoted when that needs no escapes."""
    text = repr(s)
    if text.startswith("'") and '"' not in s:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


def python_type(
    t: WireType | None, ref: Callable[[str], str] = str, used: set[str] | None = None
) -> str:
    """How a wire type is spelled in Python: ``list[Item] | None``, ``Literal["a"] | None``.

    ``ref`` spells a named type (the client writes ``types.Item``); ``used``, when
    given, collects the ``typing`` names the spelling needs (``Any``, ``Literal``).
    ``None`` for ``t`` is the item of a bare ``list`` / ``dict``: ``Any``.
    """
    if t is None or isinstance(t, AnyType):
        if used is not None:
            used.add("Any")
        return "Any"
    if isinstance(t, Primitive):
        return "None" if t.name == "none" else t.name
    if isinstance(t, ListType):
        return f"list[{python_type(t.item, ref, used)}]"
    if isinstance(t, TupleType):
        if t.variadic:
            return f"tuple[{python_type(t.items[0], ref, used)}, ...]"
        if not t.items:
            return "tuple[()]"
        return "tuple[" + ", ".join(python_type(i, ref, used) for i in t.items) + "]"
    if isinstance(t, DictType):
        return f"dict[str, {python_type(t.value, ref, used)}]"
    if isinstance(t, TensorType):
        # The client's spelling (it returns numpy arrays): ``NDArray[np.float32]``.
        if used is not None:
            used.add("NDArray")
        scalar = NUMPY_SCALARS.get(t.dtype or "")
        if scalar is None:
            if used is not None:
                used.add("Any")
            return "NDArray[Any]"
        if used is not None:
            used.add("np")
        return f"NDArray[np.{scalar}]"
    if isinstance(t, (UnionType, LiteralType)):
        parts = list(dict.fromkeys(_union_parts(t, ref, used)))
        # ``X | None`` reads better than ``None | X`` (and linters ask for it).
        if "None" in parts:
            parts.remove("None")
            parts.append("None")
        return " | ".join(parts)
    return ref(t.name)


def _union_parts(t: WireType, ref: Callable[[str], str], used: set[str] | None) -> list[str]:
    if isinstance(t, UnionType):
        return [part for option in t.options for part in _union_parts(option, ref, used)]
    if isinstance(t, LiteralType):
        # ``Literal[None, ...]`` is spelled ``Literal[...] | None``.
        values = [v for v in t.values if v is not None]
        parts = ["None"] if len(values) < len(t.values) else []
        if values:
            if used is not None:
                used.add("Literal")
            shown = (py_str(v) if isinstance(v, str) else repr(v) for v in values)
            parts.insert(0, "Literal[" + ", ".join(shown) + "]")
        return parts
    return [python_type(t, ref, used)]
