"""Spelling IR pieces as Python source: types, literal defaults, docstrings, signatures.

Pure functions of the IR; the client emitter assembles their output into files.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Mapping
from dataclasses import dataclass, field

from scopegen.spec import (
    AnyType,
    DictType,
    EnumDef,
    Function,
    JSONValue,
    ListType,
    LiteralType,
    ObjectDef,
    Parameter,
    Primitive,
    RefType,
    TupleType,
    TypeDef,
    UnionType,
    WireType,
)

__all__ = [
    "SIGNATURE_WIDTH",
    "Names",
    "RenderedParam",
    "admits_none",
    "docstring_lines",
    "free_name",
    "is_object",
    "py_literal",
    "py_str",
    "render_default",
    "render_params",
    "signature_lines",
    "spell",
]

# Signatures longer than this put one parameter per line.
SIGNATURE_WIDTH = 92

# Names pycodestyle (ruff E741) calls ambiguous; a parameter may carry one.
_AMBIGUOUS = frozenset({"l", "O", "I"})


@dataclass
class Names:
    """How a module spells things, and which helper names it ended up using."""

    # ``"types."`` in modules that import the types module, ``""`` inside it.
    ref_prefix: str = ""
    used: set[str] = field(default_factory=set)

    def ref(self, name: str) -> str:
        self.used.add("types" if self.ref_prefix else name)
        return f"{self.ref_prefix}{name}"


# --------------------------------------------------------------------------- types


def spell(t: WireType | None, names: Names) -> str:
    """``list[types.Item] | None``; records ``Any`` / ``Literal`` / ``types`` in ``names.used``."""
    if t is None or isinstance(t, AnyType):
        names.used.add("Any")
        return "Any"
    if isinstance(t, Primitive):
        return "None" if t.name == "none" else t.name
    if isinstance(t, ListType):
        return f"list[{spell(t.item, names)}]"
    if isinstance(t, TupleType):
        if t.variadic:
            return f"tuple[{spell(t.items[0], names)}, ...]"
        if not t.items:
            return "tuple[()]"
        return "tuple[" + ", ".join(spell(i, names) for i in t.items) + "]"
    if isinstance(t, DictType):
        return f"dict[str, {spell(t.value, names)}]"
    if isinstance(t, (UnionType, LiteralType)):
        parts: list[str] = []
        for text in _union_parts(t, names):
            if text not in parts:
                parts.append(text)
        # ``X | None`` reads better than ``None | X`` (and linters ask for it).
        if "None" in parts:
            parts.remove("None")
            parts.append("None")
        return " | ".join(parts)
    return names.ref(t.name)


def _union_parts(t: WireType, names: Names) -> list[str]:
    if isinstance(t, UnionType):
        return [part for option in t.options for part in _union_parts(option, names)]
    if isinstance(t, LiteralType):
        # ``Literal[None, ...]`` is spelled ``Literal[...] | None``.
        values = [v for v in t.values if v is not None]
        parts = ["None"] if len(values) < len(t.values) else []
        if values:
            names.used.add("Literal")
            parts.insert(0, "Literal[" + ", ".join(py_literal(v) for v in values) + "]")
        return parts
    return [spell(t, names)]


def admits_none(t: WireType) -> bool:
    if isinstance(t, AnyType):
        return True
    if isinstance(t, Primitive):
        return t.name == "none"
    if isinstance(t, UnionType):
        return any(admits_none(o) for o in t.options)
    if isinstance(t, LiteralType):
        return None in t.values
    return False


# --------------------------------------------------------------------------- literals


def py_str(s: str) -> str:
    """A Python string literal, double-quoted when that needs no escapes."""
    text = repr(s)
    if text.startswith("'") and '"' not in s:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


def py_literal(value: JSONValue) -> str:
    """Python source for a JSON value (``None``, ``True``, ``1.5``, ``"a"``, lists, dicts)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    return "{" + ", ".join(f"{py_str(k)}: {py_literal(v)}" for k, v in value.items()) + "}"


def _same_json(a: JSONValue, b: JSONValue) -> bool:
    # ``True == 1`` in Python; on the wire they differ.
    return type(a) is type(b) and a == b


def render_default(
    value: JSONValue, t: WireType, types: Mapping[str, TypeDef], names: Names
) -> str | None:
    """Source for ``value`` as a default of type ``t``, or ``None`` when it does not fit.

    A default that does not fit (a dict given for a model) is left to the
    server: the caller makes the parameter a ``NOT_GIVEN`` sentinel instead.
    """
    if value is None:
        return "None"  # the caller widens the type when ``t`` does not admit None
    if isinstance(t, AnyType):
        return py_literal(value)
    if isinstance(t, Primitive):
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "none": False,
        }[t.name]
        return py_literal(value) if ok else None
    if isinstance(t, LiteralType):
        return py_literal(value) if any(_same_json(value, v) for v in t.values) else None
    if isinstance(t, UnionType):
        for option in t.options:
            text = render_default(value, option, types, names)
            if text is not None:
                return text
        return None
    if isinstance(t, ListType):
        if not isinstance(value, list):
            return None
        items = [render_default(v, t.item or AnyType(), types, names) for v in value]
        return None if None in items else "[" + ", ".join(i for i in items if i) + "]"
    if isinstance(t, TupleType):
        if not isinstance(value, list):
            return None
        if t.variadic:
            item_types = [t.items[0]] * len(value)
        elif len(value) == len(t.items):
            item_types = list(t.items)
        else:
            return None
        rendered = [
            render_default(v, it, types, names) for v, it in zip(value, item_types, strict=True)
        ]
        if any(r is None for r in rendered):
            return None
        if len(rendered) == 1:
            return f"({rendered[0]},)"
        return "(" + ", ".join(r for r in rendered if r is not None) + ")"
    if isinstance(t, DictType):
        if not isinstance(value, dict):
            return None
        pairs = {k: render_default(v, t.value or AnyType(), types, names) for k, v in value.items()}
        if any(v is None for v in pairs.values()):
            return None
        return "{" + ", ".join(f"{py_str(k)}: {v}" for k, v in pairs.items()) + "}"
    td = types.get(t.name)
    if isinstance(td, EnumDef):
        for member, member_value in td.members:
            if _same_json(value, member_value):
                return f"{names.ref(td.name)}.{member}"
    return None


# --------------------------------------------------------------------------- docstrings


def docstring_lines(text: str | None, indent: str) -> list[str]:
    """A docstring as source lines (already indented); empty for no text."""
    if not text or not text.strip():
        return []
    body = inspect.cleandoc(text)
    body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    lines = body.split("\n")
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    out = [f'{indent}"""{lines[0]}']
    out.extend(f"{indent}{line}".rstrip() for line in lines[1:])
    out.append(f'{indent}"""')
    return out


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class RenderedParam:
    param: Parameter
    source: str  # ``name: type = default`` / ``**name: type``
    annotation: str
    default: str | None  # source of the default; ``"NOT_GIVEN"`` for the sentinel
    omitted_when_not_given: bool


def render_params(fn: Function, types: Mapping[str, TypeDef], names: Names) -> list[RenderedParam]:
    out: list[RenderedParam] = []
    for p in fn.params:
        annotation = spell(p.type, names)
        if p.kind == "var_keyword":
            out.append(RenderedParam(p, f"**{p.name}: {annotation}", annotation, None, False))
            continue
        default: str | None = None
        sentinel = False
        if p.has_default:
            # A list or dict default would be one shared mutable object in the
            # client's signature: leave it to the server instead.
            shared = isinstance(p.default, (list, dict)) and not isinstance(p.type, TupleType)
            if p.default_is_literal and not shared:
                default = render_default(p.default, p.type, types, names)
            if default is None:
                sentinel = True
                default = "NOT_GIVEN"
                names.used.add("NOT_GIVEN")
                names.used.add("NotGiven")
                annotation = f"{annotation} | NotGiven"
            elif default == "None" and not admits_none(p.type):
                # Implicit Optional (SG007): the client spells it out.
                annotation = f"{annotation} | None"
        source = f"{p.name}: {annotation}" + (f" = {default}" if default is not None else "")
        out.append(RenderedParam(p, source, annotation, default, sentinel))
    return out


def free_name(base: str, taken: set[str]) -> str:
    """``base`` with trailing underscores until it is not in ``taken``."""
    name = base
    while name in taken or keyword.iskeyword(name):
        name += "_"
    return name


def signature_lines(
    head: str,
    params: list[RenderedParam],
    returns: str,
    indent: str,
    *,
    receiver: str | None = None,
) -> list[str]:
    """``def name(self, a: int, *, b: str = "x") -> T:`` on one line, or one parameter per line."""
    parts: list[tuple[str, bool]] = []  # (text, ambiguous name)
    if receiver is not None:
        parts.append((receiver, False))
    star_done = False
    for rp in params:
        if rp.param.kind == "keyword_only" and not star_done:
            parts.append(("*", False))
            star_done = True
        parts.append((rp.source, rp.param.name in _AMBIGUOUS))
    one_line = f"{indent}{head}(" + ", ".join(p for p, _ in parts) + f") -> {returns}:"
    ambiguous = any(a for _, a in parts)
    if len(one_line) <= SIGNATURE_WIDTH and not ambiguous:
        return [one_line]
    lines = [f"{indent}{head}("]
    for text, amb in parts:
        # RUF100 covers ruff versions whose default rules leave E741 out.
        lines.append(f"{indent}    {text}," + ("  # noqa: E741, RUF100" if amb else ""))
    lines.append(f"{indent}) -> {returns}:")
    return lines


def is_object(t: WireType, types: Mapping[str, TypeDef]) -> bool:
    return isinstance(t, RefType) and isinstance(types.get(t.name), ObjectDef)
