"""Facts -> the IR (``spec.Interface``): what the emitters and the server consume.

Built from the same facts the rules read, so what lint accepts is exactly what
gets generated and served.
"""

from __future__ import annotations

import libcst as cst

from scopegen import spec
from scopegen.analyze._facts import Facts, FunctionFacts
from scopegen.analyze._values import literal_value

__all__ = ["build_interface", "function_params", "model_id_of"]


def build_interface(facts: Facts, name: str, source_name: str) -> spec.Interface:
    """The IR of one analysed file: its exposed functions (first of each name) and their types."""
    functions: list[spec.Function] = []
    seen: set[str] = set()
    for fn in facts.functions:
        if fn.name in seen:
            continue  # SG009 reports the second one
        seen.add(fn.name)
        functions.append(
            spec.Function(
                name=fn.name,
                params=function_params(fn, facts.module),
                returns=fn.returns,
                doc=fn.node.get_docstring(clean=True) or None,
                is_async=fn.node.asynchronous is not None,
                streams=fn.streams,
            )
        )
    model_ids: list[str] = []
    for call in facts.model_path_calls:
        mid = model_id_of(call)
        if mid is not None and mid not in model_ids:
            model_ids.append(mid)
    typedefs = facts.converter.typedefs
    used = spec.referenced_types(
        [p.type for f in functions for p in f.params] + [f.returns for f in functions], typedefs
    )
    types = tuple(typedefs[n] for n in used)
    return spec.Interface(name, tuple(functions), types, tuple(model_ids), source_name)


def function_params(fn: FunctionFacts, module: cst.Module) -> tuple[spec.Parameter, ...]:
    """The IR parameters of an exposed function (implicit Optional applied; ``*args`` dropped)."""
    out: list[spec.Parameter] = []
    for p in fn.params:
        if p.kind == "var_positional":
            continue  # SG005 reports it
        kind: spec.ParamKind = (
            "var_keyword"
            if p.kind == "var_keyword"
            else "keyword_only"
            if p.kind == "keyword_only"
            else "positional_or_keyword"
        )
        t = p.type
        if p.default is not None and p.default_is_literal and p.default_value is None:
            t = spec.union([t, spec.NONE])
        out.append(
            spec.Parameter(
                name=p.name,
                type=t,
                kind=kind,
                has_default=p.default is not None,
                default=p.default_value if p.default_is_literal else None,
                default_is_literal=p.default_is_literal,
                default_source=_source(p.default, module) if p.default is not None else None,
            )
        )
    return tuple(out)


def _source(node: cst.BaseExpression, module: cst.Module) -> str:
    # Most defaults are one token: its text is at hand, and libcst's code
    # generation costs a tenth of the analysis on a typical file.
    if isinstance(node, (cst.Name, cst.Integer, cst.Float, cst.SimpleString)) and not node.lpar:
        return node.value
    return module.code_for_node(node)


def model_id_of(call: cst.Call) -> str | None:
    """The literal model id of a ``get_model_path(...)`` call, if it has one."""
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value == "model_id":
            ok, v = literal_value(arg.value)
            return v if ok and isinstance(v, str) else None
    return None
