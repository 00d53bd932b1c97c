"""Name resolution for one module: which local name stands for which qualified name.

A single pass over the module's top-level statements (including ``if``/``try``
blocks, where ``TYPE_CHECKING`` imports live) records imports, classes,
functions and simple assignments. It replaces libcst's QualifiedNameProvider,
which costs several times a parse on large files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

__all__ = ["ModuleNames", "dotted", "iter_module_statements"]


def dotted(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else ``None``."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def iter_module_statements(body: Sequence[cst.CSTNode]) -> Iterator[cst.BaseStatement]:
    """Statements at module scope, descending into if/try/with blocks (not defs)."""
    for stmt in body:
        if not isinstance(stmt, cst.BaseStatement):
            continue
        yield stmt
        if isinstance(stmt, cst.If):
            yield from iter_module_statements(stmt.body.body)
            orelse = stmt.orelse
            while orelse is not None:
                yield from iter_module_statements(orelse.body.body)
                orelse = orelse.orelse if isinstance(orelse, cst.If) else None
        elif isinstance(stmt, cst.Try):
            yield from iter_module_statements(stmt.body.body)
            for h in stmt.handlers:
                yield from iter_module_statements(h.body.body)
            if stmt.orelse:
                yield from iter_module_statements(stmt.orelse.body.body)
            if stmt.finalbody:
                yield from iter_module_statements(stmt.finalbody.body.body)
        elif isinstance(stmt, cst.With):
            yield from iter_module_statements(stmt.body.body)


@dataclass
class ModuleNames:
    """Bindings at module scope."""

    # local name -> qualified name it was imported as (``np`` -> ``numpy``).
    imports: dict[str, str] = field(default_factory=dict)
    classes: dict[str, cst.ClassDef] = field(default_factory=dict)
    functions: set[str] = field(default_factory=set)
    # ``X = <expr>`` / ``X: TypeAlias = <expr>`` / ``type X = <expr>``.
    assignments: dict[str, cst.BaseExpression] = field(default_factory=dict)
    # Top-level imported module names, for dependency inference.
    imported_modules: list[str] = field(default_factory=list)

    @classmethod
    def collect(cls, module: cst.Module) -> ModuleNames:
        names = cls()
        for stmt in iter_module_statements(module.body):
            if isinstance(stmt, cst.ClassDef):
                names.classes[stmt.name.value] = stmt
            elif isinstance(stmt, cst.FunctionDef):
                names.functions.add(stmt.name.value)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    names._small(small)
            elif type(stmt).__name__ == "TypeAlias":  # libcst >= 1.1: ``type X = ...``
                alias = stmt
                names.assignments[alias.name.value] = alias.value  # type: ignore[attr-defined]
        return names

    def _small(self, small: cst.BaseSmallStatement) -> None:
        if isinstance(small, cst.Import):
            for alias in small.names:
                full = dotted(alias.name)
                if full is None:
                    continue
                self.imported_modules.append(full)
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.imports[alias.asname.name.value] = full
                else:
                    # ``import a.b`` binds ``a``.
                    top = full.split(".")[0]
                    self.imports[top] = top
        elif isinstance(small, cst.ImportFrom):
            if small.relative or small.module is None:
                return
            mod = dotted(small.module)
            if mod is None:
                return
            self.imported_modules.append(mod)
            if isinstance(small.names, cst.ImportStar):
                return
            for alias in small.names:
                if not isinstance(alias.name, cst.Name):
                    continue
                local = alias.name.value
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    local = alias.asname.name.value
                self.imports[local] = f"{mod}.{alias.name.value}"
        elif isinstance(small, cst.Assign):
            if len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                self.assignments[small.targets[0].target.value] = small.value
        elif (
            isinstance(small, cst.AnnAssign)
            and isinstance(small.target, cst.Name)
            and small.value is not None
        ):
            self.assignments[small.target.value] = small.value

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """Qualified name of a Name/Attribute, resolved through imports.

        Unbound bare names come back as themselves (builtins, injected globals).
        A class defined in this file has no qualified name (``None``): see
        ``local_class``, so that a local ``class list`` never reads as the builtin.
        """
        d = dotted(node)
        if d is None:
            return None
        head, _, rest = d.partition(".")
        if head in self.imports:
            base = self.imports[head]
        elif head in self.classes and not rest:
            return None
        else:
            base = head
        return f"{base}.{rest}" if rest else base

    def local_class(self, node: cst.BaseExpression) -> str | None:
        """The name of the class ``node`` refers to, when that class is defined in this file."""
        if isinstance(node, cst.Name) and node.value in self.classes:
            return None if node.value in self.imports else node.value
        return None

    def is_bound(self, name: str) -> bool:
        return (
            name in self.imports
            or name in self.classes
            or name in self.functions
            or name in self.assignments
        )
