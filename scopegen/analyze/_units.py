"""Per-statement facts about a module, for re-executing it piece by piece.

``serve --reload`` runs an interface one top-level statement at a time and
keeps the values of unchanged model loads. What it needs to know about each
statement (what it binds, reads and mutates, whether it calls a load, a
digest of its code) is static analysis, so it is worked out here, over the
same libcst tree the rules saw; the server only compiles and runs the text.

A *unit* is one top-level statement; a line of ``;``-separated small
statements is one unit (libcst's ``SimpleStatementLine``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import libcst as cst

from scopegen.analyze._names import ModuleNames, dotted
from scopegen.analyze._walk import LoadCalls, child_nodes, structure_fields

if TYPE_CHECKING:
    from scopegen.analyze._analysis import Analysis

__all__ = ["Import", "Unit", "UnitKind", "module_imports", "module_units"]

UnitKind = Literal["def", "class", "import", "other"]

_NEWLINE = re.compile(r"\r\n?|\n")
_CONSTANTS = frozenset({"True", "False", "None"})  # Names to libcst, keywords to Python
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


@dataclass(frozen=True)
class Import:
    """One imported name: ``from ..a.b import c`` is ``Import("a.b", "c", level=2)``."""

    module: str  # "" for ``from . import c``
    name: str | None  # None for ``import a.b``; "*" for a star import
    level: int = 0


class Unit:
    """One top-level statement and what re-executing it on its own needs to know.

    ``binds``, ``mutates`` and ``reads`` are module-level names; ``reads``
    covers everything inside the statement (function bodies included: a
    conservative superset). ``mutates`` are the values a method call or an
    attribute/item assignment may change when the statement runs (``x.f()``,
    ``x.a = 1``, ``x[k] = v``). The facts of ``def`` and ``class`` statements
    are worked out when first asked for, so a file of thousands of exposed
    functions costs little more than its parse.
    """

    def __init__(
        self,
        index: int,
        node: cst.BaseStatement,
        line: int,
        source: str,
        loads: LoadCalls,
    ) -> None:
        self.index = index
        # First line of the statement (its first decorator; comments above it excluded).
        self.line = line
        # Its code, from ``line`` on: compile it with that offset to keep the file's lines.
        self.source = source
        self._node = node
        self._loads = loads
        self.kind: UnitKind = _kind(node)

    def __repr__(self) -> str:
        return f"<Unit {self.index} {self.kind} line {self.line}>"

    @cached_property
    def _scan(self) -> _Scan:
        return _Scan.of(self._node)

    @property
    def binds(self) -> frozenset[str]:
        node = self._node
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return frozenset({node.name.value})
        return self._scan.binds

    @property
    def mutates(self) -> frozenset[str]:
        if self.kind in ("def", "class"):
            return frozenset()
        return self._scan.mutates

    @property
    def reads(self) -> frozenset[str]:
        return self._scan.reads

    @property
    def star(self) -> bool:
        """``from x import *``: binds names nobody can list."""
        return self.kind not in ("def", "class") and self._scan.star

    @property
    def import_binds(self) -> frozenset[str]:
        """The names it binds by importing (modules and what they define, not values)."""
        if self.kind in ("def", "class"):
            return frozenset()
        return self._scan.import_binds

    @property
    def imports(self) -> tuple[Import, ...]:
        """Every import inside it, in order."""
        return self._scan.imports

    @cached_property
    def calls_load(self) -> bool:
        """Whether it calls a load (SG010's, or ``get_model_path``), bodies included."""
        return self._loads.any(self._node)

    @cached_property
    def digest(self) -> int:
        """A digest of its code: comments, blank lines and where it stands do not count."""
        return _digest(self._node)


def module_units(analysis: Analysis) -> tuple[Unit, ...]:
    """The top-level statements of the analysed file as units, in file order.

    Raises ``ValueError`` when the analysis kept no parse tree (the file did
    not parse, or the tree was dropped after loading).
    """
    module = analysis.module
    if module is None:
        raise ValueError(f"{analysis.path}: no parse tree to split into statements")
    loads = LoadCalls(ModuleNames.collect(module))
    out: list[Unit] = []
    line = 1 + len(module.header)
    for i, stmt in enumerate(module.body):
        text = module.code_for_node(stmt)
        start = 0
        # Blank and comment lines above it (the module's header is not in ``text``).
        for _ in stmt.leading_lines:
            m = _NEWLINE.search(text, start)
            assert m is not None
            start = m.end()
        lead = len(stmt.leading_lines)
        out.append(Unit(i, stmt, line + lead, text[start:], loads))
        line += text.count("\n") if "\r" not in text else len(_NEWLINE.findall(text))
    return tuple(out)


def module_imports(source: str) -> tuple[Import, ...] | None:
    """Every import anywhere in ``source`` (None when it does not parse).

    For files the interface imports (local helper modules): which of them
    import each other.
    """
    try:
        module = cst.parse_module(source)
    except Exception:  # libcst's parser fails on odd input in more ways than one
        return None
    scan = _Scan()
    scan.imports_only(module)
    return tuple(scan._imports)


def _kind(node: cst.BaseStatement) -> UnitKind:
    if isinstance(node, cst.FunctionDef):
        return "def"
    if isinstance(node, cst.ClassDef):
        return "class"
    if isinstance(node, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in node.body
    ):
        return "import"
    return "other"


class _Scan:
    """binds, reads, mutates and imports of one statement, in one walk.

    libcst has no load/store contexts, so the walk carries them: ``target``
    is a place being assigned, ``walk`` an expression being evaluated. ``top``
    means a bound name lands in the module's namespace (not inside a
    function, class body or comprehension); ``now`` that the code runs when
    the statement does (not a function or lambda body, which runs later).
    """

    def __init__(self) -> None:
        self._binds: set[str] = set()
        self._reads: set[str] = set()
        self._mutates: set[str] = set()
        self._import_binds: set[str] = set()
        self._imports: list[Import] = []
        self.star = False

    @classmethod
    def of(cls, node: cst.CSTNode) -> _Scan:
        scan = cls()
        scan.walk(node, True, True)
        return scan

    @cached_property
    def binds(self) -> frozenset[str]:
        return frozenset(self._binds)

    @cached_property
    def reads(self) -> frozenset[str]:
        return frozenset(self._reads)

    @cached_property
    def mutates(self) -> frozenset[str]:
        return frozenset(self._mutates)

    @cached_property
    def import_binds(self) -> frozenset[str]:
        return frozenset(self._import_binds)

    @cached_property
    def imports(self) -> tuple[Import, ...]:
        return tuple(self._imports)

    # ------------------------------------------------------------ walking

    def walk(self, node: cst.CSTNode, top: bool, now: bool) -> None:
        if isinstance(node, cst.Name):
            if node.value not in _CONSTANTS:
                self._reads.add(node.value)
            return
        method = _DISPATCH.get(type(node))
        if method is not None:
            method(self, node, top, now)
            return
        if isinstance(node, _COMPREHENSIONS):
            top = False  # Comprehension variables are local to it.
        self._children(node, top, now)

    def _children(self, node: cst.CSTNode, top: bool, now: bool) -> None:
        for child in child_nodes(node):
            self.walk(child, top, now)

    def _all(self, nodes: Sequence[cst.CSTNode], top: bool, now: bool) -> None:
        for n in nodes:
            self.walk(n, top, now)

    def target(self, node: cst.CSTNode, top: bool, now: bool) -> None:
        """A place being assigned (or deleted)."""
        if isinstance(node, cst.Name):
            if top:
                self._binds.add(node.value)
        elif isinstance(node, (cst.Attribute, cst.Subscript)):
            # ``x.a = v`` reads ``x`` and changes the value it names.
            self.walk(node, top, now)
            root = _root(node)
            if root is not None and now:
                self._mutates.add(root)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for el in node.elements:
                self.target(el.value, top, now)
        elif isinstance(node, cst.StarredElement):
            self.target(node.value, top, now)
        else:
            self.walk(node, top, now)

    def _attribute(self, node: cst.Attribute, top: bool, now: bool) -> None:
        self.walk(node.value, top, now)  # ``.attr`` is a Name that names nothing here

    def _call(self, node: cst.Call, top: bool, now: bool) -> None:
        # A method call may change its receiver; calling a value itself
        # (``model(x)``, ``Config(...)``) is taken as a use, not a change.
        if now and isinstance(node.func, cst.Attribute):
            root = _root(node.func)
            if root is not None:
                self._mutates.add(root)
        self.walk(node.func, top, now)
        for arg in node.args:
            self.walk(arg.value, top, now)  # ``arg.keyword`` names a parameter

    def _assign(self, node: cst.Assign, top: bool, now: bool) -> None:
        for t in node.targets:
            self.target(t.target, top, now)
        self.walk(node.value, top, now)

    def _ann_assign(self, node: cst.AnnAssign, top: bool, now: bool) -> None:
        self.walk(node.annotation, top, now)
        if node.value is not None:  # ``x: int`` alone binds nothing
            self.target(node.target, top, now)
            self.walk(node.value, top, now)

    def _aug_assign(self, node: cst.AugAssign, top: bool, now: bool) -> None:
        self.walk(node.target, top, now)  # ``x += 1`` reads ``x`` too
        self.target(node.target, top, now)
        self.walk(node.value, top, now)

    def _del(self, node: cst.Del, top: bool, now: bool) -> None:
        self.target(node.target, top, now)

    def _for(self, node: cst.For, top: bool, now: bool) -> None:
        self.target(node.target, top, now)
        self.walk(node.iter, top, now)
        self.walk(node.body, top, now)
        if node.orelse is not None:
            self.walk(node.orelse, top, now)

    def _with(self, node: cst.With, top: bool, now: bool) -> None:
        for item in node.items:
            self.walk(item.item, top, now)
            if item.asname is not None:
                self.target(item.asname.name, top, now)
        self.walk(node.body, top, now)

    def _named_expr(self, node: cst.NamedExpr, top: bool, now: bool) -> None:
        self.target(node.target, top, now)
        self.walk(node.value, top, now)

    def _comp_for(self, node: cst.CompFor, top: bool, now: bool) -> None:
        self.target(node.target, False, now)
        self.walk(node.iter, top, now)
        self._all(node.ifs, top, now)
        if node.inner_for_in is not None:
            self.walk(node.inner_for_in, top, now)

    def _except(
        self, node: cst.ExceptHandler | cst.ExceptStarHandler, top: bool, now: bool
    ) -> None:
        if node.type is not None:
            self.walk(node.type, top, now)
        if node.name is not None:
            self.target(node.name.name, top, now)
        self.walk(node.body, top, now)

    def _function(self, node: cst.FunctionDef, top: bool, now: bool) -> None:
        if top:
            self._binds.add(node.name.value)
        # Decorators, defaults and annotations run where the def stands; the body later.
        self._all(node.decorators, False, now)
        self.walk(node.params, False, now)
        if node.returns is not None:
            self.walk(node.returns, False, now)
        self.walk(node.body, False, False)

    def _lambda(self, node: cst.Lambda, top: bool, now: bool) -> None:
        self.walk(node.params, False, now)
        self.walk(node.body, False, False)

    def _param(self, node: cst.Param, top: bool, now: bool) -> None:
        if node.annotation is not None:  # ``node.name`` is the parameter, not a read
            self.walk(node.annotation, top, now)
        if node.default is not None:
            self.walk(node.default, top, now)

    def _class(self, node: cst.ClassDef, top: bool, now: bool) -> None:
        if top:
            self._binds.add(node.name.value)
        self._all(node.decorators, False, now)
        for arg in (*node.bases, *node.keywords):
            self.walk(arg.value, False, now)
        self.walk(node.body, False, now)  # A class body runs now, in its own namespace.

    def _import(self, node: cst.Import, top: bool, now: bool) -> None:
        for alias in node.names:
            full = dotted(alias.name)
            if full is None:
                continue
            self._imports.append(Import(full, None))
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                name = alias.asname.name.value
            else:
                name = full.partition(".")[0]  # ``import a.b`` binds ``a``
            if top:
                self._binds.add(name)
                self._import_binds.add(name)

    def _import_from(self, node: cst.ImportFrom, top: bool, now: bool) -> None:
        module = dotted(node.module) if node.module is not None else ""
        if module is None:
            return
        level = len(node.relative)
        if isinstance(node.names, cst.ImportStar):
            self._imports.append(Import(module, "*", level))
            self.star = self.star or top
            return
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            self._imports.append(Import(module, alias.name.value, level))
            name = alias.name.value
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                name = alias.asname.name.value
            if top:
                self._binds.add(name)
                self._import_binds.add(name)

    def _skip(self, node: cst.CSTNode, top: bool, now: bool) -> None:
        pass  # ``global x`` / ``nonlocal x`` name variables without reading them

    def _match_as(self, node: cst.MatchAs, top: bool, now: bool) -> None:
        if node.pattern is not None:
            self.walk(node.pattern, top, now)
        if node.name is not None:
            self.target(node.name, top, now)

    def _match_star(self, node: cst.MatchStar, top: bool, now: bool) -> None:
        if node.name is not None:
            self.target(node.name, top, now)

    def _match_mapping(self, node: cst.MatchMapping, top: bool, now: bool) -> None:
        for el in node.elements:
            self.walk(el.key, top, now)
            self.walk(el.pattern, top, now)
        if node.rest is not None:
            self.target(node.rest, top, now)

    def _match_class(self, node: cst.MatchClass, top: bool, now: bool) -> None:
        self.walk(node.cls, top, now)
        for p in node.patterns:
            self.walk(p.value, top, now)
        for k in node.kwds:
            self.walk(k.pattern, top, now)  # ``k.key`` names an attribute

    def _type_alias(self, node: cst.TypeAlias, top: bool, now: bool) -> None:
        self.target(node.name, top, now)
        if node.type_parameters is not None:
            self.walk(node.type_parameters, False, now)
        self.walk(node.value, False, False)  # evaluated when first used

    def imports_only(self, module: cst.Module) -> None:
        """Record the imports anywhere in ``module``, nothing else."""
        stack: list[cst.CSTNode] = [module]
        while stack:
            n = stack.pop()
            if isinstance(n, cst.Import):
                self._import(n, False, False)
            elif isinstance(n, cst.ImportFrom):
                self._import_from(n, False, False)
            elif isinstance(n, cst.BaseSmallStatement):
                continue  # Imports are statements: nothing below one is.
            else:
                stack.extend(reversed(list(child_nodes(n))))


_DISPATCH: dict[type[cst.CSTNode], Callable[[_Scan, Any, bool, bool], None]] = {
    cst.Attribute: _Scan._attribute,
    cst.Call: _Scan._call,
    cst.Assign: _Scan._assign,
    cst.AnnAssign: _Scan._ann_assign,
    cst.AugAssign: _Scan._aug_assign,
    cst.Del: _Scan._del,
    cst.For: _Scan._for,
    cst.With: _Scan._with,
    cst.NamedExpr: _Scan._named_expr,
    cst.CompFor: _Scan._comp_for,
    cst.ExceptHandler: _Scan._except,
    cst.ExceptStarHandler: _Scan._except,
    cst.FunctionDef: _Scan._function,
    cst.Lambda: _Scan._lambda,
    cst.Param: _Scan._param,
    cst.ClassDef: _Scan._class,
    cst.Import: _Scan._import,
    cst.ImportFrom: _Scan._import_from,
    cst.Global: _Scan._skip,
    cst.Nonlocal: _Scan._skip,
    cst.MatchAs: _Scan._match_as,
    cst.MatchStar: _Scan._match_star,
    cst.MatchMapping: _Scan._match_mapping,
    cst.MatchClass: _Scan._match_class,
    cst.TypeAlias: _Scan._type_alias,
}


def _root(expr: cst.BaseExpression) -> str | None:
    """``a`` for ``a``, ``a.b.c``, ``a[k].b``, ``a.b().c``; else None."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        elif isinstance(expr, cst.Call):
            expr = expr.func
        else:
            return None


# --------------------------------------------------------------------------- digests

# Values that are only layout, in fields that may hold code too.
_LAYOUT_VALUES = (
    cst.BaseParenthesizableWhitespace,
    cst.TrailingWhitespace,
    cst.EmptyLine,
    cst.Comment,
    cst.Newline,
    cst.LeftParen,
    cst.RightParen,
    cst.Comma,
    cst.Semicolon,
    cst.Colon,
    cst.AssignEqual,
    cst.MaybeSentinel,
)


def _digest(node: cst.CSTNode) -> int:
    # Node types, field names and leaf values in order: the code's structure
    # without its layout (what ``ast.dump`` gives). Markers are bytes, leaf
    # values are not, so the two never read alike.
    h = hashlib.blake2b(digest_size=16)
    stack: list[object] = [node]
    while stack:
        v = stack.pop()
        if isinstance(v, bytes):
            h.update(v)
        elif isinstance(v, cst.SimpleStatementLine):
            # ``a; b`` on one line is ``a`` and ``b`` on two.
            stack.extend(reversed(v.body))
        elif isinstance(v, cst.CSTNode):
            t = type(v)
            # A one-line suite (``if x: y``) is an indented block of one line.
            kind = "IndentedBlock" if t is cst.SimpleStatementSuite else t.__name__
            items: list[object] = [b")"]
            for name in reversed(structure_fields(t)):
                x = getattr(v, name)
                if isinstance(x, _LAYOUT_VALUES):
                    continue
                if isinstance(x, (tuple, list)):
                    seq = [e for e in x if not isinstance(e, _LAYOUT_VALUES)]
                    items += [b"]", *reversed(seq), f"{name}=[".encode()]
                else:
                    items += [x, f"{name}=".encode()]
            items.append(f"{kind}(".encode())
            stack.extend(items)
        else:
            h.update(b"%r;" % (v,))
    return int.from_bytes(h.digest(), "big")
