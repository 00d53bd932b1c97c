"""Which top-level statements of an edited interface can keep their previous values.

``scopegen serve --reload`` re-executes the interface after every edit, but a
statement that loads a model (the calls of SG010, plus ``get_model_path``)
should not run again when nothing it depends on changed. This module is the
static half of that decision, on plain data: the analyzer says, per unit
(top-level statement), what it binds, reads and mutates, whether it calls a
load and a digest of its code (``scopegen.analyze.module_units``); this
module works out the rest.

- A unit's dependencies are, for each name it reads, the latest earlier unit
  that defines (binds or mutates) it; a ``def``/``class`` body runs later, so
  for those every unit defining the name counts.
- A unit's *signature* hashes its code digest with those of every unit it
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

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from scopegen.analyze import Unit, UnitKind

__all__ = ["Plan", "Reuse", "Statement", "build_plan", "plan_reuse"]


@dataclass(frozen=True)
class Statement:
    """What the plan keeps of one unit (no parse tree: a plan outlives its analysis)."""

    index: int
    kind: UnitKind
    line: int
    binds: frozenset[str]
    # Module-level values this unit mutates (only values other statements made).
    mutates: frozenset[str]

    @property
    def copyable(self) -> bool:
        """Whether keeping it means copying its values (else it always runs)."""
        return self.kind in ("other", "class")

    @property
    def defines(self) -> frozenset[str]:
        return self.binds | self.mutates


@dataclass(frozen=True, eq=False)
class Plan:
    """The units of one version of the file and what the reload decision needs."""

    units: tuple[Statement, ...]
    # Expensive value units, in file order.
    heads: tuple[int, ...]
    # Head -> the value units it needs kept together (itself included).
    groups: Mapping[int, frozenset[int]]
    # For every unit of a group: its dependencies, everything it depends on
    # (transitively) and its chain (itself first: the later units that mutate
    # or rebuild what it made).
    deps: Mapping[int, frozenset[int]]
    closures: Mapping[int, frozenset[int]]
    chains: Mapping[int, tuple[int, ...]]
    # For the units signatures cover: the code digest, and for imports and
    # value units the modules they import (helper modules sign them too).
    code: Mapping[int, int]
    imports: Mapping[int, frozenset[str]]
    # The helper-module digests the signatures were made with.
    helpers: Mapping[str, int]
    # Unit -> digest of its code and of the helper modules it imports.
    own: Mapping[int, int]
    # Group unit -> its signature: its own digest and those of its closure.
    sigs: Mapping[int, str]

    @property
    def snapshot_units(self) -> frozenset[int]:
        """Value units whose values a later version may reuse."""
        out: set[int] = set()
        for g in self.groups.values():
            out |= g
        return frozenset(out)

    def names(self, indices: Iterable[int]) -> list[str]:
        """The names the given units define, in file order, without repeats."""
        out: dict[str, None] = {}
        for i in sorted(indices):
            u = self.units[i]
            for n in sorted(u.binds) or sorted(u.mutates):
                out.setdefault(n, None)
        return list(out)

    def signed(self, helpers: Mapping[str, int]) -> Plan:
        """The same plan, signed with other helper-module digests."""
        own = {i: _own_digest(d, self.imports.get(i), helpers) for i, d in self.code.items()}
        return replace(self, helpers=dict(helpers), own=own, sigs=_signatures(self.closures, own))


@dataclass(frozen=True)
class Reuse:
    """What a new version takes from the previous one."""

    # New unit index -> old unit index whose snapshot it takes instead of running.
    values: dict[int, int]
    kept_heads: tuple[int, ...]
    rerun_heads: tuple[int, ...]
    # Unit that runs again -> why, in a few words ("its statement changed at line 12").
    reasons: dict[int, str]

    @property
    def kept(self) -> frozenset[int]:
        return frozenset(self.values)


def build_plan(units: Sequence[Unit], helper_digests: Mapping[str, int] | None = None) -> Plan:
    """Work out what a reload decision needs from the units of one version.

    ``helper_digests`` maps local helper module names to a digest of their
    content (and of the local modules they import). Function bodies are only
    looked into when a module-level statement depends on the function, so a
    file of thousands of exposed functions costs little more than its parse.
    """
    return _Builder(units).plan(helper_digests or {})


def plan_reuse(old: Plan, old_snapshots: Mapping[int, object], new: Plan) -> Reuse:
    """Which value units of ``new`` take their values from ``old`` instead of running.

    A value unit must run again when it has no unchanged counterpart in
    ``old`` with a snapshot, when its chain changed, or when anything it needs
    (a dependency, or a unit of its chain) must run again; a head is kept
    when nothing in its group must run again.
    """
    match = _match(old, new)
    why: dict[int, str] = {}
    candidates = sorted(new.snapshot_units)
    for i in candidates:
        o = match.get(i)
        if o is None:
            why[i] = _what_changed(old, new, i)
        elif o not in old_snapshots:
            why[i] = "the served version kept no value for it"
        else:
            old_chain = [old.sigs[c] for c in old.chains.get(o, ())]
            if [new.sigs[c] for c in new.chains[i]] != old_chain:
                why[i] = _how_the_chain_changed(new, i, set(old_chain))
    # Propagate: a unit needing one that runs again runs again too.
    changed = True
    while changed:
        changed = False
        for i in candidates:
            if i in why:
                continue
            needs = sorted(set(new.deps[i]) | set(new.chains[i][1:]))
            hit = next((n for n in needs if n in why), None)
            if hit is not None:
                why[i] = f"it needs {', '.join(new.names([hit]))}, which runs again"
                changed = True
    kept_heads = tuple(h for h in new.heads if h not in why)
    values: dict[int, int] = {}
    for h in kept_heads:
        for i in new.groups[h]:
            values[i] = match[i]
    rerun_heads = tuple(h for h in new.heads if h in why)
    return Reuse(values, kept_heads, rerun_heads, why)


class _Builder:
    """Facts about the units of one file, computed only where needed."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        statements: list[Statement] = []
        latest_kind: dict[str, UnitKind] = {}
        for u in units:
            # Mutations only count on values statements made (not modules,
            # classes or builtins).
            mutates: frozenset[str] = frozenset()
            if u.kind == "other":
                mutates = frozenset(n for n in u.mutates if latest_kind.get(n) == "other")
            statements.append(Statement(u.index, u.kind, u.line, u.binds, mutates))
            # ``try: import torch`` / ``except ImportError: torch = None`` binds a
            # module: calls on it do not change a value of the file.
            modules = u.import_binds if u.kind == "other" else frozenset()
            for n in u.binds:
                latest_kind[n] = "import" if n in modules else u.kind
        self.statements = statements
        self.definers: dict[str, list[int]] = {}
        for s in statements:
            for n in s.defines:
                self.definers.setdefault(n, []).append(s.index)
        self.stars = [u.index for u in units if u.star]
        # Per-instance caches (a class-level cache would keep every builder alive).
        self.deps = functools.cache(self._deps)
        self.closure = functools.cache(self._closure)
        self.chain = functools.cache(self._chain)

    def plan(self, helpers: Mapping[str, int]) -> Plan:
        units = self.units
        statements = self.statements
        heads = tuple(
            u.index
            for u in units
            if u.kind == "other"
            and (
                u.calls_load
                or any(
                    units[d].calls_load
                    for d in self.closure(u.index)
                    if not statements[d].copyable
                )
            )
        )
        groups = {h: self.group(h) for h in heads}
        members = sorted({i for g in groups.values() for i in g})
        closures = {i: self.closure(i) for i in members}
        signed = sorted({i for i in members} | {d for c in closures.values() for d in c})
        code = {i: units[i].digest for i in signed}
        imports = {i: _imported(units[i]) for i in signed if units[i].kind in ("import", "other")}
        own = {i: _own_digest(d, imports.get(i), helpers) for i, d in code.items()}
        return Plan(
            tuple(statements),
            heads,
            groups,
            {i: self.deps(i) for i in members},
            closures,
            {i: self.chain(i) for i in members},
            code,
            imports,
            dict(helpers),
            own,
            _signatures(closures, own),
        )

    def _deps(self, i: int) -> frozenset[int]:
        """For each name read: the latest earlier unit defining it (any, for bodies)."""
        u = self.units[i]
        out: set[int] = set()
        later = u.kind in ("def", "class")  # bodies run later, whatever is bound by then
        for n in u.reads:
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
        return frozenset(out)

    def _closure(self, i: int) -> frozenset[int]:
        """Everything ``i`` depends on, transitively (cycles through bodies are fine)."""
        seen: set[int] = set()
        todo = list(self.deps(i))
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(self.deps(d))
        return frozenset(seen)

    def _chain(self, i: int) -> tuple[int, ...]:
        statements = self.statements
        names = set(statements[i].defines)
        chain = [i]
        for v in statements[i + 1 :]:
            if not names:
                break
            if v.kind != "other":
                names -= v.binds  # a def, class or import rebinding a name ends its chain
                continue
            if v.mutates & names or (v.binds & names and self.units[v.index].reads & names):
                chain.append(v.index)
                names |= v.binds
            else:
                names -= v.binds
        return tuple(chain)

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
            if self.statements[i].copyable:
                out.add(i)
                todo.extend(self.chain(i))
        return frozenset(out)


# --------------------------------------------------------------------------- signatures


def _imported(unit: Unit) -> frozenset[str]:
    """The absolute modules a unit imports (``a.b`` and, for ``from a.b import c``, ``a.b.c``)."""
    out: set[str] = set()
    for imp in unit.imports:
        if imp.level:
            continue  # An interface is a top-level module: nothing relative to it.
        out.add(imp.module)
        if imp.name is not None and imp.name != "*":
            out.add(f"{imp.module}.{imp.name}")
    return frozenset(out)


def _own_digest(code: int, imports: Iterable[str] | None, helpers: Mapping[str, int]) -> int:
    if not imports or not helpers:
        return code
    h = hashlib.blake2b(code.to_bytes(16, "big"), digest_size=16)
    for mod in sorted(imports):
        parts = mod.split(".")
        for k in range(1, len(parts) + 1):
            d = helpers.get(".".join(parts[:k]))
            if d is not None:
                h.update(b"%s=%d;" % (".".join(parts[:k]).encode(), d))
    return int.from_bytes(h.digest(), "big")


def _signatures(closures: Mapping[int, frozenset[int]], own: Mapping[int, int]) -> dict[int, str]:
    # An order-free sum of the dependencies' digests: moving a statement
    # around does not change what a unit depends on.
    out: dict[int, str] = {}
    for i, closure in closures.items():
        total = sum(own[d] for d in closure if d != i) % (1 << 128)
        out[i] = f"{own[i]:032x}{total:032x}"
    return out


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


def _what_changed(old: Plan, new: Plan, i: int) -> str:
    """Why unit ``i`` has no unchanged counterpart: the first changed unit it covers."""
    old_own = set(old.own.values())
    old_code = set(old.code.values())
    for u in (i, *sorted(new.closures[i] - {i})):
        if new.own[u] in old_own:
            continue
        if new.code[u] in old_code:
            modules = sorted(
                m
                for m, d in new.helpers.items()
                if old.helpers.get(m) != d and any(_covers(imp, m) for imp in new.imports[u])
            )
            what = ", ".join(modules) or "imported"
            return f"helper module {what} changed"
        line = new.units[u].line
        if u == i:
            return f"its statement changed at line {line}"
        return f"it depends on {', '.join(new.names([u]))}, changed at line {line}"
    return "what it depends on was moved or removed"


def _how_the_chain_changed(new: Plan, i: int, old_chain: set[str]) -> str:
    for c in new.chains[i][1:]:
        if new.sigs[c] not in old_chain:
            return f"line {new.units[c].line}, which changes it, is new or edited"
    return "a statement that changed it was removed or moved"


def _covers(imported: str, module: str) -> bool:
    return imported == module or imported.startswith(module + ".")
