"""Literal values in source: what a default or a ``Literal[...]`` argument evaluates to."""

from __future__ import annotations

import libcst as cst

from scopegen import spec

__all__ = ["literal_value"]


def literal_value(node: cst.BaseExpression) -> tuple[bool, spec.JSONValue]:
    """``(True, value)`` when ``node`` is a JSON-representable literal, else ``(False, None)``.

    Tuples become lists (that is how they cross the wire).
    """
    if isinstance(node, cst.Integer):
        return True, int(node.evaluated_value)
    if isinstance(node, cst.Float):
        return True, float(node.evaluated_value)
    if isinstance(node, cst.SimpleString) and not node.prefix and "\\" not in node.value:
        # Fast path: libcst's evaluated_value goes through ast.literal_eval.
        q = len(node.quote)
        return True, node.value[q:-q]
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        sv = node.evaluated_value
        return (True, sv) if isinstance(sv, str) else (False, None)
    if isinstance(node, cst.Name):
        if node.value == "True":
            return True, True
        if node.value == "False":
            return True, False
        if node.value == "None":
            return True, None
        return False, None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        ok, nv = literal_value(node.expression)
        if ok and isinstance(nv, (int, float)) and not isinstance(nv, bool):
            return True, (-nv if isinstance(node.operator, cst.Minus) else nv)
        return False, None
    if isinstance(node, (cst.List, cst.Tuple)):
        items: list[spec.JSONValue] = []
        for el in node.elements:
            if not isinstance(el, cst.Element):
                return False, None
            ok, iv = literal_value(el.value)
            if not ok:
                return False, None
            items.append(iv)
        return True, items
    if isinstance(node, cst.Dict):
        out: dict[str, spec.JSONValue] = {}
        for del_ in node.elements:
            if not isinstance(del_, cst.DictElement):
                return False, None
            ok, k = literal_value(del_.key)
            if not ok or not isinstance(k, str):
                return False, None
            ok, dv = literal_value(del_.value)
            if not ok:
                return False, None
            out[k] = dv
        return True, out
    return False, None
