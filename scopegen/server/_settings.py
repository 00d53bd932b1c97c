"""How one server instance behaves: the knobs of ``scopegen serve`` as a value.

The only place their defaults are written, ``$SCOPEGEN_TOKEN`` is read and
their values are checked: the CLI passes on what was given and leaves the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO

from scopegen.protocol import DEFAULT_JOB_TTL, DEFAULT_MAX_JOBS, TOKEN_ENV
from scopegen.runtime import ModelPaths

__all__ = ["DEFAULT_MAX_BODY", "ServerSettings"]

DEFAULT_MAX_BODY = 64 * 1024 * 1024


def _token_from_env() -> str | None:
    # An empty SCOPEGEN_TOKEN means "no token", not "the empty token".
    return os.environ.get(TOKEN_ENV) or None


@dataclass(frozen=True)
class ServerSettings:
    """Settings of one server; ``create_app`` reads them once at start-up.

    ``token`` defaults to ``$SCOPEGEN_TOKEN`` read when the settings are made;
    ``None`` turns authentication off. ``call_timeout`` is in seconds and
    counts from the moment a worker starts the call (``None``: no limit).
    ``block_warning`` is how long (seconds) something may block the event
    loop, e.g. an ``async def`` that never awaits, before the server logs a
    warning naming it (``0``: never).
    ``item_timeout`` bounds the wait for each item of a streaming result
    (``call_timeout`` bounds the whole stream). Finished jobs are kept
    ``job_ttl`` seconds; at most ``max_jobs`` jobs are kept.
    ``models_dir`` / ``models`` (model id -> local folder) feed
    ``get_model_path``; ``require_model_marker`` makes a models-dir entry count
    only once its download finished (used inside Modal).
    """

    token: str | None = field(default_factory=_token_from_env)
    call_timeout: float | None = None
    item_timeout: float | None = None
    job_ttl: float = DEFAULT_JOB_TTL
    max_jobs: int = DEFAULT_MAX_JOBS
    block_warning: float = 0.5
    max_concurrency: int = 1
    max_body: int = DEFAULT_MAX_BODY
    access_log: bool = True
    hide_tracebacks: bool = False
    models_dir: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    require_model_marker: bool = False
    use_hf_cache: bool = True
    # A ready ModelPaths used as-is (e.g. Modal's volume paths); when set, the
    # four fields above are ignored.
    paths: ModelPaths | None = field(default=None, compare=False)
    # Where access-log lines go; ``None`` means ``sys.stderr`` at start-up.
    log_stream: IO[str] | None = field(default=None, compare=False, repr=False)
    # Interface name for the manifest; ``None`` derives it from the file name.
    name: str | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, not {self.max_concurrency}")
        if self.max_body < 1:
            raise ValueError(f"max_body must be >= 1 byte, not {self.max_body}")
        if self.call_timeout is not None and not self.call_timeout > 0:
            raise ValueError(f"call_timeout must be > 0 seconds, not {self.call_timeout}")
        if self.item_timeout is not None and not self.item_timeout > 0:
            raise ValueError(f"item_timeout must be > 0 seconds, not {self.item_timeout}")
        if not self.job_ttl > 0:
            raise ValueError(f"job_ttl must be > 0 seconds, not {self.job_ttl}")
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, not {self.max_jobs}")
        if not self.block_warning >= 0:
            raise ValueError(f"block_warning must be >= 0 seconds, not {self.block_warning}")

    def model_paths(self) -> ModelPaths:
        """Where ``get_model_path`` looks while this server runs."""
        if self.paths is not None:
            return self.paths
        return ModelPaths(
            overrides=dict(self.models),
            models_dir=self.models_dir,
            require_marker=self.require_model_marker,
            use_hf_cache=self.use_hf_cache,
        )
