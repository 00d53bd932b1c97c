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
    Parameter,
    Primitive,
    RefType,
    TensorType,
    TupleType,
    TypeDef,
    UnionType,
    WireType,
    admits_none,
    fits,
    py_str,
    python_type,
)

__all__ = [
    "SIGNATURE_WIDTH",
    "Names",
    "RenderedParam",
    "docstring_lines",
    "free_name",
    "py_literal",
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
    return python_type(t, names.ref, names.used)


# --------------------------------------------------------------------------- literals


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


def render_default(
    value: JSONValue, t: WireType, types: Mapping[str, TypeDef], names: Names
) -> str | None:
    """Source for ``value`` as a default of type ``t``, or ``None`` when it does not fit.

    A default that does not fit, or that Python source cannot spell (a dict
    given for a model), is left to the server: the caller makes the parameter
    a ``NOT_GIVEN`` sentinel instead.
    """
    if value is None:
        return "None"  # the caller widens the type when ``t`` does not admit None
    if not fits(value, t, types):
        return None
    return _render(value, t, types, names)


def _render(
    value: JSONValue, t: WireType | None, types: Mapping[str, TypeDef], names: Names
) -> str | None:
    # ``value`` fits ``t``: only the shape of the source is decided here.
    if t is None or isinstance(t, (AnyType, Primitive, LiteralType)):
        return py_literal(value)
    if isinstance(t, UnionType):
        for option in t.options:
            if fits(value, option, types):
                text = _render(value, option, types, names)
                if text is not None:
                    return text
        return None
    if isinstance(t, ListType):
        assert isinstance(value, list)
        items = _joined([_render(v, t.item, types, names) for v in value])
        return None if items is None else f"[{items}]"
    if isinstance(t, TupleType):
        assert isinstance(value, list)
        item_types = [t.items[0]] * len(value) if t.variadic else list(t.items)
        rendered = [_render(v, i, types, names) for v, i in zip(value, item_types, strict=True)]
        items = _joined(rendered)
        if items is None:
            return None
        return f"({items},)" if len(rendered) == 1 else f"({items})"
    if isinstance(t, DictType):
        assert isinstance(value, dict)
        pairs = [_render(v, t.value, types, names) for v in value.values()]
        if any(p is None for p in pairs):
            return None
        return "{" + ", ".join(f"{py_str(k)}: {v}" for k, v in zip(value, pairs, strict=True)) + "}"
    if not isinstance(t, RefType):
        return None  # a tensor: never a literal default
    td = types.get(t.name)
    if isinstance(td, EnumDef):
        for member, member_value in td.members:
            if type(member_value) is type(value) and member_value == value:
                return f"{names.ref(td.name)}.{member}"
    return None  # a model: its default stays on the server


def _joined(parts: list[str | None]) -> str | None:
    if any(p is None for p in parts):
        return None
    return ", ".join(p for p in parts if p is not None)


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
        if isinstance(p.type, TensorType):
            # The client takes a torch tensor (or any array) as it is; it sends numpy's bytes.
            annotation = f"{annotation} | ArrayLike"
            names.used.add("ArrayLike")
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
