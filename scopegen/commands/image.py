"""What goes into the Modal image: pip and apt packages, preloads, the uploaded folder.

``image_spec(analysis, config, out_dir)`` works it out from the interface's
imports, its folder on disk and the configuration, so that ``emit/modal.py``
only renders. Distributions are inferred from top-level imports unless
``python_packages`` is configured; modules that live beside the interface
(``helpers.py``, ``utils/``) are uploaded with its folder, not installed.

The upload of the interface's folder leaves out hidden files, caches, the
build output, what the ``.gitignore`` files of the folder and of its parents
(up to the repository root) ignore, and ``upload_ignore``; ``upload_include``
narrows it to the files it names. The patterns are Modal's (dockerignore
syntax, relative to the folder), worked out here so that the generated file
holds plain data.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from scopegen.analyze import Analysis
from scopegen.config import ScopegenConfig
from scopegen.emit.modal import SERVER_PACKAGES, ImageSpec

__all__ = [
    "gitignore_patterns",
    "image_spec",
    "infer_python_packages",
    "infer_system_packages",
    "upload_patterns",
]

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
        ignore=tuple(upload_patterns(folder, out, config, interface_file=source.name)),
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
    if "torch" in inferred and "numpy" not in inferred:
        # The server moves tensors through numpy (scopegen/server/_tensors.py); torch's
        # wheels do not require it.
        inferred.append("numpy")
    # The server's own dependencies are installed anyway, with their version bounds.
    return [p for p in inferred if _dist_key(p) not in _SCOPEGEN_DISTS]


def _dist_key(requirement: str) -> str:
    """``"Sentence_Transformers>=3"`` -> ``"sentence-transformers"`` (PEP 503 name)."""
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


_SCOPEGEN_DISTS = frozenset(_dist_key(p) for p in SERVER_PACKAGES)


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
    if not rel.parts:  # OUT is the interface's folder: leave out the generated files only
        return ["modal_app.py", "modal_download.py", "scopegen-deploy.json"]
    return [PurePosixPath(*rel.parts).as_posix()]


# --------------------------------------------------------------------------- the upload


def upload_patterns(
    folder: Path, out: Path, config: ScopegenConfig, *, interface_file: str
) -> list[str]:
    """Modal ``ignore`` patterns for the upload of ``folder`` (last match wins)."""
    patterns: list[str] = []
    if config.upload_include is not None:
        # Everything out, then back in what is named.
        patterns += ["**", *(f"!{p}" for p in config.upload_include)]
    patterns += [*_IGNORE, *gitignore_patterns(folder), *_ignore_out(folder, out)]
    patterns += config.upload_ignore
    if _may_match(patterns, interface_file):
        # The interface itself always goes. Only added when needed: any "!"
        # pattern stops Modal from skipping ignored folders whole.
        patterns.append(f"!{interface_file}")
    return list(dict.fromkeys(patterns))


def _may_match(patterns: Sequence[str], name: str) -> bool:
    """Whether a pattern may ignore the top-level file ``name`` (erring towards yes)."""
    for pattern in patterns:
        if pattern.startswith("!"):
            return True
        bare = pattern
        while bare.startswith("**/"):
            bare = bare[3:]
        if fnmatch.fnmatchcase(name, bare) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def gitignore_patterns(folder: Path) -> list[str]:
    """The ``.gitignore`` rules that apply inside ``folder``, as Modal patterns relative to it.

    Read from ``folder`` and each parent up to the repository root (the first
    folder with ``.git``); with no repository, from ``folder`` alone. Nested
    ``.gitignore`` files below ``folder`` are not read. A directory-only rule
    (``data/``) also leaves out files of that name, which dockerignore syntax
    cannot tell apart.
    """
    folder = folder.resolve()
    chain = [folder]
    for parent in folder.parents:
        if (chain[-1] / ".git").exists():
            break
        chain.append(parent)
    else:
        chain = [folder]  # no repository: only the folder's own rules
    patterns: list[str] = []
    for base in reversed(chain):  # outermost first: inner files override
        try:
            text = (base / ".gitignore").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        rel = folder.relative_to(base).parts
        for line in text.splitlines():
            pattern = _gitignore_rule(line, rel)
            if pattern is not None:
                patterns.append(pattern)
    return patterns


def _gitignore_rule(line: str, rel: tuple[str, ...]) -> str | None:
    """One ``.gitignore`` line, found ``rel`` folders above ``folder``, as a pattern for it."""
    if line.endswith(" ") and not line.endswith("\\ "):
        line = line.rstrip(" ")
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate or line.startswith(("\\#", "\\!")):  # "!" negates; "\\#", "\\!" are escapes
        line = line[1:]
    line = line.rstrip("/")  # directory-only: see gitignore_patterns
    if not line:
        return None
    anchored = "/" in line
    parts = line.lstrip("/").split("/")
    if not anchored:
        rebased: list[str] | None = ["**", *parts]
    else:
        rebased = _rebase(parts, rel)
    if rebased is None:
        return None
    return ("!" if negate else "") + "/".join(rebased)


def _rebase(parts: list[str], rel: tuple[str, ...]) -> list[str] | None:
    """An anchored rule's parts, relative to a folder ``rel`` below the rule's base.

    ``None`` when the rule cannot match inside the folder, or would ignore the
    folder itself (an interface in an ignored folder is uploaded anyway).
    """
    for i, folder_part in enumerate(rel):
        if i >= len(parts):
            return None
        if parts[i] == "**":
            return parts[i:]
        if not fnmatch.fnmatchcase(folder_part, parts[i]):
            return None
    rest = parts[len(rel) :]
    return rest or None
