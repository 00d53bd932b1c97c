"""Emit ``OUT/modal_app.py``: the Modal deployment of an interface's server.

A function from (analysis, configuration, output folder) to text, rendered
from ``templates/modal_app.py.tmpl``. The text is deterministic and holds no
absolute path of this machine: the interface's folder is written relative to
the output folder and resolved against ``Path(__file__).parent`` when Modal
imports the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from scopegen.analyze import Analysis
from scopegen.config import (
    ScopegenConfig,
    infer_python_packages,
    infer_system_packages,
    normalize_gpu,
)
from scopegen.emit._templates import render_template

__all__ = ["DOWNLOAD_TIMEOUT", "SCOPEGEN_PACKAGES", "emit_modal_app", "python_packages"]

# scopegen's own run-time dependencies: pyproject's [project.dependencies] (a test
# keeps them equal, markers aside). The image runs scopegen from source, so pip
# installs them.
SCOPEGEN_PACKAGES: tuple[str, ...] = (
    "libcst>=1.4,<2",
    "pydantic>=2.6,<3",
    "orjson>=3.10,<4",
    "httpx>=0.27,<1",
    "uvicorn>=0.30,<1",
    "httptools>=0.6.3",
    "uvloop>=0.19",  # its platform marker always holds in Modal's Linux CPython images
    "typer>=0.12,<1",
    "rich>=13,<16",
    "tomli>=1.1; python_version < '3.11'",
)

# Seconds the CPU download function may run: large checkpoints take a while,
# and CPU time is cheap; an interrupted download resumes on the next run.
DOWNLOAD_TIMEOUT = 3 * 3600

# Patterns (Modal's dockerignore syntax) never uploaded with the interface's folder.
_IGNORE: tuple[str, ...] = ("**/.*", "**/__pycache__", "**/*.pyc", "**/node_modules", "**/venv")

_LINE_LENGTH = 100


def python_packages(analysis: Analysis, config: ScopegenConfig) -> list[str]:
    """The image's pip list besides scopegen's own: configured, else inferred."""
    if config.python_packages is not None:
        return list(config.python_packages)
    folder = Path(analysis.path).resolve().parent
    inferred = infer_python_packages(analysis.imported_modules, folder)
    # scopegen's own dependencies are installed anyway, with their version bounds.
    return [p for p in inferred if _dist_key(p) not in _SCOPEGEN_DISTS]


def _dist_key(requirement: str) -> str:
    """``"Sentence_Transformers>=3"`` -> ``"sentence-transformers"`` (PEP 503 name)."""
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


_SCOPEGEN_DISTS = frozenset(_dist_key(p) for p in SCOPEGEN_PACKAGES)


def emit_modal_app(analysis: Analysis, config: ScopegenConfig, out_dir: Path) -> str:
    """The text of ``out_dir/modal_app.py`` for ``analysis`` under ``config``."""
    interface = analysis.interface
    source = Path(analysis.path).resolve()
    out = Path(out_dir).resolve()
    local_dir = _relative(source.parent, out)
    packages = python_packages(analysis, config)
    system = list(dict.fromkeys([*config.system_packages, *infer_system_packages(packages)]))
    timeout = config.timeout
    # The server answers 504 a little before Modal would kill the call, so the
    # client gets a protocol error rather than a dropped connection.
    call_timeout = timeout - 10 if timeout > 20 else None

    values = {
        "source_display": _relative(source, out),
        "interface_name": interface.name,
        "interface_name_literal": _lit(interface.name),
        "gpu_words": _gpu_words(config.gpu),
        "app_name": _lit(config.app_name(interface.name)),
        "interface_file": _lit(source.name),
        "model_ids": _tuple(
            config.all_models(interface.model_ids), "MODEL_IDS: tuple[str, ...] = "
        ),
        "python_version": _lit(config.python_version),
        "python_packages": _list(packages, "PYTHON_PACKAGES: list[str] = "),
        "scopegen_packages": _list(SCOPEGEN_PACKAGES, "SCOPEGEN_PACKAGES: list[str] = "),
        "preload_modules": _preload(analysis, config),
        "local_interface_dir": _lit(local_dir),
        "ignore": _list([*_IGNORE, *_ignore_out(source.parent, out)], "IGNORE: list[str] = "),
        "apt_install": _apt_install(system),
        "volume_name": _lit(config.volume_name(interface.name)),
        "secrets": _list(
            [f"modal.Secret.from_name({_lit(s)})" for s in config.secrets],
            "secrets: list[modal.Secret] = ",
            raw=True,
        ),
        "download_timeout": str(DOWNLOAD_TIMEOUT),
        "gpu": _lit(config.gpu),
        "timeout": str(timeout),
        "startup_timeout": str(config.startup_timeout),
        "scaledown_window": str(config.scaledown_window),
        "min_containers": str(config.min_containers),
        "max_containers": str(config.max_containers),
        "memory_snapshot": str(config.memory_snapshot),
        "concurrency": str(config.concurrency),
        "prepare_method": _PREPARE if config.memory_snapshot else "",
        "enter_args": "snap=False" if config.memory_snapshot else "",
        "call_timeout": str(call_timeout),
        "proxy_auth": str(config.proxy_auth),
        "hide_tracebacks": str(config.hide_tracebacks),
    }
    return render_template("modal_app.py.tmpl", **values)


_PREPARE = """
    @modal.enter(snap=True)
    def prepare(self) -> None:
        # Runs once before the memory snapshot is taken: slow imports, no GPU, no model.
        from scopegen.modal_runtime import preimport

        preimport(PRELOAD_MODULES)
"""


def _preload(analysis: Analysis, config: ScopegenConfig) -> str:
    if not config.memory_snapshot:
        return ""
    folder = Path(analysis.path).resolve().parent
    # The third-party imports (those that map to a distribution), by top-level name.
    third_party = [
        m.split(".", 1)[0] for m in analysis.imported_modules if infer_python_packages([m], folder)
    ]
    modules = [*dict.fromkeys(third_party), "scopegen.server"]
    tuple_text = _tuple(modules, "PRELOAD_MODULES: tuple[str, ...] = ")
    return (
        "# Imported before the memory snapshot is taken (see Server.prepare).\n"
        f"PRELOAD_MODULES: tuple[str, ...] = {tuple_text}\n"
    )


def _apt_install(packages: Sequence[str]) -> str:
    if not packages:
        return ""
    return f"    .apt_install({', '.join(_lit(p) for p in packages)})\n"


def _gpu_words(gpu: str) -> str:
    kind, _, count = normalize_gpu(gpu).partition(":")
    return f"{count} {kind} GPUs" if count else f"one {kind} GPU"


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


def _lit(value: str) -> str:
    """A Python string literal in double quotes (JSON's escapes are Python's too)."""
    return json.dumps(value, ensure_ascii=False)


def _list(items: Sequence[str], prefix: str, *, raw: bool = False) -> str:
    return _sequence(items, prefix, "[", "]", raw=raw)


def _tuple(items: Sequence[str], prefix: str) -> str:
    if len(items) == 1:
        return f"({_lit(items[0])},)"
    return _sequence(items, prefix, "(", ")")


def _sequence(
    items: Sequence[str], prefix: str, open_: str, close: str, *, raw: bool = False
) -> str:
    """Inline when the whole statement fits on one line, else one item per line."""
    parts = [item if raw else _lit(item) for item in items]
    inline = open_ + ", ".join(parts) + close
    if len(prefix) + len(inline) <= _LINE_LENGTH:
        return inline
    return open_ + "\n" + "".join(f"    {p},\n" for p in parts) + close
