"""Deployment configuration: ``[tool.scopegen]`` or ``scopegen.toml``.

Where it is read from, for an interface file ``dir/interface.py``:

1. ``dir/scopegen.toml`` (keys at the top level, or under ``[tool.scopegen]``);
2. else the nearest ``pyproject.toml`` from ``dir`` upwards: its
   ``[tool.scopegen]`` table (the search stops at the first ``pyproject.toml``,
   which marks the project root, whether or not it has the table);
3. else the defaults.

Every value is checked by :class:`ScopegenConfig`; a bad one raises
:class:`ConfigError`, whose message names the file, the key, the value and
what is allowed. Unknown keys are errors too, so a typo never passes silently.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "CLOUDS",
    "CONTROL_INPUTS",
    "DEFAULT_MAX_CONTAINERS",
    "GPU_TYPES",
    "PYTHON_VERSIONS",
    "BucketMount",
    "ConfigError",
    "ScopegenConfig",
    "find_config_file",
    "load_config",
    "parse_config",
]

# Modal's GPU types (https://modal.com/docs/guide/gpu); ``!`` pins the exact
# H100 SKU, ``+`` allows the B200's successor. Matched case-insensitively.
GPU_TYPES: tuple[str, ...] = (
    "T4",
    "L4",
    "A10",
    "A10G",
    "L40S",
    "A100",
    "A100-40GB",
    "A100-80GB",
    "RTX-PRO-6000",
    "H100",
    "H100!",
    "H200",
    "B200",
    "B200+",
)
# GPUs per container: at most 8, except A10 machines, which have 4 (Modal's GPU guide).
MAX_GPU_COUNT = 8
GPU_MAX_COUNT: dict[str, int] = {"A10": 4, "A10G": 4}

# Python series of the image. Not 3.10: modal 1.7 and later refuse to run or
# deploy images with it, and the 2026.10 image builder offers 3.11 and later.
PYTHON_VERSIONS: tuple[str, ...] = ("3.11", "3.12", "3.13", "3.14")
_PYTHON_310 = (
    "Python 3.10 is end-of-life on Modal: modal 1.7 and later refuse to run or deploy "
    "images with it (and the 2026.10 image builder offers 3.11 and later); use 3.11 or later"
)

# Modal's cloud providers (``@app.cls(cloud=...)``).
CLOUDS: tuple[str, ...] = ("aws", "gcp", "oci", "auto")

# Containers at most when ``max_containers`` is not set (or ``min_containers``
# if higher): a burst of calls must not become an unbounded burst of GPU starts.
DEFAULT_MAX_CONTAINERS = 4
# Requests one container admits beyond ``concurrency`` when ``max_inputs`` is
# not set: room for ``/healthz`` and the manifest while every worker is busy.
CONTROL_INPUTS = 4

# Modal object names: letters, digits, ``-``, ``_``, ``.``; under 64 characters.
_MODAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The app name also names the volume ``<name>-models``, which must fit too.
MAX_NAME_LENGTH = 63 - len("-models")
_MODEL_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
_APT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:=~_-]*$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Keys that hold credentials: they belong in a Modal secret, not in plain text.
_SECRET_ENV = frozenset({"SCOPEGEN_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
# Where the container keeps what scopegen mounts itself.
_RESERVED_MOUNTS = ("/models", "/root/interface")
# Modal's largest ephemeral disk: 3 TiB, in MiB.
MAX_EPHEMERAL_DISK = 3 * 1024 * 1024


class ConfigError(ValueError):
    """The configuration cannot be read or has a bad value; the message says which."""


# --------------------------------------------------------------------------- the model


def _check_modal_name(value: str, what: str) -> str:
    if not _MODAL_NAME.match(value) or len(value) > 63:
        raise ValueError(
            f"not a valid {what}: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 63 characters"
        )
    return value


def _check_requirement(item: str) -> str:
    if not item.strip() or item != item.strip() or item.startswith("-"):
        raise ValueError(
            "not a pip requirement: expected e.g. 'torch' or 'numpy>=2' "
            "(no options, no surrounding spaces)"
        )
    if any(ch in item for ch in "\n\r\t"):
        raise ValueError("not a pip requirement: one requirement per item")
    return item


def _check_apt(item: str) -> str:
    if not _APT_NAME.match(item):
        raise ValueError("not an apt package name (e.g. 'ffmpeg', 'libgl1')")
    return item


def _check_model_id(item: str) -> str:
    if not _MODEL_ID.match(item) or ".." in item or "--" in item:
        raise ValueError("not a Hugging Face model id: expected 'org/name'")
    return item


def _check_secret(item: str) -> str:
    return _check_modal_name(item, "Modal secret name")


def _check_revision(item: str) -> str:
    if not _REVISION.match(item) or ".." in item:
        raise ValueError("not a Hugging Face revision: a branch, tag or commit hash")
    return item


def _check_glob(item: str) -> str:
    if not item.strip() or item != item.strip() or "\n" in item:
        raise ValueError("not a glob pattern: e.g. 'weights/**' or '**/*.ckpt'")
    if item.lstrip("!").startswith("/") or ".." in item.split("/"):
        raise ValueError("a pattern is relative to the interface's folder: no leading '/', no '..'")
    return item


Requirement = Annotated[str, AfterValidator(_check_requirement)]
AptPackage = Annotated[str, AfterValidator(_check_apt)]
ModelId = Annotated[str, AfterValidator(_check_model_id)]
SecretName = Annotated[str, AfterValidator(_check_secret)]
Revision = Annotated[str, AfterValidator(_check_revision)]
Glob = Annotated[str, AfterValidator(_check_glob)]

# Integer keys and their inclusive bounds (Modal's own limits where it has them).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "timeout": (1, 86400),
    "startup_timeout": (1, 86400),
    "scaledown_window": (2, 3600),
    "min_containers": (0, 1000),
    "max_containers": (1, 1000),
    "buffer_containers": (0, 1000),
    "concurrency": (1, 1000),
    "max_inputs": (2, 1000),
    "ephemeral_disk": (1, MAX_EPHEMERAL_DISK),
}


def _bounded(key: str) -> Any:
    low, high = INT_BOUNDS[key]
    return Field(ge=low, le=high)


class BucketMount(BaseModel):
    """One ``[[bucket_mounts]]`` table: a cloud bucket mounted into the server's containers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Where the bucket appears in the container (an absolute path).
    mount_path: str
    bucket_name: str
    # Required for Cloudflare R2 and Google Cloud Storage; S3 otherwise.
    bucket_endpoint_url: str | None = None
    # Only objects under this prefix (ends with "/").
    key_prefix: str | None = None
    # A Modal secret with the bucket's credentials (none: a public bucket).
    secret: SecretName | None = None
    read_only: bool = True
    requester_pays: bool = False

    @field_validator("mount_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        if not value.startswith("/") or value != value.rstrip("/") or ".." in value.split("/"):
            raise ValueError("not an absolute container path: e.g. '/weights'")
        for reserved in _RESERVED_MOUNTS:
            if value == reserved or value.startswith(reserved + "/"):
                raise ValueError(f"{reserved} is scopegen's own; mount the bucket elsewhere")
        return value

    @field_validator("bucket_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^\s/]+(/\S*)?$", value):
            raise ValueError("not an https:// URL")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith("/"):
            raise ValueError("a key prefix ends with '/' (Modal's rule)")
        return value

    @model_validator(mode="after")
    def _pays(self) -> BucketMount:
        if self.requester_pays and self.secret is None:
            raise ValueError("requester_pays needs a secret with the credentials to bill")
        return self


class ScopegenConfig(BaseModel):
    """The ``[tool.scopegen]`` table. Every key is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Modal app name (default: the interface name); the volume is "<name>-models".
    name: str | None = None
    # A Modal GPU type, optionally ":N" for N GPUs per container (e.g. "H100:2"),
    # or a list of them, tried in order (Modal's GPU fallbacks).
    gpu: str | list[str] = "A10"
    python_version: str = "3.12"
    # pip requirements of the image; None: inferred from the interface's imports.
    python_packages: list[Requirement] | None = None
    system_packages: list[AptPackage] = Field(default_factory=list)
    # Hugging Face ids downloaded too, besides those found by the analyzer.
    models: list[ModelId] = Field(default_factory=list)
    # Model id -> branch, tag or commit to download (default: the repo's main branch).
    revisions: dict[ModelId, Revision] = Field(default_factory=dict)
    # Glob patterns of the files to download per model; None: what loading needs
    # (one weights format, configs, tokenizer and code files).
    model_files: list[Glob] | None = None
    # Modal secrets of the server's containers, and of the download function only.
    secrets: list[SecretName] = Field(default_factory=list)
    download_secrets: list[SecretName] = Field(default_factory=list)
    # Plain environment variables of the server's containers.
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[int, _bounded("timeout")] = 600
    startup_timeout: Annotated[int, _bounded("startup_timeout")] = 900
    scaledown_window: Annotated[int, _bounded("scaledown_window")] = 300
    min_containers: Annotated[int, _bounded("min_containers")] = 0
    # None: DEFAULT_MAX_CONTAINERS, or min_containers if higher (see container_limit).
    max_containers: Annotated[int, _bounded("max_containers")] | None = None
    buffer_containers: Annotated[int, _bounded("buffer_containers")] | None = None
    # Calls one container runs at once (the server's executor; Modal's target).
    concurrency: Annotated[int, _bounded("concurrency")] = 1
    # Requests Modal sends one container at once; None: concurrency + CONTROL_INPUTS.
    max_inputs: Annotated[int, _bounded("max_inputs")] | None = None
    # Cores (or [request, limit]), MiB of memory (or [request, limit]), MiB of disk.
    cpu: float | list[float] | None = None
    memory: int | list[int] | None = None
    ephemeral_disk: Annotated[int, _bounded("ephemeral_disk")] | None = None
    region: str | list[str] | None = None
    cloud: str | None = None
    bucket_mounts: list[BucketMount] = Field(default_factory=list)
    memory_snapshot: bool = False
    # Snapshot GPU memory too: the interface (and its models) load before the snapshot.
    gpu_snapshot: bool = False
    # Globs (relative to the interface's folder) of what is uploaded, and left out.
    upload_include: list[Glob] | None = None
    upload_ignore: list[Glob] = Field(default_factory=list)
    proxy_auth: bool = True
    # Leave remote tracebacks out of function_error answers (`serve --hide-tracebacks`).
    hide_tracebacks: bool = False
    # Modal's environment for deploy, download and the URL lookup (None: modal's default).
    environment: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _MODAL_NAME.match(value) or len(value) > MAX_NAME_LENGTH:
            raise ValueError(
                "not a valid Modal app name: use letters, digits, '-', '_' and '.', "
                f"starting with a letter or digit, at most {MAX_NAME_LENGTH} characters"
            )
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str | None) -> str | None:
        if value is not None and (not _ENVIRONMENT.match(value) or value.startswith("en-")):
            raise ValueError(
                "not a Modal environment name: 1 to 64 letters, digits, '-' and '_', "
                "starting with a letter or digit, not with 'en-'"
            )
        return value

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        if isinstance(value, str):
            return normalize_gpu(value)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError("expected a GPU type or a list of GPU types (strings)")
        if not value:
            raise ValueError("an empty GPU list: name at least one GPU type")
        gpus = [normalize_gpu(item) for item in value]
        if len(set(gpus)) != len(gpus):
            raise ValueError("a GPU type is listed twice")
        return gpus if len(gpus) > 1 else gpus[0]

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, value: str) -> str:
        if value == "3.10":
            raise ValueError(_PYTHON_310)
        if value not in PYTHON_VERSIONS:
            allowed = ", ".join(PYTHON_VERSIONS)
            raise ValueError(f"not a supported Python version; allowed: {allowed}")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if key in _SECRET_ENV:
                raise ValueError(
                    f"{key} is a credential: put it in a Modal secret "
                    f"(`modal secret create NAME {key}=...`) and list NAME under secrets"
                )
        return value

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        return _request_limit(value, "cores", lambda v: _is_number(v) and v > 0, float)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return _request_limit(
            value, "MiB", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, int
        )

    @field_validator("cloud")
    @classmethod
    def _cloud(cls, value: str | None) -> str | None:
        if value is not None and value not in CLOUDS:
            raise ValueError(f"not a Modal cloud; allowed: {', '.join(CLOUDS)}")
        return value

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError("an empty region list: leave the key out for any region")
        if not all(isinstance(item, str) and _REGION.match(item) for item in items):
            raise ValueError("not a Modal region (e.g. 'us-east', 'eu-west-1') or a list of them")
        return value

    @field_validator("bucket_mounts")
    @classmethod
    def _bucket_paths(cls, value: list[BucketMount]) -> list[BucketMount]:
        paths = [m.mount_path for m in value]
        if len(set(paths)) != len(paths):
            raise ValueError("two bucket mounts share a mount_path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScopegenConfig:
        if self.max_containers is not None and self.max_containers < self.min_containers:
            raise ValueError(
                f"max_containers ({self.max_containers}) is below min_containers "
                f"({self.min_containers}): max_containers must be >= min_containers"
            )
        if self.max_inputs is not None and self.max_inputs <= self.concurrency:
            raise ValueError(
                f"max_inputs ({self.max_inputs}) must be above concurrency ({self.concurrency}): "
                "the extra inputs let /healthz and the manifest in while every worker is busy"
            )
        if self.gpu_snapshot and not self.memory_snapshot:
            raise ValueError("gpu_snapshot = true needs memory_snapshot = true (Modal's rule)")
        return self

    # ------------------------------------------------------------------ derived values

    def app_name(self, interface_name: str) -> str:
        """The Modal app name: ``name``, else derived from the interface name."""
        if self.name:
            return self.name
        derived = re.sub(r"[^A-Za-z0-9.-]+", "-", interface_name).strip("-.").lower()
        return (derived or "scopegen")[:MAX_NAME_LENGTH].rstrip("-.")

    def volume_name(self, interface_name: str) -> str:
        return f"{self.app_name(interface_name)}-models"

    def download_app_name(self, interface_name: str) -> str:
        """The app of ``modal_download.py`` (run, never deployed): ``<name>-download``."""
        return self.app_name(interface_name)[: 63 - len("-download")].rstrip("-.") + "-download"

    def all_models(self, found: Iterable[str]) -> tuple[str, ...]:
        """Model ids found statically, then configured ones; each once, in order."""
        return tuple(dict.fromkeys([*found, *self.models]))

    @property
    def gpus(self) -> list[str]:
        """The GPU types in order of preference (one item without fallbacks)."""
        return [self.gpu] if isinstance(self.gpu, str) else list(self.gpu)

    @property
    def container_limit(self) -> int:
        """``max_containers``, else the finite default."""
        if self.max_containers is not None:
            return self.max_containers
        return max(DEFAULT_MAX_CONTAINERS, self.min_containers)

    @property
    def admitted_inputs(self) -> int:
        """Requests Modal sends one container at once (``@modal.concurrent(max_inputs=)``)."""
        return self.max_inputs if self.max_inputs is not None else self.concurrency + CONTROL_INPUTS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _request_limit(
    value: Any, unit: str, ok: Callable[[Any], bool], kind: Callable[[Any], Any]
) -> Any:
    """A request, or ``[request, limit]`` with the limit not below the request."""
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != 2 or not all(ok(v) for v in value):
            raise ValueError(f"expected a positive number of {unit}, or [request, limit]")
        if value[1] < value[0]:
            raise ValueError(f"the limit ({value[1]}) is below the request ({value[0]})")
        return [kind(v) for v in value]
    if not ok(value):
        raise ValueError(f"expected a positive number of {unit}, or [request, limit]")
    return kind(value)


def normalize_gpu(value: str) -> str:
    """``"h100:2"`` -> ``"H100:2"``; raises ``ValueError`` naming what is allowed."""
    allowed = (
        f"allowed: {', '.join(GPU_TYPES)}, optionally followed by ':N' for N GPUs "
        f"(1 to {MAX_GPU_COUNT}, 1 to 4 for A10, e.g. 'H100:2'), or a list of these"
    )
    kind, sep, count = value.strip().partition(":")
    canonical = {g.upper(): g for g in GPU_TYPES}.get(kind.upper())
    if canonical is None:
        raise ValueError(f"not a Modal GPU type; {allowed}")
    if sep:
        most = GPU_MAX_COUNT.get(canonical, MAX_GPU_COUNT)
        if not count.isdigit() or not 1 <= int(count) <= MAX_GPU_COUNT:
            raise ValueError(f"bad GPU count {count!r}; {allowed}")
        if int(count) > most:
            raise ValueError(
                f"{canonical} machines have at most {most} GPUs (Modal's limit); "
                f"use '{canonical}:{most}' or another type, e.g. 'L40S:{count}'"
            )
        if int(count) > 1:
            return f"{canonical}:{int(count)}"
    return canonical


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ConfigSource:
    """Where a configuration came from, for messages."""

    path: Path | None
    table: str  # "" for top-level keys, "tool.scopegen" for the table

    def describe(self) -> str:
        if self.path is None:
            return "the scopegen configuration"
        return f"[{self.table}] in {self.path}" if self.table else str(self.path)


def find_config_file(interface_path: str | Path) -> Path | None:
    """``scopegen.toml`` beside the interface, else the nearest ``pyproject.toml``."""
    start = Path(interface_path).resolve().parent
    beside = start / "scopegen.toml"
    if beside.is_file():
        return beside
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(interface_path: str | Path) -> ScopegenConfig:
    """Read and validate the configuration that applies to ``interface_path``."""
    path = find_config_file(interface_path)
    if path is None:
        return ScopegenConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    tool = data.get("tool")
    table = tool.get("scopegen") if isinstance(tool, dict) else None
    if path.name == "pyproject.toml":
        if table is None:
            return ScopegenConfig()
        return parse_config(table, ConfigSource(path, "tool.scopegen"))
    if table is not None:
        # scopegen.toml may use [tool.scopegen] too, but not both styles at once.
        rest = {k: v for k, v in data.items() if k != "tool"}
        if rest:
            raise ConfigError(
                f"{path}: keys both at the top level ({', '.join(sorted(rest))}) and under "
                "[tool.scopegen]; use one or the other"
            )
        return parse_config(table, ConfigSource(path, "tool.scopegen"))
    return parse_config(data, ConfigSource(path, ""))


def parse_config(data: Any, source: ConfigSource | None = None) -> ScopegenConfig:
    """Validate a mapping of configuration keys; raise :class:`ConfigError` on any problem."""
    source = source or ConfigSource(None, "")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source.describe()}: expected a table of keys, got {_toml(data)}")
    try:
        return ScopegenConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data, source)) from None


_TYPE_WORDS = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list of strings",
    "dict_type": "a table",
    "model_type": "a table",
}
# Keys whose value is not a list of strings, for the type-error wording.
_TYPE_WORDS_BY_KEY = {"bucket_mounts": "a list of [[bucket_mounts]] tables"}


def _format_errors(exc: ValidationError, data: Mapping[str, Any], source: ConfigSource) -> str:
    lines = [f"invalid scopegen configuration in {source.describe()}:"]
    keys = list(ScopegenConfig.model_fields)
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        key = _loc_text(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            # A key inside a [[bucket_mounts]] table, or at the top level.
            allowed = list(BucketMount.model_fields) if len(loc) > 1 else keys
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
            lines.append(
                f"  {key}: unknown key{did_you_mean} Allowed keys: {', '.join(allowed)}"
            )
            continue
        if not loc:  # a model-level check: the message names the keys itself
            lines.append(f"  {_strip_prefix(err['msg'])}")
            continue
        value = _toml(err.get("input"))
        if loc[0] == "env":  # values may be credentials put there by mistake: never echo them
            value = _redacted(err.get("input"))
        if kind in _TYPE_WORDS or kind.endswith("_type"):
            expected = _TYPE_WORDS.get(kind, kind.removesuffix("_type"))
            if len(loc) == 1:
                expected = _TYPE_WORDS_BY_KEY.get(str(loc[0]), expected)
            field = ScopegenConfig.model_fields.get(str(loc[0]))
            if field is not None and field.default is None and len(loc) == 1:
                expected += " (or leave the key out)"
            lines.append(f"  {key} = {value}: expected {expected}")
        elif kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
            lines.append(f"  {key} = {value}: {_bounds(str(loc[0]))}")
        else:
            lines.append(f"  {key} = {value}: {_strip_prefix(err['msg'])}")
    return "\n".join(lines)


def _redacted(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f'{k} = "..."' for k in value) + "}"
    return '"..."'


def _bounds(key: str) -> str:
    low, high = INT_BOUNDS[key]
    return f"must be an integer from {low} to {high}"


def _strip_prefix(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _toml(value: Any) -> str:
    """Show a value the way it would be written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string has JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)
