"""What an interface file sees at run time: ``expose`` and ``get_model_path``.

Both are injected as globals by the loader, and importable as
``from scopegen import expose, get_model_path`` for files (and type checkers)
that prefer explicit imports. This module stays import-light: it is loaded on
the lint path and inside the Modal container before the interface runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "MARKER_NAME",
    "ModelNotFoundError",
    "ModelPaths",
    "collect_exposed",
    "expose",
    "get_model_path",
    "model_dir_name",
]

F = TypeVar("F", bound=Callable[..., Any])

# Written last by the Modal download function; its presence means "complete".
MARKER_NAME = ".scopegen-complete"

# Functions registered by ``expose`` while an interface module executes; the
# loader swaps in a fresh dict per load (``collect_exposed``) so two
# interfaces never mix.
_registry: dict[str, Callable[..., Any]] = {}
_registry_lock = threading.Lock()


def expose(fn: F) -> F:
    """Mark a module-level function as callable over RPC. Returns it unchanged."""
    _registry[fn.__name__] = fn
    return fn


@contextmanager
def collect_exposed() -> Iterator[dict[str, Callable[..., Any]]]:
    """Collect what ``expose`` registers inside the block into a fresh dict.

    The registry is process-wide, so blocks run one at a time; the previous
    registry is back when the block ends, however it ends.
    """
    global _registry
    registry: dict[str, Callable[..., Any]] = {}
    with _registry_lock:
        saved, _registry = _registry, registry
        try:
            yield registry
        finally:
            _registry = saved


class ModelNotFoundError(LookupError):
    """``get_model_path`` found no local copy of a model."""


def model_dir_name(model_id: str) -> str:
    """``google/gemma-2-9b`` -> ``google--gemma-2-9b`` (the models-dir layout)."""
    if not model_id or model_id.startswith("/") or ".." in model_id.split("/"):
        raise ValueError(f"not a model id: {model_id!r} (expected 'org/name')")
    return model_id.replace("/", "--")


@dataclass
class ModelPaths:
    """Where ``get_model_path`` looks, in order (README: "Writing an interface file")."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    models_dir: str | None = None
    # Inside Modal the volume is authoritative: a missing marker is an error.
    require_marker: bool = False
    use_hf_cache: bool = True

    def resolve(self, model_id: str) -> str:
        looked: list[str] = []
        if model_id in self.overrides:
            path = Path(self.overrides[model_id]).expanduser()
            if path.is_dir():
                return str(path)
            looked.append(f"--model {model_id}={path} (not a directory)")
        models_dir = self.models_dir or os.environ.get("SCOPEGEN_MODELS_DIR")
        if models_dir:
            path = Path(models_dir).expanduser() / model_dir_name(model_id)
            if path.is_dir() and (not self.require_marker or (path / MARKER_NAME).exists()):
                return str(path)
            if path.is_dir():
                looked.append(f"{path} (download incomplete: no {MARKER_NAME} marker)")
            else:
                looked.append(str(path))
        else:
            looked.append("a models dir (neither --models-dir nor $SCOPEGEN_MODELS_DIR is set)")
        if self.use_hf_cache:
            found = _hf_cache_snapshot(model_id)
            if found:
                return found
            looked.append(f"Hugging Face cache {_hf_hub_cache()}")
        raise ModelNotFoundError(
            f"model {model_id!r} not found locally; looked in: "
            + "; ".join(looked)
            + f". Pass --model {model_id}=PATH, or --models-dir DIR with the files in"
            f" DIR/{model_dir_name(model_id)}/ (or set SCOPEGEN_MODELS_DIR=DIR), or download"
            " it into the Hugging Face cache."
        )


_paths = ModelPaths()


def model_paths() -> ModelPaths:
    """Where ``get_model_path`` looks now."""
    return _paths


def configure_model_paths(paths: ModelPaths) -> ModelPaths:
    """Make ``get_model_path`` look in ``paths`` (process-wide); return the previous ones."""
    global _paths
    previous, _paths = _paths, paths
    return previous


def get_model_path(model_id: str) -> str:
    """Return a local directory holding the files of ``model_id`` (``org/name``)."""
    return _paths.resolve(model_id)


def _hf_hub_cache() -> Path:
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    return Path(hf_home) / "hub"


def _hf_cache_snapshot(model_id: str) -> str | None:
    # The cache layout is models--org--name/{refs/main, snapshots/<sha>/}.
    repo = _hf_hub_cache() / f"models--{model_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    snapshots = repo / "snapshots"
    if ref.is_file():
        snap = snapshots / ref.read_text().strip()
        if snap.is_dir():
            return str(snap)
    if snapshots.is_dir():
        candidates = sorted(p for p in snapshots.iterdir() if p.is_dir())
        if candidates:
            return str(candidates[-1])
    return None
