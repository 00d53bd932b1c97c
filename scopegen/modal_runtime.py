"""What runs inside the containers of a generated ``modal_app.py``.

The generated file calls these functions and nothing else of scopegen, and the
tests call the very same ones, so what is tested locally is what Modal runs:

- :func:`download_models` (the CPU download function) fills the models volume:
  one ``<org>--<name>`` folder per model, with :data:`~scopegen.runtime.MARKER_NAME`
  written last, so a folder without it is an interrupted download.
- :func:`create_asgi_app` (the GPU class's ``@modal.enter``) points
  ``get_model_path`` at the volume, imports the interface through the server's
  factory and returns the ASGI app that ``@modal.asgi_app`` serves.

Import-light on purpose (no modal, no server, no torch at import time): the
download container imports this module too.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scopegen.runtime import (
    MARKER_NAME,
    ModelNotFoundError,
    ModelPaths,
    model_dir_name,
)

__all__ = [
    "MODELS_DIR",
    "VolumeModelPaths",
    "create_asgi_app",
    "download_models",
    "preimport",
    "volume_model_paths",
]

MODELS_DIR = "/models"

_log = logging.getLogger("scopegen.modal")

# How the download function fetches one model into a folder; the default is
# huggingface_hub.snapshot_download (imported only when used).
Fetch = Callable[[str, Path], None]


class VolumeModelPaths(ModelPaths):
    """``get_model_path`` inside Modal: the volume only, complete downloads only."""

    def resolve(self, model_id: str) -> str:
        try:
            return super().resolve(model_id)
        except ModelNotFoundError:
            pass
        folder = Path(self.models_dir or MODELS_DIR) / model_dir_name(model_id)
        state = (
            f"its download is incomplete (no {MARKER_NAME} marker)"
            if folder.is_dir()
            else "it is not there"
        )
        raise ModelNotFoundError(
            f"model {model_id!r} is not in the models volume: looked for {folder}, and {state}. "
            "Run `modal run modal_app.py::download_models` (`scopegen deploy` does it before "
            "deploying); if the id is computed at run time, list it under `models` in "
            "[tool.scopegen] so it is downloaded ahead of time."
        ) from None


def volume_model_paths(models_dir: str = MODELS_DIR) -> VolumeModelPaths:
    """The model paths of a Modal container (no Hugging Face cache fallback)."""
    return VolumeModelPaths(models_dir=models_dir, require_marker=True, use_hf_cache=False)


# --------------------------------------------------------------------------- download


def _snapshot_download(model_id: str, folder: Path) -> None:
    from huggingface_hub import snapshot_download

    # HF_TOKEN (from a Modal secret) is picked up by huggingface_hub itself.
    snapshot_download(model_id, local_dir=folder)


def download_models(
    model_ids: Iterable[str],
    models_dir: str | Path = MODELS_DIR,
    *,
    commit: Callable[[], Any] | None = None,
    fetch: Fetch | None = None,
) -> list[str]:
    """Download each model into ``models_dir/<org>--<name>``; return the ids fetched now.

    A folder holding the marker is complete and skipped; any other folder is
    (re)fetched, which resumes an interrupted download. The marker is written
    only after the fetch returned, and ``commit`` (the volume's) runs after each
    model so that finished work survives a later failure.
    """
    fetch = fetch or _snapshot_download
    root = Path(models_dir)
    fetched: list[str] = []
    for model_id in dict.fromkeys(model_ids):
        folder = root / model_dir_name(model_id)
        marker = folder / MARKER_NAME
        if marker.is_file():
            print(f"scopegen: {model_id}: already complete in {folder}", flush=True)
            continue
        print(f"scopegen: {model_id}: downloading into {folder}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        fetch(model_id, folder)
        marker.write_text(f"{model_id}\n", encoding="utf-8")
        if commit is not None:
            commit()
        fetched.append(model_id)
        print(f"scopegen: {model_id}: complete", flush=True)
    return fetched


# --------------------------------------------------------------------------- serving


def preimport(modules: Iterable[str]) -> None:
    """Import the interface's heavy dependencies before a memory snapshot is taken.

    A module that fails to import is left for the interface import to report
    with its real traceback.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported again, properly, when the interface loads
            _log.warning("scopegen: pre-importing %s failed: %s", name, exc)


def create_asgi_app(
    interface_path: str | Path,
    *,
    name: str | None = None,
    models_dir: str = MODELS_DIR,
    max_concurrency: int = 1,
    call_timeout: float | None = None,
    hide_tracebacks: bool = False,
) -> Any:
    """Import the interface through the server's factory; return the server's ASGI app.

    ``SCOPEGEN_TOKEN`` (from a Modal secret) turns on bearer-token checks,
    exactly as for ``scopegen serve``.
    """
    from scopegen.server import ServerSettings, create_app

    # The loader installs these paths (configure_model_paths) before the file runs.
    settings = ServerSettings(
        call_timeout=call_timeout,
        max_concurrency=max_concurrency,
        hide_tracebacks=hide_tracebacks,
        paths=volume_model_paths(models_dir),
        name=name,
    )
    return create_app(Path(interface_path), settings)
