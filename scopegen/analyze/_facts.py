"""One traversal of the module that gathers everything the rules look at.

The visitor records exposed functions (and misplaced ``@expose``), model-path
calls and weight loads inside exposed functions; type conversion of every
exposed signature happens once here, so rules only read results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import libcst as cst

from scopegen import spec
from scopegen.analyze._names import ModuleNames, iter_module_statements
from scopegen.analyze._types import Problem, TypeConverter
from scopegen.analyze._values import literal_value

__all__ = ["Facts", "FunctionFacts", "ParamFacts", "collect_facts"]

ParamKindFull = Literal[
    "positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"
]

_EXPOSE = {"scopegen.expose", "scopegen._runtime.expose"}
_GET_MODEL_PATH = {"scopegen.get_model_path", "scopegen._runtime.get_model_path"}
# Calls that load a model or weights (SG010): qualified names, or a final
# attribute that means a load whatever the receiver is.
_LOAD_QUALIFIED = {
    "torch.load",
    "torch.jit.load",
    "safetensors.torch.load_file",
    "safetensors.torch.load",
    "safetensors.numpy.load_file",
    "safetensors.safe_open",
    "safetensors.flax.load_file",
    "transformers.pipeline",
    "sentence_transformers.SentenceTransformer",
}
_LOAD_ATTRS = {"from_pretrained", "load_state_dict"}


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
    returns: spec.WireType
    return_problems: list[Problem]
    load_calls: list[tuple[cst.Call, str]] = field(default_factory=list)


@dataclass
class Facts:
    module: cst.Module
    names: ModuleNames
    converter: TypeConverter
    functions: list[FunctionFacts] = field(default_factory=list)
    # ``@expose`` where it does not belong: (decorated node, what it is).
    misplaced: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    model_path_calls: list[cst.Call] = field(default_factory=list)


class _Visitor(cst.CSTVisitor):
    def __init__(self, names: ModuleNames, module_level: set[int]) -> None:
        self.names = names
        self.module_level = module_level
        self.exposed: list[cst.FunctionDef] = []
        self.misplaced: list[tuple[cst.CSTNode, str]] = []
        self.model_path_calls: list[cst.Call] = []
        self.load_calls: dict[int, list[tuple[cst.Call, str]]] = {}
        self._scopes: list[str] = []  # "function" / "class"
        self._current: cst.FunctionDef | None = None

    def is_expose(self, dec: cst.Decorator) -> bool:
        expr = dec.decorator
        if isinstance(expr, cst.Name) and expr.value == "expose" and not self.names.is_bound("expose"):
            return True  # the injected global
        return self.names.qualify(expr) in _EXPOSE if isinstance(
            expr, (cst.Name, cst.Attribute)
        ) else False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        exposed = any(self.is_expose(d) for d in node.decorators)
        if exposed:
            if id(node) in self.module_level:
                self.exposed.append(node)
                if self._current is None:
                    self._current = node
                    self.load_calls[id(node)] = []
            else:
                where = "a method" if self._scopes and self._scopes[-1] == "class" else "a nested function"
                self.misplaced.append((node, where))
        self._scopes.append("function")

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        if self._current is original_node:
            self._current = None

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if any(self.is_expose(d) for d in node.decorators):
            self.misplaced.append((node, "a class"))
        self._scopes.append("class")

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return
        if isinstance(func, cst.Name) and func.value == "get_model_path":
            if not self.names.is_bound("get_model_path") or (
                self.names.qualify(func) in _GET_MODEL_PATH
            ):
                self.model_path_calls.append(node)
        elif self.names.qualify(func) in _GET_MODEL_PATH:
            self.model_path_calls.append(node)
        if self._current is not None:
            what = _load_call(self.names, func)
            if what is not None:
                self.load_calls[id(self._current)].append((node, what))


def _load_call(names: ModuleNames, func: cst.Name | cst.Attribute) -> str | None:
    if isinstance(func, cst.Attribute) and func.attr.value in _LOAD_ATTRS:
        return f".{func.attr.value}()"
    qn = names.qualify(func)
    if qn in _LOAD_QUALIFIED:
        return f"{qn}()"
    if isinstance(func, cst.Name) and func.value == "pipeline":
        return "pipeline()"
    return None


def collect_facts(module: cst.Module) -> Facts:
    names = ModuleNames.collect(module)
    converter = TypeConverter(names)
    module_level = {
        id(s) for s in iter_module_statements(module.body) if isinstance(s, cst.FunctionDef)
    }
    visitor = _Visitor(names, module_level)
    module.visit(visitor)
    facts = Facts(module, names, converter, misplaced=visitor.misplaced)
    facts.model_path_calls = visitor.model_path_calls
    for fn in visitor.exposed:
        facts.functions.append(_function_facts(fn, converter, visitor.load_calls.get(id(fn), [])))
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
    if fn.returns is None:
        returns: spec.WireType = spec.ANY
        rproblems: list[Problem] = []
    else:
        returns, rproblems = converter.convert(fn.returns.annotation)
    return FunctionFacts(fn, fn.name.value, params, returns, rproblems, load_calls)


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
