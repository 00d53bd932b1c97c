"""What goes into the Modal image: pip and apt packages, preloads, the uploaded folder.

``image_spec(analysis, config, out_dir)`` works it out from the interface's
imports, its folder on disk and the configuration, so that ``emit/modal.py``
only renders. Distributions are inferred from top-level imports unless
``python_packages`` is configured; modules that live beside the interface
(``helpers.py``, ``utils/``) are uploaded with its folder, not installed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from scopegen.analyze import Analysis
from scopegen.config import ScopegenConfig
from scopegen.emit.modal import SCOPEGEN_PACKAGES, ImageSpec

__all__ = ["image_spec", "infer_python_packages", "infer_system_packages"]

# Import name -> distribution, where they differ (or where the name is ambiguous).
IMPORT_TO_DIST: dict[str, str] = {
    "PIL": "pillow",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "sentence_transformers": "sentence-transformers",
    "transformer_lens": "transformer-lens",
    "huggingface_hub": "huggingface-hub",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "attr": "attrs",
    "Crypto": "pycryptodome",
    "jwt": "pyjwt",
    "fitz": "pymupdf",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "google.protobuf": "protobuf",
    "llama_cpp": "llama-cpp-python",
    "faiss": "faiss-cpu",
    "torchvision": "torchvision",
    "lightning": "lightning",
    "pytorch_lightning": "pytorch-lightning",
}

# Packages some imports need at run time without importing them in the file:
# transformers needs a backend to load weights, and accelerate for device_map="auto".
COMPANIONS: dict[str, tuple[str, ...]] = {
    "transformers": ("torch", "accelerate"),
}

# apt packages an import needs on debian_slim (opencv-python links libGL).
SYSTEM_COMPANIONS: dict[str, tuple[str, ...]] = {
    "opencv-python": ("libgl1", "libglib2.0-0"),
}

# Never installed from the interface's imports: scopegen ships its own source,
# and Modal's client is already in every container.
_SKIP = frozenset({"scopegen", "modal", "__future__"})

# Patterns (Modal's dockerignore syntax) never uploaded with the interface's folder.
_IGNORE: tuple[str, ...] = ("**/.*", "**/__pycache__", "**/*.pyc", "**/node_modules", "**/venv")


def image_spec(analysis: Analysis, config: ScopegenConfig, out_dir: Path) -> ImageSpec:
    """The image for ``analysis`` under ``config``, built into ``out_dir``."""
    source = Path(analysis.path).resolve()
    folder = source.parent
    out = Path(out_dir).resolve()
    packages = _python_packages(analysis.imported_modules, folder, config)
    system = [*config.system_packages, *infer_system_packages(packages)]
    preload: tuple[str, ...] = ()
    if config.memory_snapshot:
        # The third-party imports (those that map to a distribution), by top-level name.
        third_party = [
            m.split(".", 1)[0]
            for m in analysis.imported_modules
            if infer_python_packages([m], folder)
        ]
        preload = (*dict.fromkeys(third_party), "scopegen.server")
    return ImageSpec(
        interface_file=source.name,
        local_dir=_relative(folder, out),
        source_display=_relative(source, out),
        python_packages=tuple(packages),
        system_packages=tuple(dict.fromkeys(system)),
        preload_modules=preload,
        ignore=(*_IGNORE, *_ignore_out(folder, out)),
    )


def infer_python_packages(
    imported_modules: Iterable[str], interface_dir: str | Path | None = None
) -> list[str]:
    """Distributions for the interface's top-level imports, in first-import order.

    Standard-library modules, scopegen itself, relative imports and modules
    that live beside the interface (``helpers.py``, ``utils/``) are skipped.
    """
    here = Path(interface_dir) if interface_dir is not None else None
    found: dict[str, None] = {}
    for module in imported_modules:
        if not module or module.startswith("."):
            continue
        top = module.split(".", 1)[0]
        if top in _SKIP or top in sys.stdlib_module_names:
            continue
        if here is not None and ((here / f"{top}.py").is_file() or (here / top).is_dir()):
            continue
        dist = IMPORT_TO_DIST.get(module) or IMPORT_TO_DIST.get(top) or top.replace("_", "-")
        if top == "google" and module not in IMPORT_TO_DIST:
            continue  # a namespace shared by many distributions: cannot guess which
        found[dist] = None
        for extra in COMPANIONS.get(dist, ()):
            found.setdefault(extra, None)
    return list(found)


def infer_system_packages(python_packages: Iterable[str]) -> list[str]:
    """apt packages that the given distributions need on debian_slim."""
    found: dict[str, None] = {}
    for dist in python_packages:
        for apt in SYSTEM_COMPANIONS.get(dist, ()):
            found[apt] = None
    return list(found)


def _python_packages(
    imported_modules: Iterable[str], folder: Path, config: ScopegenConfig
) -> list[str]:
    """The image's pip list besides scopegen's own: configured, else inferred."""
    if config.python_packages is not None:
        return list(config.python_packages)
    inferred = infer_python_packages(imported_modules, folder)
    # scopegen's own dependencies are installed anyway, with their version bounds.
    return [p for p in inferred if _dist_key(p) not in _SCOPEGEN_DISTS]


def _dist_key(requirement: str) -> str:
    """``"Sentence_Transformers>=3"`` -> ``"sentence-transformers"`` (PEP 503 name)."""
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


_SCOPEGEN_DISTS = frozenset(_dist_key(p) for p in SCOPEGEN_PACKAGES)


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start``, with ``/`` on every platform."""
    rel = os.path.relpath(path, start)
    return PurePosixPath(*Path(rel).parts).as_posix() if rel != "." else "."


def _ignore_out(interface_dir: Path, out: Path) -> list[str]:
    """Keep the build output out of the upload when it lies inside the interface's folder."""
    try:
        rel = out.relative_to(interface_dir)
    except ValueError:
        return []
    if not rel.parts:  # OUT is the interface's folder: leave out the generated file only
        return ["modal_app.py"]
    return [PurePosixPath(*rel.parts).as_posix()]
