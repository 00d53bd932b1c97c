"""Annotation expressions -> wire types (``docs/protocol.md``), with the problems found on the way.

A ``Problem`` says what is wrong and where, as data; the rules decide which
code it is (SG003 / SG004 by where the annotation sits, SG013 for a name that
is not defined in the file) and word the message. Classes defined in the file
are converted once and cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import libcst as cst

from scopegen import spec
from scopegen.analyze._names import ModuleNames
from scopegen.analyze._values import literal_value

__all__ = ["Problem", "Reason", "TypeConverter"]

Reason = Literal[
    "unresolved",  # a name imported from elsewhere, or not bound at all
    "not_wire",  # a name bound here (or imported) that is not a wire type
    "not_a_type",  # an expression that is not a type (a call, a number, ...)
    "bytes_annotation",  # b"..." as an annotation
    "bad_string",  # a string annotation that does not parse
    "alias_cycle",  # a type alias that refers to itself
    "slice",  # ``x[a:b]`` in an annotation
    "dict_arity",  # ``dict[...]`` without two arguments
    "dict_key",  # ``dict[K, V]`` with a non-string key
    "arity",  # ``list[a, b]``, ``Optional[a, b]``
    "literal_value",  # ``Literal[1.5]``, ``Literal[f()]``
    "class_not_wire",  # a class of this file that is no TypedDict/dataclass/model/Enum
    "enum_value",  # an enum member without a literal str/int value
    "enum_mixed",  # an enum with both str and int values
    "stream_args",  # ``Generator[T, S, R]`` with a send or return type other than None
    "stream_kind",  # ``async def`` with ``-> Iterator[T]``, or ``def`` with ``-> AsyncIterator[T]``
    "tensor_dtype",  # ``NDArray[np.complex64]``: a dtype that does not cross the wire
]


@dataclass(frozen=True)
class Problem:
    """What is wrong with one annotation, and where (the rules word it)."""

    node: cst.CSTNode
    reason: Reason
    # The name, class, alias or member as written (``torch.Tensor``, ``np.ndarray``).
    subject: str = ""
    # The qualified name behind ``subject`` (``torch.Tensor``, ``bytes``), when it is a name.
    qualified: str = ""
    # ``subject[...]``: the name is subscripted in the annotation.
    subscripted: bool = False
    # The type aliases the annotation went through, outermost first.
    aliases: tuple[str, ...] = ()


_BUILTIN_PRIMITIVES: dict[str, spec.WireType] = {
    "str": spec.STR,
    "int": spec.INT,
    "float": spec.FLOAT,
    "bool": spec.BOOL,
    "None": spec.NONE,
}

# Qualified names (after import resolution) that mean the same thing.
_ANY = {"typing.Any", "typing_extensions.Any", "Any"}
_LIST = {"list", "typing.List", "typing_extensions.List"}
_DICT = {"dict", "typing.Dict", "typing_extensions.Dict"}
_TUPLE = {"tuple", "typing.Tuple", "typing_extensions.Tuple"}
_OPTIONAL = {"typing.Optional", "typing_extensions.Optional"}
_UNION = {"typing.Union", "typing_extensions.Union"}
_LITERAL = {"typing.Literal", "typing_extensions.Literal"}
_ANNOTATED = {"typing.Annotated", "typing_extensions.Annotated"}
_REQUIRED = {
    "typing.Required",
    "typing.NotRequired",
    "typing_extensions.Required",
    "typing_extensions.NotRequired",
    "typing.ReadOnly",
    "typing_extensions.ReadOnly",
}
_TYPEDDICT = {"typing.TypedDict", "typing_extensions.TypedDict"}
_BASEMODEL = {"pydantic.BaseModel", "pydantic.main.BaseModel"}
_DATACLASS = {"dataclasses.dataclass", "pydantic.dataclasses.dataclass"}
_ENUM = {
    "enum.Enum",
    "enum.IntEnum",
    "enum.StrEnum",
    "enum.Flag",
    "enum.IntFlag",
}
_TYPE_ALIAS = {"typing.TypeAlias", "typing_extensions.TypeAlias"}
# Streaming results (``docs/protocol.md``, Streaming results): the outermost
# return annotation only. Name -> (async, how many type arguments may follow T).
_STREAMS: dict[str, tuple[bool, int]] = {
    f"{module}.{name}": kind
    for module in ("typing", "typing_extensions", "collections.abc")
    for name, kind in (
        ("Iterator", (False, 0)),
        ("Generator", (False, 2)),
        ("AsyncIterator", (True, 0)),
        ("AsyncGenerator", (True, 1)),
    )
}
# Tensor annotations (docs/protocol.md, "Tensors"): the kind the function receives.
_TENSORS: dict[str, spec.TensorKind] = {
    "torch.Tensor": "torch",
    "numpy.ndarray": "numpy",
    "numpy.typing.NDArray": "numpy",
    "numpy.typing._generic_alias.NDArray": "numpy",
}
# ``NDArray[X]``'s ``X`` -> the wire dtype; ``None`` for "any dtype".
_TENSOR_DTYPES: dict[str, str | None] = {
    **{f"numpy.{name}": name for name in spec.NUMPY_SCALARS if name != "bool"},
    "numpy.bool_": "bool",
    "numpy.bool": "bool",
    "ml_dtypes.bfloat16": "bfloat16",
    "typing.Any": None,
    "typing_extensions.Any": None,
    "numpy.generic": None,
}


class TypeConverter:
    """Converts annotation expressions of one module, caching local classes."""

    def __init__(self, names: ModuleNames) -> None:
        self.names = names
        self.typedefs: dict[str, spec.TypeDef] = {}
        self._class_problems: dict[str, list[Problem]] = {}
        self._in_progress: set[str] = set()
        self._alias_stack: list[str] = []

    # ----------------------------------------------------------------- entry

    def convert(self, node: cst.BaseExpression) -> tuple[spec.WireType, list[Problem]]:
        problems: list[Problem] = []
        t = self._convert(node, problems)
        return t, problems

    def convert_return(
        self, node: cst.BaseExpression, is_async: bool
    ) -> tuple[spec.WireType, bool, list[Problem]]:
        """A return annotation: (its type, or the item type of a stream; streams?; problems).

        ``Iterator[T]``, ``Generator[T, None, None]`` (sync) and
        ``AsyncIterator[T]``, ``AsyncGenerator[T, None]`` (async) stream ``T``,
        which is converted like any return type. Nested deeper they are not
        wire types (the rules say so).
        """
        stream = self._stream_kind(node)
        if stream is None:
            t, found = self.convert(node)
            return t, False, found
        assert isinstance(node, cst.Subscript)
        streams_async, extra = stream
        problems: list[Problem] = []
        args: list[cst.BaseExpression] = []
        for el in node.slice:
            if not isinstance(el.slice, cst.Index):
                problems.append(Problem(el, "slice"))
                return spec.ANY, True, problems
            args.append(el.slice.value)
        if not 1 <= len(args) <= 1 + extra:
            problems.append(Problem(node, "arity"))
            return spec.ANY, True, problems
        for a in args[1:]:
            if not (isinstance(a, cst.Name) and a.value == "None"):
                problems.append(Problem(a, "stream_args", _spelling(node.value)))
        if streams_async != is_async:
            problems.append(Problem(node.value, "stream_kind", _spelling(node.value)))
        return self._convert(args[0], problems), True, problems

    def _stream_kind(self, node: cst.BaseExpression) -> tuple[bool, int] | None:
        if isinstance(node, cst.Subscript):
            qn = self.names.qualify(node.value)
            if qn is not None:
                return _STREAMS.get(qn)
        return None

    # ----------------------------------------------------------------- core

    def _convert(self, node: cst.BaseExpression, problems: list[Problem]) -> spec.WireType:
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            return self._string_annotation(node, problems)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
            left = self._convert(node.left, problems)
            right = self._convert(node.right, problems)
            return spec.union([left, right])
        if isinstance(node, cst.Subscript):
            return self._subscript(node, problems)
        if isinstance(node, (cst.Name, cst.Attribute)):
            return self._named(node, problems)
        problems.append(Problem(node, "not_a_type"))
        return spec.ANY

    def _string_annotation(
        self, node: cst.SimpleString | cst.ConcatenatedString, problems: list[Problem]
    ) -> spec.WireType:
        text = node.evaluated_value
        if not isinstance(text, str):
            problems.append(Problem(node, "bytes_annotation"))
            return spec.ANY
        try:
            # A fragment, not the file: string annotations are parsed on their own.
            inner = cst.parse_expression(text.strip())
        except cst.ParserSyntaxError:
            problems.append(Problem(node, "bad_string", text))
            return spec.ANY
        sub: list[Problem] = []
        t = self._convert(inner, sub)
        # Positions inside the string are meaningless in the file: report on the string.
        problems.extend(dataclasses.replace(p, node=node) for p in sub)
        return t

    def _named(self, node: cst.Name | cst.Attribute, problems: list[Problem]) -> spec.WireType:
        local = self.names.local_class(node)
        if local is not None:
            return self._local_class(local, node, problems)
        qn = self.names.qualify(node)
        assert qn is not None
        if qn in _BUILTIN_PRIMITIVES and not self._shadowed(node):
            return _BUILTIN_PRIMITIVES[qn]
        if qn in _ANY:
            return spec.ANY
        if qn in _LIST:
            return spec.ListType()
        if qn in _DICT:
            return spec.DictType()
        if qn in _TUPLE:
            return spec.TupleType((spec.ANY,), variadic=True)
        if qn in _TENSORS:
            return spec.TensorType(_TENSORS[qn])
        if isinstance(node, cst.Name) and node.value in self.names.assignments:
            return self._alias(node.value, node, problems)
        reason: Reason = "unresolved" if self._is_unresolved(node) else "not_wire"
        problems.append(Problem(node, reason, _spelling(node), qn))
        return spec.ANY

    def _shadowed(self, node: cst.Name | cst.Attribute) -> bool:
        return isinstance(node, cst.Name) and self.names.is_bound(node.value)

    def _is_unresolved(self, node: cst.Name | cst.Attribute) -> bool:
        # Imported from elsewhere, or not bound at all (typo, star import).
        head = _spelling(node).split(".")[0]
        return head in self.names.imports or not self.names.is_bound(head)

    def _alias(self, name: str, node: cst.CSTNode, problems: list[Problem]) -> spec.WireType:
        if name in self._alias_stack:
            problems.append(Problem(node, "alias_cycle", name))
            return spec.ANY
        value = self.names.assignments[name]
        self._alias_stack.append(name)
        try:
            sub: list[Problem] = []
            t = self._convert(value, sub)
        finally:
            self._alias_stack.pop()
        problems.extend(dataclasses.replace(p, node=node, aliases=(name, *p.aliases)) for p in sub)
        return t

    def _subscript(self, node: cst.Subscript, problems: list[Problem]) -> spec.WireType:
        qn = self.names.qualify(node.value)
        args: list[cst.BaseExpression] = []
        for el in node.slice:
            if isinstance(el.slice, cst.Index):
                args.append(el.slice.value)
            else:
                problems.append(Problem(el, "slice"))
                return spec.ANY
        if qn is None:
            local = self.names.local_class(node.value)
            if local is None:
                problems.append(Problem(node, "not_a_type"))
            else:
                problems.append(Problem(node, "not_wire", local, local, subscripted=True))
            return spec.ANY
        if qn in _LIST:
            return spec.ListType(self._one(node, args, problems))
        if qn in _TUPLE:
            if len(args) == 2 and isinstance(args[1], cst.Ellipsis):
                return spec.TupleType((self._convert(args[0], problems),), variadic=True)
            if len(args) == 1 and isinstance(args[0], cst.Tuple) and not args[0].elements:
                return spec.TupleType(())
            return spec.TupleType(tuple(self._convert(a, problems) for a in args))
        if qn in _DICT:
            if len(args) != 2:
                problems.append(Problem(node, "dict_arity"))
                return spec.DictType()
            key = self._convert(args[0], problems)
            if key != spec.STR and not _is_str_like(key, self.typedefs):
                problems.append(Problem(args[0], "dict_key"))
            return spec.DictType(self._convert(args[1], problems))
        if qn in _OPTIONAL:
            return spec.union([self._one(node, args, problems), spec.NONE])
        if qn in _UNION:
            return spec.union([self._convert(a, problems) for a in args])
        if qn in _LITERAL:
            return self._literal(args, problems)
        if qn in _ANNOTATED or qn in _REQUIRED:
            return self._convert(args[0], problems) if args else spec.ANY
        if qn in _TENSORS and _TENSORS[qn] == "numpy":
            return self._ndarray(qn, args, problems)
        if isinstance(node.value, cst.Name) and node.value.value in self.names.assignments:
            # Generic aliases are out of scope; treat the alias itself.
            return self._alias(node.value.value, node, problems)
        unresolved = isinstance(node.value, (cst.Name, cst.Attribute)) and self._is_unresolved(
            node.value
        )
        reason: Reason = "unresolved" if unresolved else "not_wire"
        problems.append(Problem(node, reason, _spelling(node.value), qn, subscripted=True))
        return spec.ANY

    def _ndarray(
        self, qn: str, args: list[cst.BaseExpression], problems: list[Problem]
    ) -> spec.WireType:
        """``NDArray[np.float32]`` / ``np.ndarray[Any, np.dtype[np.float32]]``: the dtype."""
        scalar = args[0] if qn != "numpy.ndarray" else (args[1] if len(args) == 2 else None)
        if isinstance(scalar, cst.Subscript) and self.names.qualify(scalar.value) == "numpy.dtype":
            inner = scalar.slice[0].slice if len(scalar.slice) == 1 else None
            scalar = inner.value if isinstance(inner, cst.Index) else None
        if scalar is None:
            return spec.TensorType("numpy")
        sq = self.names.qualify(scalar) if isinstance(scalar, (cst.Name, cst.Attribute)) else None
        if sq is None or sq not in _TENSOR_DTYPES:
            subject = _spelling(scalar) if sq is not None else "?"
            problems.append(Problem(scalar, "tensor_dtype", subject, sq or ""))
            return spec.TensorType("numpy")
        return spec.TensorType("numpy", _TENSOR_DTYPES[sq])

    def _one(
        self, node: cst.CSTNode, args: list[cst.BaseExpression], problems: list[Problem]
    ) -> spec.WireType:
        if len(args) != 1:
            problems.append(Problem(node, "arity"))
            return spec.ANY
        return self._convert(args[0], problems)

    def _literal(self, args: list[cst.BaseExpression], problems: list[Problem]) -> spec.WireType:
        values: list[spec.LiteralValue] = []
        for a in args:
            ok, v = literal_value(a)
            if ok and (v is None or isinstance(v, (str, int, bool))) and not isinstance(v, float):
                values.append(v)
                continue
            member = self._enum_member(a)
            if member is not None:
                values.append(member)
                continue
            problems.append(Problem(a, "literal_value"))
        return spec.LiteralType(tuple(values))

    def _enum_member(self, node: cst.BaseExpression) -> str | int | None:
        if not isinstance(node, cst.Attribute) or not isinstance(node.value, cst.Name):
            return None
        if self.names.local_class(node.value) is None:
            return None
        td = self.typedefs.get(node.value.value)
        if td is None:
            self._local_class(node.value.value, node, [])
            td = self.typedefs.get(node.value.value)
        if isinstance(td, spec.EnumDef):
            for name, value in td.members:
                if name == node.attr.value:
                    return value
        return None

    def enum_member_value(self, node: cst.BaseExpression) -> tuple[bool, str | int | None]:
        v = self._enum_member(node)
        return (v is not None), v

    # ----------------------------------------------------------------- classes

    def _local_class(self, name: str, node: cst.CSTNode, problems: list[Problem]) -> spec.WireType:
        if name in self.typedefs or name in self._in_progress:
            # Recursive models refer to themselves by name; fine on the wire.
            problems.extend(self._class_problems.get(name, []))
            return spec.RefType(name)
        cls = self.names.classes[name]
        self._in_progress.add(name)
        own: list[Problem] = []
        try:
            td = self._classdef(cls, own)
        finally:
            self._in_progress.discard(name)
        self._class_problems[name] = own
        if td is None:
            problems.append(Problem(node, "class_not_wire", name))
            return spec.ANY
        self.typedefs[name] = td
        problems.extend(own)
        return spec.RefType(name)

    def class_kind(self, cls: cst.ClassDef) -> str | None:
        for base in cls.bases:
            local = self.names.local_class(base.value)
            if local is not None:
                parent = self.names.classes[local]
                if parent is not cls:
                    kind = self.class_kind(parent)
                    if kind is not None:
                        return kind
                continue
            qn = self.names.qualify(base.value)
            if qn in _TYPEDDICT:
                return "typeddict"
            if qn in _BASEMODEL:
                return "basemodel"
            if qn in _ENUM:
                return "enum"
        for dec in cls.decorators:
            expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            if self.names.qualify(expr) in _DATACLASS:
                return "dataclass"
        return None

    def _classdef(self, cls: cst.ClassDef, problems: list[Problem]) -> spec.TypeDef | None:
        kind = self.class_kind(cls)
        doc = cls.get_docstring(clean=True) or None
        if kind is None:
            return None
        if kind == "enum":
            return self._enumdef(cls, doc, problems)
        total = True
        for arg in cls.bases:
            if arg.keyword is not None and arg.keyword.value == "total":
                total = not (isinstance(arg.value, cst.Name) and arg.value.value == "False")
        fields: dict[str, spec.Field] = {}
        # Inherited fields from local parents come first, as at run time.
        for base in cls.bases:
            parent = self.names.local_class(base.value)
            if parent is not None and base.keyword is None:
                self._local_class(parent, base, problems)
                ptd = self.typedefs.get(parent)
                if isinstance(ptd, spec.ObjectDef):
                    for f in ptd.fields:
                        fields[f.name] = f
        for stmt in cls.body.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if not isinstance(small, cst.AnnAssign) or not isinstance(small.target, cst.Name):
                    continue
                fname = small.target.value
                if self.names.qualify(small.annotation.annotation) == "typing.ClassVar":
                    continue
                ann = small.annotation.annotation
                required = total
                if isinstance(ann, cst.Subscript):
                    aq = self.names.qualify(ann.value)
                    if aq in {"typing.NotRequired", "typing_extensions.NotRequired"}:
                        required = False
                    elif aq in {"typing.Required", "typing_extensions.Required"}:
                        required = True
                ftype = self._convert(ann, problems)
                has_default = False
                default: spec.JSONValue = None
                if small.value is not None:
                    required = False
                    ok, v = literal_value(small.value)
                    if not ok:
                        ok, v = self.enum_member_value(small.value)
                    if ok:
                        has_default, default = True, v
                    elif isinstance(small.value, cst.Call):
                        # field(default=...) / Field(default=...) / Field(...)
                        for a in small.value.args:
                            if (a.keyword is not None and a.keyword.value == "default") or (
                                a.keyword is None
                                and a is small.value.args[0]
                                and not isinstance(a.value, cst.Ellipsis)
                            ):
                                ok, v = literal_value(a.value)
                                if ok:
                                    has_default, default = True, v
                                break
                        else:
                            if self._is_required_field_call(small.value):
                                required = True
                        if (
                            small.value.args
                            and small.value.args[0].keyword is None
                            and isinstance(small.value.args[0].value, cst.Ellipsis)
                        ):
                            required = True
                fields[fname] = spec.Field(fname, ftype, required, default, has_default)
        assert kind in ("typeddict", "dataclass", "basemodel")
        return spec.ObjectDef(cls.name.value, kind, tuple(fields.values()), doc)  # type: ignore[arg-type]

    def _is_required_field_call(self, call: cst.Call) -> bool:
        # pydantic ``Field(description=...)`` without a default is still required.
        qn = self.names.qualify(call.func)
        if qn in {"pydantic.Field", "pydantic.fields.Field"}:
            return not any(
                a.keyword is not None and a.keyword.value in ("default", "default_factory")
                for a in call.args
            )
        return False

    def _enumdef(self, cls: cst.ClassDef, doc: str | None, problems: list[Problem]) -> spec.TypeDef:
        members: list[tuple[str, str | int]] = []
        for stmt in cls.body.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if not isinstance(small, cst.Assign) or len(small.targets) != 1:
                    continue
                target = small.targets[0].target
                if not isinstance(target, cst.Name) or target.value.startswith("_"):
                    continue
                ok, v = literal_value(small.value)
                if ok and isinstance(v, (str, int)) and not isinstance(v, bool):
                    members.append((target.value, v))
                else:
                    subject = f"{cls.name.value}.{target.value}"
                    problems.append(Problem(small.value, "enum_value", subject))
        kinds = {type(v) for _, v in members}
        if len(kinds) > 1:
            problems.append(Problem(cls.name, "enum_mixed", cls.name.value))
        return spec.EnumDef(cls.name.value, tuple(members), doc)


def _is_str_like(t: spec.WireType, typedefs: dict[str, spec.TypeDef]) -> bool:
    if isinstance(t, spec.LiteralType):
        return all(isinstance(v, str) for v in t.values)
    if isinstance(t, spec.RefType):
        td = typedefs.get(t.name)
        return isinstance(td, spec.EnumDef) and all(isinstance(v, str) for _, v in td.members)
    return False


def _spelling(node: cst.BaseExpression) -> str:
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
    return ".".join(reversed(parts)) or "?"
