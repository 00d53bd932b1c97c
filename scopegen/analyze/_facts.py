"""One traversal of the module that gathers everything the rules look at.

The visitor records exposed functions (and misplaced ``@expose``), model-path
calls and weight loads inside exposed functions; type conversion of every
exposed signature happens once here, so rules only read results. The bodies
of exposed ``async def`` functions get a second look for calls that block the
event loop (``_blocking``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import libcst as cst

from scopegen import spec
from scopegen.analyze._blocking import BlockingCalls
from scopegen.analyze._names import ModuleNames, iter_module_statements
from scopegen.analyze._types import Problem, TypeConverter
from scopegen.analyze._values import literal_value
from scopegen.analyze._walk import LoadCalls, child_fields

__all__ = ["Facts", "FunctionFacts", "ParamFacts", "collect_facts"]

ParamKindFull = Literal[
    "positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"
]

_EXPOSE = {"scopegen.expose", "scopegen.runtime.expose"}


@dataclass
class ParamFacts:
    node: cst.Param
    name: str
    kind: ParamKindFull
    annotation: cst.BaseExpression | None
    type: spec.WireType
    problems: list[Problem]
    default: cst.BaseExpression | None = None
    default_is_literal: bool = False
    default_value: spec.JSONValue = None


@dataclass
class FunctionFacts:
    node: cst.FunctionDef
    name: str
    params: list[ParamFacts]
    returns: spec.WireType  # of each item, when ``streams``
    return_problems: list[Problem]
    load_calls: list[tuple[cst.Call, str]] = field(default_factory=list)
    # Calls that block the event loop, for an ``async def`` only (SG015).
    blocking_calls: list[tuple[cst.Call, str]] = field(default_factory=list)
    # ``-> Iterator[T]`` and kin: a streaming result of ``returns`` items.
    streams: bool = False


@dataclass
class Facts:
    module: cst.Module
    names: ModuleNames
    converter: TypeConverter
    functions: list[FunctionFacts] = field(default_factory=list)
    # ``@expose`` where it does not belong: (decorated node, what it is).
    misplaced: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    model_path_calls: list[cst.Call] = field(default_factory=list)


class _Walker:
    """A plain recursive walk over the node fields that hold code (``child_fields``)."""

    def __init__(self, names: ModuleNames, module_level: set[int]) -> None:
        self.names = names
        self.module_level = module_level
        self.exposed: list[cst.FunctionDef] = []
        self.misplaced: list[tuple[cst.CSTNode, str]] = []
        self.model_path_calls: list[cst.Call] = []
        self.load_calls: dict[int, list[tuple[cst.Call, str]]] = {}
        self._expose_unbound = not names.is_bound("expose")
        self.loads = LoadCalls(names)

    def is_expose(self, dec: cst.Decorator) -> bool:
        expr = dec.decorator
        if isinstance(expr, cst.Name):
            if expr.value == "expose" and self._expose_unbound:
                return True  # the injected global
        elif not isinstance(expr, cst.Attribute):
            return False
        return self.names.qualify(expr) in _EXPOSE

    def walk(self, node: cst.CSTNode, scope: str, current: cst.FunctionDef | None) -> None:
        t = type(node)
        if t is cst.FunctionDef:
            assert isinstance(node, cst.FunctionDef)
            self._function(node, scope, current)
            return
        if t is cst.ClassDef:
            assert isinstance(node, cst.ClassDef)
            if any(self.is_expose(d) for d in node.decorators):
                self.misplaced.append((node, "a class"))
            for d in node.decorators:
                self.walk(d, scope, current)
            for a in node.bases:
                self.walk(a, scope, current)
            for a in node.keywords:
                self.walk(a, scope, current)
            self.walk(node.body, "class", current)
            return
        if t is cst.Call:
            assert isinstance(node, cst.Call)
            self._call(node, current)
        for name in child_fields(t):
            v = getattr(node, name)
            if isinstance(v, cst.CSTNode):
                self.walk(v, scope, current)
            elif isinstance(v, (tuple, list)):
                for x in v:
                    if isinstance(x, cst.CSTNode):
                        self.walk(x, scope, current)

    def _function(self, node: cst.FunctionDef, scope: str, current: cst.FunctionDef | None) -> None:
        inner = current
        if any(self.is_expose(d) for d in node.decorators):
            if id(node) in self.module_level:
                self.exposed.append(node)
                inner = node
                self.load_calls[id(node)] = []
            else:
                where = "a method" if scope == "class" else "a nested function"
                self.misplaced.append((node, where))
        # Decorators, defaults and annotations run where the def stands.
        for d in node.decorators:
            self.walk(d, scope, current)
        self.walk(node.params, scope, current)
        if node.returns is not None:
            self.walk(node.returns, scope, current)
        self.walk(node.body, "function", inner)

    def _call(self, node: cst.Call, current: cst.FunctionDef | None) -> None:
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return
        if self.loads.model_path(func):
            self.model_path_calls.append(node)
        if current is not None:
            what = self.loads.load(func)
            if what is not None:
                self.load_calls[id(current)].append((node, what))


def collect_facts(module: cst.Module) -> Facts:
    names = ModuleNames.collect(module)
    converter = TypeConverter(names)
    module_level = {
        id(s) for s in iter_module_statements(module.body) if isinstance(s, cst.FunctionDef)
    }
    visitor = _Walker(names, module_level)
    visitor.walk(module, "module", None)
    facts = Facts(module, names, converter, misplaced=visitor.misplaced)
    facts.model_path_calls = visitor.model_path_calls
    blocking: BlockingCalls | None = None
    for fn in visitor.exposed:
        ff = _function_facts(fn, converter, visitor.load_calls.get(id(fn), []))
        if fn.asynchronous is not None:
            # A second look at async bodies only: files without them pay nothing.
            if blocking is None:
                blocking = BlockingCalls(module, names, visitor.loads)
            ff.blocking_calls = blocking.in_function(fn)
        facts.functions.append(ff)
    return facts


def _function_facts(
    fn: cst.FunctionDef, converter: TypeConverter, load_calls: list[tuple[cst.Call, str]]
) -> FunctionFacts:
    params: list[ParamFacts] = []
    p = fn.params
    for param in p.posonly_params:
        params.append(_param(param, "positional_only", converter))
    for param in p.params:
        params.append(_param(param, "positional_or_keyword", converter))
    if isinstance(p.star_arg, cst.Param):
        params.append(_param(p.star_arg, "var_positional", converter))
    for param in p.kwonly_params:
        params.append(_param(param, "keyword_only", converter))
    if p.star_kwarg is not None:
        params.append(_param(p.star_kwarg, "var_keyword", converter))
    streams = False
    if fn.returns is None:
        returns: spec.WireType = spec.ANY
        rproblems: list[Problem] = []
    else:
        returns, streams, rproblems = converter.convert_return(
            fn.returns.annotation, fn.asynchronous is not None
        )
    return FunctionFacts(fn, fn.name.value, params, returns, rproblems, load_calls, streams=streams)


def _param(param: cst.Param, kind: ParamKindFull, converter: TypeConverter) -> ParamFacts:
    if param.annotation is None:
        t: spec.WireType = spec.ANY
        problems: list[Problem] = []
        ann = None
    else:
        ann = param.annotation.annotation
        t, problems = converter.convert(ann)
    facts = ParamFacts(param, param.name.value, kind, ann, t, problems, default=param.default)
    if param.default is not None:
        ok, value = literal_value(param.default)
        if not ok:
            ok, value = converter.enum_member_value(param.default)
        facts.default_is_literal, facts.default_value = ok, value
    return facts
