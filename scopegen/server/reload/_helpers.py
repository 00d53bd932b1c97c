"""The local helper modules an interface imports, and digests of their content.

An edit of ``helpers.py`` next to the interface must reach the server too:
the reloader watches every local module the interface imported while it ran,
drops the edited ones (and those importing them) from ``sys.modules`` so the
next run imports them afresh, and signs the statements importing them with a
digest of their content, so that a model loaded through an edited helper
loads again. Which helper imports which comes from the analyzer
(``scopegen.analyze.module_imports``), once per version of each file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from scopegen import runtime
from scopegen.analyze import Import, module_imports

__all__ = ["HelperModules"]


class HelperModules:
    """The local modules imported by the interface at ``path``, by module name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.modules: dict[str, Path] = {}
        # File -> (digest of its bytes, the imports in it): parsed once per version.
        self._imports: dict[Path, tuple[bytes, tuple[Import, ...]]] = {}

    @property
    def files(self) -> list[Path]:
        return sorted(set(self.modules.values()))

    def track(self, before: set[str]) -> None:
        """Remember the local modules imported since ``sys.modules`` held ``before``."""
        for mod_name in set(sys.modules) - before:
            p = _source_file(sys.modules.get(mod_name))
            if p is None or p == self.path or not _is_local(p):
                continue
            top = mod_name.partition(".")[0]
            if top != mod_name:
                # A submodule of an installed package (torch.ops claims "_ops.py").
                parent = _source_file(sys.modules.get(top))
                if parent is None or not _is_local(parent):
                    continue
            self.modules[mod_name] = p

    def digests(self) -> dict[str, int]:
        """Module name -> digest of its source and of the local modules it imports."""
        own: dict[str, bytes] = {}
        imports: dict[str, set[str]] = {}
        for mod_name, p in self.modules.items():
            try:
                data = p.read_bytes()
            except OSError:
                data = b""  # Deleted: a change like any other.
            own[mod_name] = hashlib.blake2b(data, digest_size=16).digest()
            imports[mod_name] = self._local_imports(mod_name, p, data, own[mod_name])
        out: dict[str, int] = {}
        for mod_name in own:
            seen = {mod_name}
            todo = [mod_name]
            while todo:
                for dep in imports[todo.pop()]:
                    if dep not in seen:
                        seen.add(dep)
                        todo.append(dep)
            h = hashlib.blake2b(digest_size=16)
            for dep in sorted(seen):
                h.update(dep.encode() + b"=" + own[dep])
            out[mod_name] = int.from_bytes(h.digest(), "big")
        return out

    def forget_changed(self, old: Mapping[str, int], new: Mapping[str, int]) -> None:
        """Drop edited helpers (and those importing them) so the next import reads them."""
        changed = [m for m, d in new.items() if old.get(m) != d]
        for mod_name in changed:
            sys.modules.pop(mod_name, None)
            p = self.modules.get(mod_name)
            if p is not None:
                # A same-second, same-size edit would pass the .pyc check.
                with contextlib.suppress(OSError, ValueError, NotImplementedError):
                    os.remove(importlib.util.cache_from_source(str(p)))
        if changed:
            importlib.invalidate_caches()

    def _local_imports(self, mod_name: str, path: Path, data: bytes, digest: bytes) -> set[str]:
        """The tracked helper modules that ``path``'s source imports."""
        cached = self._imports.get(path)
        if cached is None or cached[0] != digest:
            try:
                found = module_imports(importlib.util.decode_source(data)) or ()
            except (SyntaxError, UnicodeDecodeError, LookupError):
                found = ()  # An undecodable file imports nothing we can tell.
            cached = (digest, found)
            self._imports[path] = cached
        package = mod_name if path.name == "__init__.py" else mod_name.rpartition(".")[0]
        out: set[str] = set()
        for imp in cached[1]:
            base = imp.module
            if imp.level:
                try:
                    base = importlib.util.resolve_name("." * imp.level + base, package)
                except (ImportError, ValueError):
                    continue
            names = [base] if imp.name is None else [base, f"{base}.{imp.name}"]
            for name in names:
                parts = name.split(".")
                for k in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:k])
                    if prefix in self.modules and prefix != mod_name:
                        out.add(prefix)
        return out


def _source_file(module: ModuleType | None) -> Path | None:
    """The existing ``.py`` file a module was loaded from, if any."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py") or not os.path.isabs(file):
        return None
    p = Path(file).resolve()
    return p if p.is_file() else None


_SYSTEM_PREFIXES = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
)


def _is_local(p: Path) -> bool:
    """User code: not the standard library, not an installed package, not scopegen."""
    text = str(p)
    if text.startswith(_SYSTEM_PREFIXES):
        return False
    if "site-packages" in p.parts or "dist-packages" in p.parts:
        return False
    return not text.startswith(str(Path(runtime.__file__).resolve().parent) + os.sep)
