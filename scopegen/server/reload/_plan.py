"""Which top-level statements of an edited interface can keep their previous values.

``scopegen serve --reload`` re-executes the interface after every edit, but a
statement that loads a model (the calls of SG010, plus ``get_model_path``)
should not run again when nothing it depends on changed. This module is the
static half of that decision, on plain data:

- A *unit* is one top-level statement (a line of ``;``-separated small
  statements counts as one). For each: the names it binds, the names it reads
  (anywhere inside it, function bodies included: a conservative superset), the
  values it *mutates* (a method call on a module-level value, ``x.attr = ...``,
  ``x[k] = ...``) and whether it calls a load itself.
- A unit's dependencies are, for each name it reads, the latest earlier unit
  that defines (binds or mutates) it; a ``def``/``class`` body runs later, so
  for those every unit defining the name counts.
- A unit's *signature* hashes its normalised code (the AST: comments, blank
  lines and moving it around do not count) with the code of every unit it
  transitively depends on, and the content of the local helper modules it
  imports.
- A value's *chain* is the unit that made it plus the later units that mutate
  or rebuild it (``model.eval()``, ``model = model.to(device)``,
  ``model.register_forward_hook(fn)``). A kept object carries those mutations,
  so it is kept only when its whole chain is unchanged; adding, editing or
  removing ``model.half()`` loads the model again instead of applying the
  change on top of (or leaving it in) the old object.
- An *expensive* unit (a head) is an assignment-like unit that calls a load,
  directly or through a function or class of the file. It is kept when every
  value unit it needs (its dependencies' closure, through the chains of the
  values on the way) matches an unchanged unit of the previous version. Kept
  units do not run: the values they bound right after they ran last time are
  put back at the same place. ``def`` and ``import`` units always run (they
  are cheap, and a copied function would keep reading the old globals).
"""

from __future__ import annotations
import __future__

import ast
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import libcst as cst

from scopegen.analyze._names import ModuleNames
from scopegen.analyze._walk import LoadCalls

__all__ = ["Plan", "Reuse", "Unit", "build_plan", "plan_reuse"]

UnitKind = Literal["def", "class", "import", "other"]

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True, eq=False)
class Unit:
    """One top-level statement (or one line of ``;``-separated ones)."""

    index: int
    kind: UnitKind
    stmts: tuple[ast.stmt, ...]
    binds: frozenset[str]
    # Module-level values this unit mutates (only values other statements made).
    mutates: frozenset[str]
    star: bool  # ``from x import *``: binds names nobody can list

    @property
    def line(self) -> int:
        return self.stmts[0].lineno

    @property
    def copyable(self) -> bool:
        """Whether keeping it means copying its values (else it always runs)."""
        return self.kind in ("other", "class")

    @property
    def defines(self) -> frozenset[str]:
        return self.binds | self.mutates


@dataclass(eq=False)
class Plan:
    """The units of one version of the file and what the reload decision needs."""

    units: tuple[Unit, ...]
    # Expensive value units, in file order.
    heads: tuple[int, ...]
    # Head -> the value units it needs kept together (itself included).
    groups: dict[int, frozenset[int]]
    # For every unit of a group: its dependencies, its chain (itself first:
    # the later units that mutate or rebuild what it made) and its signature
    # (its code + the code of everything it depends on, transitively).
    deps: dict[int, frozenset[int]]
    chains: dict[int, tuple[int, ...]]
    sigs: dict[int, str]
    # ``from __future__`` flags for compiling each unit on its own.
    flags: int = 0
    doc: str | None = None
    _code: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def snapshot_units(self) -> frozenset[int]:
        """Value units whose values a later version may reuse."""
        out: set[int] = set()
        for g in self.groups.values():
            out |= g
        return frozenset(out)

    def code(self, index: int, filename: str) -> Any:
        """The unit compiled on its own, with the file's line numbers."""
        co = self._code.get(index)
        if co is None:
            mod = ast.Module(body=list(self.units[index].stmts), type_ignores=[])
            co = compile(mod, filename, "exec", flags=self.flags, dont_inherit=True)
            self._code[index] = co
        return co

    def names(self, indices: Iterable[int]) -> list[str]:
        """The names the given units define, in file order, without repeats."""
        out: dict[str, None] = {}
        for i in sorted(indices):
            u = self.units[i]
            for n in sorted(u.binds) or sorted(u.mutates):
                out.setdefault(n, None)
        return list(out)


@dataclass(frozen=True)
class Reuse:
    """What a new version takes from the previous one."""

    # New unit index -> old unit index whose snapshot it takes instead of running.
    values: dict[int, int]
    kept_heads: tuple[int, ...]
    rerun_heads: tuple[int, ...]

    @property
    def kept(self) -> frozenset[int]:
        return frozenset(self.values)


def build_plan(
    module: cst.Module | None,
    source: str,
    filename: str,
    helper_digests: Mapping[str, int] | None = None,
) -> Plan:
    """Split ``source`` into units and work out what a reload decision needs.

    ``module`` is the analyzer's libcst parse of the same source (used to find
    load calls with the SG010 rules); without it nothing counts as expensive.
    ``helper_digests`` maps local helper module names to a digest of their
    content (and of the local modules they import). Function bodies are only
    looked into when a module-level statement depends on the function, so a
    file of thousands of exposed functions costs little more than its parse.
    """
    tree = ast.parse(source, filename)
    return _Builder(tree, module, helper_digests or {}).plan()


def plan_reuse(old: Plan, old_snapshots: Mapping[int, object], new: Plan) -> Reuse:
    """Which value units of ``new`` take their values from ``old`` instead of running.

    A value unit must run again when it has no unchanged counterpart in
    ``old`` with a snapshot, when its chain changed, or when anything it needs
    (a dependency, or a unit of its chain) must run again; a head is kept
    when nothing in its group must run again.
    """
    match = _match(old, new)
    rerun: set[int] = set()
    candidates = new.snapshot_units
    for i in candidates:
        o = match.get(i)
        if o is None or o not in old_snapshots:
            rerun.add(i)
            continue
        new_chain = [new.sigs[c] for c in new.chains[i]]
        old_chain = [old.sigs[c] for c in old.chains.get(o, ())]
        if new_chain != old_chain:
            rerun.add(i)
    # Propagate: a unit needing one that runs again runs again too.
    changed = True
    while changed:
        changed = False
        for i in candidates:
            if i in rerun:
                continue
            needs = set(new.deps[i]) | set(new.chains[i][1:])
            if any(n in rerun for n in needs):
                rerun.add(i)
                changed = True
    kept_heads = tuple(h for h in new.heads if h not in rerun)
    values: dict[int, int] = {}
    for h in kept_heads:
        for i in new.groups[h]:
            values[i] = match[i]
    rerun_heads = tuple(h for h in new.heads if h in rerun)
    return Reuse(values, kept_heads, rerun_heads)


class _Builder:
    """Lazy facts about the units of one file, computed only where needed."""

    def __init__(
        self, tree: ast.Module, module: cst.Module | None, helpers: Mapping[str, int]
    ) -> None:
        self.tree = tree
        self.module = module
        self.helpers = helpers
        groups = _group_statements(tree.body, module)
        self.cst_units: Sequence[cst.CSTNode] | None = (
            module.body if module is not None and len(module.body) == len(groups) else None
        )
        self.names = (
            ModuleNames.collect(module)
            if module is not None and self.cst_units is not None
            else None
        )
        self.gmp_unbound = self.names is not None and not self.names.is_bound("get_model_path")
        self.flags = 0
        self._reads: dict[int, frozenset[str]] = {}
        self._loads: dict[int, bool] = {}
        self._digests: dict[int, int] = {}
        self._deps: dict[int, frozenset[int]] = {}
        self._closures: dict[int, frozenset[int]] = {}
        self._chains: dict[int, tuple[int, ...]] = {}
        units: list[Unit] = []
        latest_kind: dict[str, UnitKind] = {}
        for i, stmts in enumerate(groups):
            kind = _kind(stmts)
            for s in stmts:
                if isinstance(s, ast.ImportFrom) and s.module == "__future__":
                    for alias in s.names:
                        feature = getattr(__future__, alias.name, None)
                        self.flags |= getattr(feature, "compiler_flag", 0)
            if kind in ("def", "class"):
                node = stmts[0]
                assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                unit = Unit(i, kind, stmts, frozenset({node.name}), frozenset(), False)
            else:
                binds, reads, mutates, star = _scan(stmts)
                self._reads[i] = frozenset(reads)
                # Mutations only count on values statements made (not modules,
                # classes or builtins).
                if kind == "other":
                    mutates = {n for n in mutates if latest_kind.get(n) == "other"}
                else:
                    mutates = set()
                unit = Unit(i, kind, stmts, frozenset(binds), frozenset(mutates), star)
            units.append(unit)
            # ``try: import torch`` / ``except ImportError: torch = None`` binds a
            # module: calls on it do not change a value of the file.
            modules = _import_binds(stmts) if kind == "other" else set()
            for n in unit.binds:
                latest_kind[n] = "import" if n in modules else kind
        self.units = units
        self.definers: dict[str, list[int]] = {}
        for u in units:
            for n in u.defines:
                self.definers.setdefault(n, []).append(u.index)
        self.stars = [u.index for u in units if u.star]

    def plan(self) -> Plan:
        units = self.units
        heads = tuple(
            u.index
            for u in units
            if u.kind == "other"
            and (
                self.loads(u.index)
                or any(self.loads(d) for d in self.closure(u.index) if not units[d].copyable)
            )
        )
        groups = {h: self.group(h) for h in heads}
        members = sorted({i for g in groups.values() for i in g})
        return Plan(
            tuple(units),
            heads,
            groups,
            {i: self.deps(i) for i in members},
            {i: self.chain(i) for i in members},
            {i: self.signature(i) for i in members},
            self.flags,
            ast.get_docstring(self.tree, clean=False),
        )

    # ------------------------------------------------------------ per unit

    def reads(self, i: int) -> frozenset[str]:
        r = self._reads.get(i)
        if r is None:
            r = frozenset(_scan(self.units[i].stmts)[1])
            self._reads[i] = r
        return r

    def loads(self, i: int) -> bool:
        v = self._loads.get(i)
        if v is None:
            v = False
            if self.cst_units is not None and self.names is not None:
                v = _has_load(self.cst_units[i], self.names, self.gmp_unbound)
            self._loads[i] = v
        return v

    def digest(self, i: int) -> int:
        d = self._digests.get(i)
        if d is None:
            u = self.units[i]
            d = _digest(u.stmts, self.helpers if u.kind in ("import", "other") else None)
            self._digests[i] = d
        return d

    def deps(self, i: int) -> frozenset[int]:
        """For each name read: the latest earlier unit defining it (any, for bodies)."""
        got = self._deps.get(i)
        if got is not None:
            return got
        u = self.units[i]
        out: set[int] = set()
        later = u.kind in ("def", "class")  # bodies run later, whatever is bound by then
        for n in self.reads(i):
            where = self.definers.get(n)
            if where is None:
                # Unbound here: a builtin, an injected global, or from a star import.
                out.update(s for s in self.stars if s < i or later)
            elif later:
                out.update(w for w in where if w != i)
            else:
                before = [w for w in where if w < i]
                if before:
                    out.add(before[-1])
                else:
                    out.update(s for s in self.stars if s < i)
        got = frozenset(out)
        self._deps[i] = got
        return got

    def closure(self, i: int) -> frozenset[int]:
        """Everything ``i`` depends on, transitively (cycles through bodies are fine)."""
        got = self._closures.get(i)
        if got is not None:
            return got
        seen: set[int] = set()
        todo = list(self.deps(i))
        while todo:
            d = todo.pop()
            if d in seen:
                continue
            seen.add(d)
            done = self._closures.get(d)
            if done is not None:
                seen |= done
                continue
            todo.extend(self.deps(d))
        got = frozenset(seen)
        self._closures[i] = got
        return got

    def signature(self, i: int) -> str:
        # An order-free sum of the dependencies' digests: moving a statement
        # around does not change what a unit depends on.
        total = sum(self.digest(d) for d in self.closure(i) if d != i) % (1 << 128)
        return f"{self.digest(i):032x}{total:032x}"

    def chain(self, i: int) -> tuple[int, ...]:
        got = self._chains.get(i)
        if got is not None:
            return got
        u = self.units[i]
        names = set(u.defines)
        chain = [i]
        for v in self.units[i + 1 :]:
            if not names:
                break
            if v.kind != "other":
                names -= v.binds  # a def, class or import rebinding a name ends its chain
                continue
            if v.mutates & names or (v.binds & names and self.reads(v.index) & names):
                chain.append(v.index)
                names |= v.binds
            else:
                names -= v.binds
        got = tuple(chain)
        self._chains[i] = got
        return got

    def group(self, head: int) -> frozenset[int]:
        """The value units a head needs kept with it: chains and dependencies, transitively."""
        seen: set[int] = set()
        out: set[int] = set()
        todo = [head]
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            todo.extend(self.deps(i))
            if self.units[i].copyable:
                out.add(i)
                todo.extend(self.chain(i))
        return frozenset(out)


# --------------------------------------------------------------------------- units


def _group_statements(
    body: list[ast.stmt], module: cst.Module | None
) -> list[tuple[ast.stmt, ...]]:
    """ast statements grouped like libcst's top-level statements (one group per line)."""
    if module is not None:
        sizes = [len(s.body) if isinstance(s, cst.SimpleStatementLine) else 1 for s in module.body]
        if sum(sizes) == len(body):
            out: list[tuple[ast.stmt, ...]] = []
            pos = 0
            for n in sizes:
                out.append(tuple(body[pos : pos + n]))
                pos += n
            return out
    return [(s,) for s in body]


def _kind(stmts: tuple[ast.stmt, ...]) -> UnitKind:
    if len(stmts) == 1:
        s = stmts[0]
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return "def"
        if isinstance(s, ast.ClassDef):
            return "class"
    if all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in stmts):
        return "import"
    return "other"


def _scan(stmts: Iterable[ast.stmt]) -> tuple[set[str], set[str], set[str], bool]:
    """(binds, reads, mutates, star) of top-level statements; one walk."""
    binds: set[str] = set()
    reads: set[str] = set()
    mutates: set[str] = set()
    star = False
    # (node, binds at module scope, runs when the statement runs)
    stack: list[tuple[ast.AST, bool, bool]] = [(s, True, True) for s in stmts]
    while stack:
        node, top, now = stack.pop()
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                reads.add(node.id)
            elif top:
                binds.add(node.id)
            continue
        if top:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                binds.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        star = True
                    else:
                        binds.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
                if node.name:
                    binds.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                binds.add(node.rest)
            elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                binds.add(node.target.id)
        if now:
            # A method call may change its receiver; calling a value itself
            # (``model(x)``, ``Config(...)``) is taken as a use, not a change.
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                root = _root(node.func)
                if root is not None:
                    mutates.add(root)
            elif isinstance(node, (ast.Assign, ast.Delete)):
                for t in node.targets:
                    _target_roots(t, mutates)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                _target_roots(node.target, mutates)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # Decorators, defaults and annotations run now; the body later.
            for child in ast.iter_child_nodes(node):
                in_body = isinstance(child, ast.stmt) or (
                    isinstance(node, ast.Lambda) and child is node.body
                )
                stack.append((child, False, now and not in_body))
            continue
        if isinstance(node, ast.ClassDef):
            for child in ast.iter_child_nodes(node):
                stack.append((child, False, now))
            continue
        child_top = top and not isinstance(node, _COMPREHENSIONS)
        for child in ast.iter_child_nodes(node):
            stack.append((child, child_top, now))
    return binds, reads, mutates, star


def _import_binds(stmts: Iterable[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for node in (n for s in stmts for n in ast.walk(s)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update(a.asname or a.name.split(".")[0] for a in node.names if a.name != "*")
    return out


def _root(expr: ast.expr) -> str | None:
    """``a`` for ``a``, ``a.b.c``, ``a[k].b``, ``a.b().c``; else None."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, (ast.Attribute, ast.Subscript)):
            expr = expr.value
        elif isinstance(expr, ast.Call):
            expr = expr.func
        else:
            return None


def _target_roots(target: ast.expr, out: set[str]) -> None:
    if isinstance(target, (ast.Attribute, ast.Subscript)):
        root = _root(target)
        if root is not None:
            out.add(root)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_roots(elt, out)
    elif isinstance(target, ast.Starred):
        _target_roots(target.value, out)


def _digest(stmts: tuple[ast.stmt, ...], helpers: Mapping[str, int] | None) -> int:
    h = hashlib.blake2b(digest_size=16)
    for s in stmts:
        h.update(ast.dump(s).encode())
    if helpers:
        for mod in sorted(_imported(stmts)):
            parts = mod.split(".")
            for k in range(1, len(parts) + 1):
                d = helpers.get(".".join(parts[:k]))
                if d is not None:
                    h.update(b"%s=%d;" % (".".join(parts[:k]).encode(), d))
    return int.from_bytes(h.digest(), "big")


def _imported(stmts: Iterable[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for s in (n for stmt in stmts for n in ast.walk(stmt)):
        if isinstance(s, ast.Import):
            out.update(a.name for a in s.names)
        elif isinstance(s, ast.ImportFrom) and s.module and not s.level:
            out.add(s.module)
            out.update(f"{s.module}.{a.name}" for a in s.names if a.name != "*")
    return out


# --------------------------------------------------------------------------- loads


def _has_load(node: cst.CSTNode, names: ModuleNames, gmp_unbound: bool) -> bool:
    return LoadCalls(names).any(node)


# --------------------------------------------------------------------------- matching


def _match(old: Plan, new: Plan) -> dict[int, int]:
    """New value unit -> the old one with the same signature (k-th with k-th)."""
    by_sig: dict[str, list[int]] = {}
    for i in sorted(old.sigs):
        by_sig.setdefault(old.sigs[i], []).append(i)
    out: dict[int, int] = {}
    taken: dict[str, int] = {}
    for i in sorted(new.sigs):
        sig = new.sigs[i]
        olds = by_sig.get(sig)
        k = taken.get(sig, 0)
        if olds and k < len(olds):
            out[i] = olds[k]
            taken[sig] = k + 1
    return out
