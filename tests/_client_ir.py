"""A hand-built IR with the awkward corners the client emitter must survive.

Names that clash with the generated code's own (``self``, ``_args``, ``l``),
fields that shadow pydantic attributes, defaults of every shape, docstrings
with quotes and backslashes, recursive and forward-referenced models.
"""

from __future__ import annotations

from scopegen.spec import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    DictType,
    EnumDef,
    Field,
    Function,
    Interface,
    ListType,
    LiteralType,
    ObjectDef,
    Parameter,
    RefType,
    TupleType,
    UnionType,
)

__all__ = ["EDGE_INTERFACE"]

_DOC = 'Quotes """inside""", a backslash \\n and a trailing "quote"'

EDGE_INTERFACE = Interface(
    name="edge",
    source_name="edge_interface.py",
    types=(
        # Refers to Tree and Level, both defined after it.
        ObjectDef(
            "Node",
            "typeddict",
            (
                Field("json", INT),
                Field("model_config", STR),
                Field("_hidden", BOOL, required=False),
                Field("class", STR, required=False),
                Field("tree", UnionType((RefType("Tree"), NONE)), required=False),
                Field("level", RefType("Level"), required=False, default=2, has_default=True),
                Field("ratio", FLOAT, required=False, default=0.5, has_default=True),
                Field("note", STR, required=False, default=None, has_default=True),
            ),
            doc=_DOC,
        ),
        ObjectDef(
            "Tree",
            "dataclass",
            (
                Field("value", INT),
                Field("children", ListType(RefType("Tree")), required=False),
            ),
        ),
        EnumDef("Level", (("LOW", 1), ("HIGH", 2)), doc="Levels."),
        EnumDef("Mode", (("FAST", "fast"), ("SLOW", "slow"))),
        ObjectDef("Empty", "basemodel", ()),
    ),
    functions=(
        Function(
            "weird",
            (
                Parameter("self", INT),
                Parameter("l", INT),
                Parameter("_args", STR),
                Parameter(
                    "node",
                    RefType("Node"),
                    has_default=True,
                    default={"json": 1},
                    default_is_literal=True,
                ),
                Parameter(
                    "mode",
                    LiteralType(("a", "b")),
                    has_default=True,
                    default="a",
                    default_is_literal=True,
                ),
                Parameter(
                    "level",
                    RefType("Level"),
                    has_default=True,
                    default=2,
                    default_is_literal=True,
                ),
                Parameter(
                    "point",
                    TupleType((INT, INT)),
                    has_default=True,
                    default=[1, 2],
                    default_is_literal=True,
                ),
                Parameter(
                    "tags", ListType(STR), has_default=True, default=["x"], default_is_literal=True
                ),
                # Implicit Optional (SG007): the client spells ``int | None``.
                Parameter("n", INT, has_default=True, default=None, default_is_literal=True),
                Parameter(
                    "server_side",
                    FLOAT,
                    has_default=True,
                    default_is_literal=False,
                    default_source="DEFAULT_RATE",
                ),
                Parameter(
                    "kw",
                    FLOAT,
                    kind="keyword_only",
                    has_default=True,
                    default=1,
                    default_is_literal=True,
                ),
                Parameter("flag", BOOL, kind="keyword_only"),
                Parameter("rest", ANY, kind="var_keyword"),
            ),
            returns=DictType(ListType(UnionType((NONE, RefType("Tree"))))),
            doc=_DOC,
        ),
        Function("anything", (), returns=ANY, doc="Returns anything."),
        Function("bare", (Parameter("d", DictType()),), returns=ListType()),
        Function("empty_tuple", (), returns=TupleType(())),
        Function("many", (Parameter("xs", TupleType((INT,), variadic=True)),), returns=NONE),
        Function(
            "mixed",
            (
                Parameter(
                    "v",
                    LiteralType((None, 1, True, "s")),
                    has_default=True,
                    default=True,
                    default_is_literal=True,
                ),
            ),
            returns=UnionType((RefType("Mode"), RefType("Empty"))),
            is_async=True,
        ),
    ),
)
