"""The IR's queries: union normalisation, fits, admits_none, the Python spelling, the hash."""

from __future__ import annotations

import dataclasses

import pytest

from scopegen import spec
from scopegen.analyze import analyze_source
from scopegen.spec import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    DictType,
    EnumDef,
    ListType,
    LiteralType,
    ObjectDef,
    RefType,
    TupleType,
    UnionType,
    admits_none,
    fits,
    python_type,
    union,
)

TYPES: dict[str, spec.TypeDef] = {
    "Level": EnumDef("Level", (("LOW", 1), ("HIGH", 2))),
    "Box": ObjectDef("Box", "typeddict", ()),
}


def test_union_flattens_dedupes_puts_none_last_and_absorbs_into_any() -> None:
    assert union([NONE, UnionType((STR, INT)), STR]) == UnionType((STR, INT, NONE))
    assert union([INT, INT]) == INT
    assert union([INT, ANY, NONE]) == ANY


@pytest.mark.parametrize(
    ("value", "t", "expected"),
    [
        (1, INT, True),
        (True, INT, False),  # bool is not an int on the wire
        (1, FLOAT, True),
        (1.5, INT, False),
        (None, NONE, True),
        ("a", LiteralType(("a", 1)), True),
        (True, LiteralType((1,)), False),
        ([1, 2], ListType(INT), True),
        ([1, "x"], ListType(INT), False),
        ([1, "x"], ListType(), True),
        ([1, "a"], TupleType((INT, STR)), True),
        ([1], TupleType((INT, STR)), False),
        ([1, 2, 3], TupleType((INT,), variadic=True), True),
        ({"a": 1.0}, DictType(FLOAT), True),
        ({"a": "b"}, DictType(FLOAT), False),
        (2, RefType("Level"), True),
        (3, RefType("Level"), False),
        (True, RefType("Level"), False),
        ({}, RefType("Box"), True),
        ("x", UnionType((INT, STR)), True),
        (object(), ANY, True),
    ],
)
def test_fits_is_strict_json_typing(
    value: spec.JSONValue, t: spec.WireType, expected: bool
) -> None:
    assert fits(value, t, TYPES) is expected


def test_admits_none_agrees_with_fits_for_null() -> None:
    for t in (ANY, NONE, INT, UnionType((INT, NONE)), LiteralType((None,)), ListType(), BOOL):
        assert admits_none(t) is fits(None, t, TYPES), t


def test_python_type_is_the_one_spelling() -> None:
    t = UnionType((NONE, ListType(RefType("Box")), LiteralType(("a", None, 2))))
    used: set[str] = set()
    spelled = python_type(t, lambda n: f"types.{n}", used)
    assert spelled == 'list[types.Box] | Literal["a", 2] | None'
    assert used == {"Literal"}
    assert python_type(DictType()) == "dict[str, Any]"
    assert python_type(TupleType(())) == "tuple[()]"


def _iface(source: str) -> spec.Interface:
    a = analyze_source(source)
    assert a.ok, a.diagnostics
    return a.interface


def test_hash_ignores_docstrings_but_not_defaults_or_types() -> None:
    base = _iface("@expose\ndef f(x: int = 1) -> int:\n    return x\n").hash
    documented = _iface('@expose\ndef f(x: int = 1) -> int:\n    """Doc."""\n    return x\n').hash
    default = _iface("@expose\ndef f(x: int = 2) -> int:\n    return x\n").hash
    renamed = _iface("@expose\ndef g(x: int = 1) -> int:\n    return x\n").hash
    typed = (
        "from typing import TypedDict\nclass R(TypedDict):\n    {doc}x: {t}\n"
        "@expose\ndef f() -> R:\n    return {{'x': 1}}\n"
    )
    assert base == documented
    assert len({base, default, renamed}) == 3
    assert _iface(typed.format(doc="", t="int")).hash == _iface(
        typed.format(doc='"""A result."""\n    ', t="int")
    ).hash
    assert _iface(typed.format(doc="", t="int")).hash != _iface(typed.format(doc="", t="str")).hash


def test_hash_is_computed_once_and_replace_recomputes_it() -> None:
    iface = _iface("@expose\ndef f(x: int) -> int:\n    return x\n")
    assert iface.hash is iface.hash  # the same object: cached, not recomputed
    renamed = dataclasses.replace(iface, name="other")
    assert renamed.hash == iface.hash  # the name is not part of the callable surface
    fewer = dataclasses.replace(iface, functions=())
    assert fewer.hash != iface.hash
