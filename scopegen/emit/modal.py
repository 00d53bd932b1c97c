"""Emit ``OUT/modal_app.py``: the Modal deployment of an interface's server.

A pure function of (interface, image, configuration) to text, rendered from
``templates/modal_app.py.tmpl``; ``commands/image.py`` works out the image
(packages, the uploaded folder) beforehand. The text is deterministic and
holds no absolute path of this machine: the interface's folder is written
relative to the output folder and resolved against ``Path(__file__).parent``
when Modal imports the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scopegen.config import ScopegenConfig, normalize_gpu
from scopegen.emit._templates import render_template
from scopegen.spec import Interface, py_str

__all__ = ["DOWNLOAD_TIMEOUT", "SCOPEGEN_PACKAGES", "ImageSpec", "emit_modal_app"]

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

_LINE_LENGTH = 100


@dataclass(frozen=True)
class ImageSpec:
    """The Modal image of one build (``commands/image.py`` works it out).

    Every path is relative to the build folder.
    """

    # The interface file's name, and its folder relative to the build folder (POSIX).
    interface_file: str
    local_dir: str
    # The interface file relative to the build folder, for the generated file's header.
    source_display: str
    # pip requirements besides scopegen's own, and apt packages.
    python_packages: tuple[str, ...]
    system_packages: tuple[str, ...]
    # Imported before a memory snapshot is taken (empty without ``memory_snapshot``).
    preload_modules: tuple[str, ...]
    # Patterns left out of the upload of the interface's folder.
    ignore: tuple[str, ...]


def emit_modal_app(interface: Interface, image: ImageSpec, config: ScopegenConfig) -> str:
    """The text of ``OUT/modal_app.py`` for ``interface``, its ``image`` and ``config``."""
    timeout = config.timeout
    # The server answers 504 a little before Modal would kill the call, so the
    # client gets a protocol error rather than a dropped connection.
    call_timeout = timeout - 10 if timeout > 20 else None

    values = {
        "source_display": image.source_display,
        "interface_name": interface.name,
        "interface_name_literal": py_str(interface.name),
        "gpu_words": _gpu_words(config.gpu),
        "app_name": py_str(config.app_name(interface.name)),
        "interface_file": py_str(image.interface_file),
        "model_ids": _tuple(
            config.all_models(interface.model_ids), "MODEL_IDS: tuple[str, ...] = "
        ),
        "python_version": py_str(config.python_version),
        "python_packages": _list(image.python_packages, "PYTHON_PACKAGES: list[str] = "),
        "scopegen_packages": _list(SCOPEGEN_PACKAGES, "SCOPEGEN_PACKAGES: list[str] = "),
        "preload_modules": _preload(image, config),
        "local_interface_dir": py_str(image.local_dir),
        "ignore": _list(image.ignore, "IGNORE: list[str] = "),
        "apt_install": _apt_install(image.system_packages),
        "volume_name": py_str(config.volume_name(interface.name)),
        "secrets": _list(
            [f"modal.Secret.from_name({py_str(s)})" for s in config.secrets],
            "secrets: list[modal.Secret] = ",
            raw=True,
        ),
        "download_timeout": str(DOWNLOAD_TIMEOUT),
        "gpu": py_str(config.gpu),
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


def _preload(image: ImageSpec, config: ScopegenConfig) -> str:
    if not config.memory_snapshot:
        return ""
    tuple_text = _tuple(image.preload_modules, "PRELOAD_MODULES: tuple[str, ...] = ")
    return (
        "# Imported before the memory snapshot is taken (see Server.prepare).\n"
        f"PRELOAD_MODULES: tuple[str, ...] = {tuple_text}\n"
    )


def _apt_install(packages: Sequence[str]) -> str:
    if not packages:
        return ""
    return f"    .apt_install({', '.join(py_str(p) for p in packages)})\n"


def _gpu_words(gpu: str) -> str:
    kind, _, count = normalize_gpu(gpu).partition(":")
    return f"{count} {kind} GPUs" if count else f"one {kind} GPU"


def _list(items: Sequence[str], prefix: str, *, raw: bool = False) -> str:
    return _sequence(items, prefix, "[", "]", raw=raw)


def _tuple(items: Sequence[str], prefix: str) -> str:
    if len(items) == 1:
        return f"({py_str(items[0])},)"
    return _sequence(items, prefix, "(", ")")


def _sequence(
    items: Sequence[str], prefix: str, open_: str, close: str, *, raw: bool = False
) -> str:
    """Inline when the whole statement fits on one line, else one item per line."""
    parts = [item if raw else py_str(item) for item in items]
    inline = open_ + ", ".join(parts) + close
    if len(prefix) + len(inline) <= _LINE_LENGTH:
        return inline
    return open_ + "\n" + "".join(f"    {p},\n" for p in parts) + close
