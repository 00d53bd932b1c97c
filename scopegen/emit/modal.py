"""Emit ``OUT/modal_app.py`` (the GPU server) and ``OUT/modal_download.py`` (the model download).

Pure functions of (interface, image, configuration) to text, rendered from
``templates/modal_app.py.tmpl`` and ``templates/modal_download.py.tmpl``;
``commands/image.py`` works out the image (packages, the uploaded folder)
beforehand. The text is deterministic and holds no absolute path of this
machine: the interface's folder is written relative to the output folder and
resolved against ``Path(__file__).parent`` when Modal imports the file.

The download is a file of its own, with its own ``modal.App``: ``modal run``
creates every object of the app it runs, so running the download from the
server's file would build the GPU image and register the GPU class first.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scopegen.config import BucketMount, ScopegenConfig
from scopegen.emit._templates import render_template
from scopegen.spec import Interface, py_str

__all__ = [
    "DOWNLOAD_CPU",
    "DOWNLOAD_PACKAGES",
    "DOWNLOAD_TIMEOUT",
    "SERVER_PACKAGES",
    "ImageSpec",
    "emit_modal_app",
    "emit_modal_download",
]

# What the server needs in the container, from pyproject's [project.dependencies]
# (a test keeps the bounds equal). Modal drives the ASGI app itself, and the
# container never runs the CLI: no uvicorn, httptools, uvloop, typer, rich or httpx.
SERVER_PACKAGES: tuple[str, ...] = (
    "libcst>=1.4,<2",
    "pydantic>=2.6,<3",
    "orjson>=3.10,<4",
)
# The download function runs scopegen.modal_runtime, which needs only the Hub client.
DOWNLOAD_PACKAGES: tuple[str, ...] = ("huggingface-hub>=0.23",)

# Seconds the CPU download function may run: large checkpoints take a while,
# and CPU time is cheap; an interrupted download resumes on the next run.
DOWNLOAD_TIMEOUT = 3 * 3600
# Cores of the download function: hashing and writing shards in parallel, well
# above Modal's default of 0.125 cores.
DOWNLOAD_CPU = 2.0

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
    # pip requirements besides the server's own, and apt packages.
    python_packages: tuple[str, ...]
    system_packages: tuple[str, ...]
    # Imported before a memory snapshot is taken (empty without ``memory_snapshot``).
    preload_modules: tuple[str, ...]
    # Patterns left out of the upload of the interface's folder (last match wins).
    ignore: tuple[str, ...]


def emit_modal_app(interface: Interface, image: ImageSpec, config: ScopegenConfig) -> str:
    """The text of ``OUT/modal_app.py`` for ``interface``, its ``image`` and ``config``."""
    timeout = config.timeout
    # The server answers 504 a little before Modal would kill the call, so the
    # client gets a protocol error rather than a dropped connection.
    call_timeout = timeout - 10 if timeout > 20 else None
    if config.gpu_snapshot:
        # The GPU memory is snapshotted too: load the interface (and its models) before.
        prepare, enter_args = "", "snap=True"
    elif config.memory_snapshot:
        prepare, enter_args = _PREPARE, "snap=False"
    else:
        prepare, enter_args = "", ""
    values = {
        "source_display": image.source_display,
        "interface_name": interface.name,
        "interface_name_literal": py_str(interface.name),
        "gpu_words": textwrap.fill(f"Each container has {_gpu_words(config.gpus)}.", 92),
        "app_name": py_str(config.app_name(interface.name)),
        "interface_file": py_str(image.interface_file),
        "python_version": py_str(config.python_version),
        "python_packages": _list(image.python_packages, "PYTHON_PACKAGES: list[str] = "),
        "server_packages": _list(SERVER_PACKAGES, "SERVER_PACKAGES: list[str] = "),
        "preload_modules": _preload(image, config),
        "local_interface_dir": py_str(image.local_dir),
        "ignore": _list(image.ignore, "IGNORE: list[str] = "),
        "concurrency": str(config.concurrency),
        "max_inputs": str(config.admitted_inputs),
        "env": _env(config.env),
        "apt_install": _apt_install(image.system_packages),
        "volume_name": py_str(config.volume_name(interface.name)),
        "secrets": _secrets(config.secrets),
        "cls_options": "".join(f"    {k}={v},\n" for k, v in _cls_options(config)),
        "prepare_method": prepare,
        "enter_args": enter_args,
        "call_timeout": str(call_timeout),
        "proxy_auth": str(config.proxy_auth),
        "hide_tracebacks": str(config.hide_tracebacks),
    }
    return render_template("modal_app.py.tmpl", **values)


def emit_modal_download(interface: Interface, image: ImageSpec, config: ScopegenConfig) -> str:
    """The text of ``OUT/modal_download.py``: the CPU download function in an app of its own."""
    models = config.all_models(interface.model_ids)
    revisions = {m: config.revisions[m] for m in models if m in config.revisions}
    values = {
        "source_display": image.source_display,
        "interface_name": interface.name,
        "app_name": py_str(config.download_app_name(interface.name)),
        "model_ids": _tuple(models, "MODEL_IDS: tuple[str, ...] = "),
        "revisions": _dict(revisions, "REVISIONS: dict[str, str] = "),
        "model_files": (
            "None"
            if config.model_files is None
            else _list(config.model_files, "MODEL_FILES: list[str] | None = ")
        ),
        "python_version": py_str(config.python_version),
        "download_packages": ", ".join(py_str(p) for p in DOWNLOAD_PACKAGES),
        "volume_name": py_str(config.volume_name(interface.name)),
        "secrets": _secrets(config.download_secrets),
        "download_cpu": repr(DOWNLOAD_CPU),
        "download_timeout": str(DOWNLOAD_TIMEOUT),
    }
    return render_template("modal_download.py.tmpl", **values)


def _cls_options(config: ScopegenConfig) -> list[tuple[str, str]]:
    """``@app.cls`` keyword arguments, in a fixed order; unset optional ones are left out."""
    gpus = config.gpus
    options: list[tuple[str, str]] = [
        ("image", "image"),
        ("gpu", py_str(gpus[0]) if len(gpus) == 1 else _list(gpus, "    gpu=", indent="    ")),
        ("volumes", _volumes(config.bucket_mounts)),
        ("secrets", "secrets"),
    ]
    if config.env:
        options.append(("env", "ENV"))
    if config.cpu is not None:
        options.append(("cpu", _number_or_pair(config.cpu)))
    if config.memory is not None:
        options.append(("memory", _number_or_pair(config.memory)))
    if config.ephemeral_disk is not None:
        options.append(("ephemeral_disk", str(config.ephemeral_disk)))
    if config.region is not None:
        region = config.region
        region_text = (
            py_str(region)
            if isinstance(region, str)
            else _list(region, "    region=", indent="    ")
        )
        options.append(("region", region_text))
    if config.cloud is not None:
        options.append(("cloud", py_str(config.cloud)))
    options += [
        ("timeout", str(config.timeout)),
        ("startup_timeout", str(config.startup_timeout)),
        ("scaledown_window", str(config.scaledown_window)),
        ("min_containers", str(config.min_containers)),
        ("max_containers", str(config.container_limit)),
    ]
    if config.buffer_containers is not None:
        options.append(("buffer_containers", str(config.buffer_containers)))
    options.append(("enable_memory_snapshot", str(config.memory_snapshot)))
    if config.gpu_snapshot:
        options.append(("experimental_options", '{"enable_gpu_snapshot": True}'))
    return options


def _number_or_pair(value: float | int | list[float] | list[int]) -> str:
    if isinstance(value, list):
        return f"({value[0]!r}, {value[1]!r})"
    return repr(value)


def _env(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    prefix = "ENV: dict[str, str | None] = "
    comment = "# Plain environment variables of the server's containers."
    return f"{comment}\n{prefix}{_dict(env, prefix)}\n"


def _volumes(mounts: Sequence[BucketMount]) -> str:
    """``volumes=``: the models volume, then each cloud bucket mount."""
    if not mounts:
        return "{MODELS_DIR: volume}"
    entries = ["        MODELS_DIR: volume,\n"]
    for m in mounts:
        args = [f"bucket_name={py_str(m.bucket_name)}"]
        if m.bucket_endpoint_url is not None:
            args.append(f"bucket_endpoint_url={py_str(m.bucket_endpoint_url)}")
        if m.key_prefix is not None:
            args.append(f"key_prefix={py_str(m.key_prefix)}")
        if m.secret is not None:
            args.append(f"secret=modal.Secret.from_name({py_str(m.secret)})")
        args.append(f"read_only={m.read_only}")
        if m.requester_pays:
            args.append("requester_pays=True")
        inner = "".join(f"            {a},\n" for a in args)
        mount = f"modal.CloudBucketMount(\n{inner}        )"
        entries.append(f"        {py_str(m.mount_path)}: {mount},\n")
    return "{\n" + "".join(entries) + "    }"


def _secrets(names: Sequence[str]) -> str:
    return _list(
        [f"modal.Secret.from_name({py_str(s)})" for s in names],
        "secrets: list[modal.Secret] = ",
        raw=True,
    )


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


def _gpu_words(gpus: Sequence[str]) -> str:
    """``["H100:2", "A100-80GB:2"]`` -> ``"2 H100 GPUs (else 2 A100-80GB GPUs)"``."""

    def words(gpu: str) -> str:
        kind, _, count = gpu.partition(":")
        return f"{count} {kind} GPUs" if count else f"one {kind} GPU"

    first, *rest = gpus
    return words(first) + (f" (else {', else '.join(map(words, rest))})" if rest else "")


def _list(items: Sequence[str], prefix: str, *, raw: bool = False, indent: str = "") -> str:
    return _sequence(items, prefix, "[", "]", raw=raw, indent=indent)


def _dict(items: Mapping[str, str], prefix: str) -> str:
    """A dict literal of strings: inline when it fits, else one item per line."""
    parts = [f"{py_str(k)}: {py_str(v)}" for k, v in items.items()]
    inline = "{" + ", ".join(parts) + "}"
    if len(prefix) + len(inline) <= _LINE_LENGTH:
        return inline
    return "{\n" + "".join(f"    {p},\n" for p in parts) + "}"


def _tuple(items: Sequence[str], prefix: str) -> str:
    if len(items) == 1:
        return f"({py_str(items[0])},)"
    return _sequence(items, prefix, "(", ")")


def _sequence(
    items: Sequence[str],
    prefix: str,
    open_: str,
    close: str,
    *,
    raw: bool = False,
    indent: str = "",
) -> str:
    """Inline when the whole statement fits on one line, else one item per line.

    ``indent`` is the indentation of the line the sequence starts on.
    """
    parts = [item if raw else py_str(item) for item in items]
    inline = open_ + ", ".join(parts) + close
    if len(prefix) + len(inline) + 1 <= _LINE_LENGTH:  # +1: the "," after an argument
        return inline
    return open_ + "\n" + "".join(f"{indent}    {p},\n" for p in parts) + indent + close
