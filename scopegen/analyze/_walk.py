"""Walking libcst trees by their fields, and what counts as a model load.

Shared by the rules' single traversal (``_facts``) and the per-statement
facts that ``serve --reload`` reads (``_units``), so that SG010's idea of a
load and the reloader's are one definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import libcst as cst

from scopegen.analyze._names import ModuleNames

__all__ = [
    "GET_MODEL_PATH",
    "LOAD_ATTRS",
    "LOAD_QUALIFIED",
    "LoadCalls",
    "child_fields",
    "child_nodes",
    "structure_fields",
]

GET_MODEL_PATH = frozenset({"scopegen.get_model_path", "scopegen.runtime.get_model_path"})
# Calls that load a model or weights (SG010): qualified names, or a final
# attribute that means a load whatever the receiver is.
LOAD_QUALIFIED = frozenset(
    {
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
)
LOAD_ATTRS = frozenset({"from_pretrained", "load_state_dict"})

# Fields that only ever hold layout: whitespace, comments, brackets, separators.
_LAYOUT_PREFIXES = (
    "whitespace",
    "trailing_whitespace",
    "lpar",
    "rpar",
    "comma",
    "semicolon",
    "leading_lines",
    "lines_after",
    "header",
    "footer",
    "newline",
    "indent",
    "default_indent",
    "default_newline",
    "encoding",
)
# ...and fields whose node type says all there is (``=``, ``:``, ``.``, ``+``, ``async``).
_TOKEN_PREFIXES = (
    "equal",
    "colon",
    "dot",
    "operator",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "asynchronous",
    "arrow",
)
_child_fields: dict[type[cst.CSTNode], tuple[str, ...]] = {}
_structure_fields: dict[type[cst.CSTNode], tuple[str, ...]] = {}


def child_fields(t: type[cst.CSTNode]) -> tuple[str, ...]:
    """The fields of a node type that can hold code (not layout or single tokens).

    Reading fields directly costs ~0.05x a parse; libcst's visitor machinery,
    which rebuilds every node on the way back up, ~0.7x.
    """
    names = _child_fields.get(t)
    if names is None:
        names = _fields_without(t, _LAYOUT_PREFIXES + _TOKEN_PREFIXES)
        _child_fields[t] = names
    return names


def structure_fields(t: type[cst.CSTNode]) -> tuple[str, ...]:
    """The fields of a node type that are not layout (single tokens included)."""
    names = _structure_fields.get(t)
    if names is None:
        names = _fields_without(t, _LAYOUT_PREFIXES)
        _structure_fields[t] = names
    return names


def child_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes in ``node``'s ``child_fields``, in order."""
    for name in child_fields(type(node)):
        v = getattr(node, name)
        if isinstance(v, cst.CSTNode):
            yield v
        elif isinstance(v, (tuple, list)):
            yield from (x for x in v if isinstance(x, cst.CSTNode))


def _fields_without(t: type[cst.CSTNode], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(t) if not f.name.startswith(prefixes))


class LoadCalls:
    """Which calls of one module load a model: SG010's loads and ``get_model_path``."""

    def __init__(self, names: ModuleNames) -> None:
        self.names = names
        # A bare ``get_model_path`` nobody bound is the global the loader injects.
        self._gmp_unbound = not names.is_bound("get_model_path")

    def load(self, func: cst.Name | cst.Attribute) -> str | None:
        """How SG010 names the load ``func(...)`` is (``.from_pretrained()``), or None."""
        if isinstance(func, cst.Attribute) and func.attr.value in LOAD_ATTRS:
            return f".{func.attr.value}()"
        qn = self.names.qualify(func)
        if qn in LOAD_QUALIFIED:
            return f"{qn}()"
        if isinstance(func, cst.Name) and func.value == "pipeline":
            return "pipeline()"
        return None

    def model_path(self, func: cst.Name | cst.Attribute) -> bool:
        """Whether ``func(...)`` is scopegen's ``get_model_path``."""
        if isinstance(func, cst.Name):
            if func.value != "get_model_path":
                return False
            if self._gmp_unbound:
                return True
        elif func.attr.value != "get_model_path":
            return False
        return self.names.qualify(func) in GET_MODEL_PATH

    def any(self, node: cst.CSTNode) -> bool:
        """Whether anything inside ``node`` (function bodies included) calls a load."""
        stack: list[cst.CSTNode] = [node]
        while stack:
            n = stack.pop()
            if (
                isinstance(n, cst.Call)
                and isinstance(n.func, (cst.Name, cst.Attribute))
                and (self.model_path(n.func) or self.load(n.func) is not None)
            ):
                return True
            stack.extend(child_nodes(n))
        return False
