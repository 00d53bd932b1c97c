"""Shared by the Modal tests: write an interface, generate its modal_app.py, import it."""

from __future__ import annotations

import importlib.util
import itertools
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

from scopegen.analyze import analyze_file
from scopegen.commands.image import image_spec
from scopegen.config import load_config
from scopegen.emit.modal import emit_modal_app, emit_modal_download

_counter = itertools.count()


def write_interface(folder: Path, source: str, *, config: str | None = None) -> Path:
    """``folder/interface.py`` (and ``folder/scopegen.toml`` when ``config`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "interface.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    if config is not None:
        (folder / "scopegen.toml").write_text(textwrap.dedent(config), encoding="utf-8")
    return path


def generate(interface: Path, out: Path) -> Path:
    """Generate ``out/modal_app.py`` and ``out/modal_download.py`` as ``scopegen build`` does.

    Returns the path of ``modal_app.py``.
    """
    analysis = analyze_file(interface)
    assert analysis.ok, analysis.errors
    config = load_config(interface)
    image = image_spec(analysis, config, out)
    out.mkdir(parents=True, exist_ok=True)
    app_file = out / "modal_app.py"
    app_file.write_text(emit_modal_app(analysis.interface, image, config), encoding="utf-8")
    download = emit_modal_download(analysis.interface, image, config)
    (out / "modal_download.py").write_text(download, encoding="utf-8")
    return app_file


def import_app(app_file: Path) -> ModuleType:
    """Import a generated modal_app.py under a fresh module name."""
    name = f"generated_modal_app_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, app_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def service_function(cls: Any) -> Any:
    """The modal.Function behind a modal.Cls (modal 1.x keeps it on the Cls)."""
    return cls._get_class_service_function()


def user_class(cls: Any) -> type:
    """The plain Python class that ``@app.cls`` wrapped."""
    return cls._get_user_cls()  # type: ignore[no-any-return]


def load_settings(function: Any) -> dict[str, Any]:
    """Settings modal keeps only in the loader's closure (no public accessor offline).

    Returns ``{}`` when this modal version keeps them elsewhere; callers then
    rely on the source-level assertions alone.
    """
    from modal._utils.async_utils import synchronizer

    raw = synchronizer._translate_in(function)  # type: ignore[no-untyped-call]
    load: Any = getattr(raw, "_load", None)
    code = getattr(load, "__code__", None)
    if code is None or load.__closure__ is None:
        return {}
    cells = dict(zip(code.co_freevars, load.__closure__, strict=True))
    out: dict[str, Any] = {}
    for key in (
        "enable_memory_snapshot",
        "min_containers",
        "max_containers",
        "buffer_containers",
        "scaledown_window",
        "experimental_options",
    ):
        if key in cells:
            out[key] = cells[key].cell_contents
    if "autoscaler_settings" in cells:
        out["autoscaler_settings"] = cells["autoscaler_settings"].cell_contents
    return out


def registered(app: Any) -> tuple[list[str], list[str]]:
    """The function and class tags of an App: what ``modal run`` / ``modal deploy`` create.

    modal's runner creates every object of ``app._local_state`` (``_create_all_objects``);
    the public ``registered_functions`` is deprecated in modal 1.6.
    """
    from modal._utils.async_utils import synchronizer

    state = synchronizer._translate_in(app)._local_state  # type: ignore[no-untyped-call]
    return sorted(state.functions), sorted(state.classes)


def uploaded_files(image: Any) -> list[str]:
    """The container paths of the local files an image uploads (its ``add_local_dir`` mounts).

    Walks the image's lazy mount layers and asks modal's own ``_MountDir`` which
    files it would upload, through the generated ``ignore`` patterns.
    """
    from modal._utils.async_utils import synchronizer
    from modal.mount import _Mount, _MountDir

    raw = synchronizer._translate_in(image)  # type: ignore[no-untyped-call]
    found: list[str] = []
    for dep in raw._deps():
        if isinstance(dep, _Mount):
            for entry in dep._entries:
                if isinstance(entry, _MountDir):
                    found += [str(remote) for _, remote in entry.get_files_to_upload()]
    return sorted(found)
