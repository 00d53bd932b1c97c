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
from collections.abc import Iterable, Mapping
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
    "GPU_TYPES",
    "PYTHON_VERSIONS",
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
MAX_GPU_COUNT = 8

# Python series Modal's debian_slim images offer that scopegen also supports.
PYTHON_VERSIONS: tuple[str, ...] = ("3.10", "3.11", "3.12", "3.13", "3.14")

# Modal object names: letters, digits, ``-``, ``_``, ``.``; under 64 characters.
_MODAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The app name also names the volume ``<name>-models``, which must fit too.
MAX_NAME_LENGTH = 63 - len("-models")
_MODEL_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
_APT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:=~_-]*$")


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


Requirement = Annotated[str, AfterValidator(_check_requirement)]
AptPackage = Annotated[str, AfterValidator(_check_apt)]
ModelId = Annotated[str, AfterValidator(_check_model_id)]
SecretName = Annotated[str, AfterValidator(_check_secret)]

# Integer keys and their inclusive bounds (Modal's own limits where it has them).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "timeout": (1, 86400),
    "startup_timeout": (1, 86400),
    "scaledown_window": (2, 3600),
    "min_containers": (0, 1000),
    "max_containers": (1, 1000),
    "concurrency": (1, 1000),
}


def _bounded(key: str) -> Any:
    low, high = INT_BOUNDS[key]
    return Field(ge=low, le=high)


class ScopegenConfig(BaseModel):
    """The ``[tool.scopegen]`` table. Every key is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Modal app name (default: the interface name); the volume is "<name>-models".
    name: str | None = None
    # Modal GPU type, optionally ":N" for N GPUs per container (e.g. "H100:2").
    gpu: str = "A10"
    python_version: str = "3.12"
    # pip requirements of the image; None: inferred from the interface's imports.
    python_packages: list[Requirement] | None = None
    system_packages: list[AptPackage] = Field(default_factory=list)
    # Hugging Face ids downloaded too, besides those found by the analyzer.
    models: list[ModelId] = Field(default_factory=list)
    secrets: list[SecretName] = Field(default_factory=list)
    timeout: Annotated[int, _bounded("timeout")] = 600
    startup_timeout: Annotated[int, _bounded("startup_timeout")] = 900
    scaledown_window: Annotated[int, _bounded("scaledown_window")] = 300
    min_containers: Annotated[int, _bounded("min_containers")] = 0
    max_containers: Annotated[int, _bounded("max_containers")] | None = None
    concurrency: Annotated[int, _bounded("concurrency")] = 1
    memory_snapshot: bool = False
    proxy_auth: bool = True
    # Leave remote tracebacks out of function_error answers (`serve --hide-tracebacks`).
    hide_tracebacks: bool = False

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

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str) -> str:
        return normalize_gpu(value)

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, value: str) -> str:
        if value not in PYTHON_VERSIONS:
            allowed = ", ".join(PYTHON_VERSIONS)
            raise ValueError(f"not a supported Python version; allowed: {allowed}")
        return value

    @model_validator(mode="after")
    def _containers(self) -> ScopegenConfig:
        if self.max_containers is not None and self.max_containers < self.min_containers:
            raise ValueError(
                f"max_containers ({self.max_containers}) is below min_containers "
                f"({self.min_containers}): max_containers must be >= min_containers"
            )
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

    def all_models(self, found: Iterable[str]) -> tuple[str, ...]:
        """Model ids found statically, then configured ones; each once, in order."""
        return tuple(dict.fromkeys([*found, *self.models]))


def normalize_gpu(value: str) -> str:
    """``"h100:2"`` -> ``"H100:2"``; raises ``ValueError`` naming what is allowed."""
    allowed = (
        f"allowed: {', '.join(GPU_TYPES)}, optionally followed by ':N' for N GPUs "
        f"(1 to {MAX_GPU_COUNT}, e.g. 'H100:2')"
    )
    kind, sep, count = value.strip().partition(":")
    canonical = {g.upper(): g for g in GPU_TYPES}.get(kind.upper())
    if canonical is None:
        raise ValueError(f"not a Modal GPU type; {allowed}")
    if sep:
        if not count.isdigit() or not 1 <= int(count) <= MAX_GPU_COUNT:
            raise ValueError(f"bad GPU count {count!r}; {allowed}")
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
}


def _format_errors(exc: ValidationError, data: Mapping[str, Any], source: ConfigSource) -> str:
    lines = [f"invalid scopegen configuration in {source.describe()}:"]
    keys = list(ScopegenConfig.model_fields)
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        key = _loc_text(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[0]), keys, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
            lines.append(
                f"  {key}: unknown key{did_you_mean} Allowed keys: {', '.join(keys)}"
            )
            continue
        if not loc:  # a model-level check: the message names the keys itself
            lines.append(f"  {_strip_prefix(err['msg'])}")
            continue
        value = _toml(err.get("input"))
        if kind in _TYPE_WORDS or kind.endswith("_type"):
            expected = _TYPE_WORDS.get(kind, kind.removesuffix("_type"))
            field = ScopegenConfig.model_fields.get(str(loc[0]))
            if field is not None and field.default is None and len(loc) == 1:
                expected += " (or leave the key out)"
            lines.append(f"  {key} = {value}: expected {expected}")
        elif kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
            lines.append(f"  {key} = {value}: {_bounds(str(loc[0]))}")
        else:
            lines.append(f"  {key} = {value}: {_strip_prefix(err['msg'])}")
    return "\n".join(lines)


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
