"""What runs inside the containers of a generated ``modal_app.py`` / ``modal_download.py``.

The generated files call these functions and nothing else of scopegen, and the
tests call the very same ones, so what is tested locally is what Modal runs:

- :func:`download_models` (the CPU download function) fills the models volume:
  one ``<org>--<name>`` folder per model, with :data:`~scopegen.runtime.MARKER_NAME`
  written last, so a folder without it is an interrupted download. It fetches
  only what loading needs (:func:`select_model_files`) and names the Hugging
  Face token to add when the Hub refuses a model.
- :func:`create_asgi_app` (the GPU class's ``@modal.enter``) points
  ``get_model_path`` at the volume, imports the interface through the server's
  factory and returns the ASGI app that ``@modal.asgi_app`` serves. When every
  worker is stuck past its timeout, it asks Modal to send the container no
  more inputs, so that a fresh container replaces it.

Import-light on purpose (no modal, no server, no torch at import time): the
download container imports this module too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from scopegen.runtime import (
    MARKER_NAME,
    ModelNotFoundError,
    ModelPaths,
    model_dir_name,
)

__all__ = [
    "MODELS_DIR",
    "DownloadRefused",
    "Fetch",
    "ModalJobs",
    "VolumeModelPaths",
    "create_asgi_app",
    "download_models",
    "preimport",
    "run_job",
    "select_model_files",
    "stop_fetching_inputs",
    "volume_model_paths",
]

MODELS_DIR = "/models"

_log = logging.getLogger("scopegen.modal")

DOWNLOAD_COMMAND = "modal run --detach modal_download.py::download_models"


class Fetch(Protocol):
    """How the download function fetches one model into a folder.

    The default is huggingface_hub's ``snapshot_download`` (imported only when used).
    """

    def __call__(
        self,
        model_id: str,
        folder: Path,
        *,
        revision: str | None,
        patterns: list[str] | None,
        force: bool,
    ) -> None: ...


class DownloadRefused(RuntimeError):
    """The Hugging Face Hub refused a model (401/403): gated, private, or a wrong id."""


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
            f"Run `{DOWNLOAD_COMMAND}` (`scopegen deploy` does it before "
            "deploying); if the id is computed at run time, list it under `models` in "
            "[tool.scopegen] so it is downloaded ahead of time."
        ) from None


def volume_model_paths(models_dir: str = MODELS_DIR) -> VolumeModelPaths:
    """The model paths of a Modal container (no Hugging Face cache fallback)."""
    return VolumeModelPaths(models_dir=models_dir, require_marker=True, use_hf_cache=False)


# --------------------------------------------------------------------------- download

# Weight formats, by file suffix. A repo often ships the same weights several
# times (safetensors, PyTorch, TensorFlow, Flax, ONNX, Rust); loading needs one.
_SAFETENSORS = (".safetensors",)
_PYTORCH = (".bin", ".pt", ".pth")
_OTHER_WEIGHTS = (".ckpt", ".h5", ".msgpack", ".onnx", ".onnx_data", ".ot", ".tflite", ".mlmodel")
# Folders of other runtimes' exports (ONNX, OpenVINO, Core ML).
_EXPORT_DIRS = frozenset({"onnx", "openvino", "coreml"})


def select_model_files(files: Iterable[str]) -> list[str] | None:
    """The files of a repo that loading needs: one weights format, and everything else.

    Safetensors when the repo has them, else PyTorch's ``.bin`` / ``.pt``; the
    other formats and the ONNX / OpenVINO / Core ML export folders are left
    out. ``None`` (fetch everything) when the repo has neither format, e.g. a
    GGUF repo: then ``model_files`` should name the file to fetch.
    """
    names = sorted(files)
    native = [n for n in names if PurePosixPath(n).parts[0] not in _EXPORT_DIRS]
    keep: tuple[str, ...]
    if any(n.endswith(_SAFETENSORS) for n in native):
        keep = _SAFETENSORS
    elif any(n.endswith(_PYTORCH) for n in native):
        keep = _PYTORCH
    else:
        return None
    weights = (*_SAFETENSORS, *_PYTORCH, *_OTHER_WEIGHTS)
    chosen = [n for n in native if n.endswith(keep) or not n.endswith(weights)]
    # Exact names, as fnmatch patterns (huggingface_hub matches allow_patterns so).
    return [n.replace("[", "[[]") for n in chosen]


def _snapshot_download(
    model_id: str,
    folder: Path,
    *,
    revision: str | None,
    patterns: list[str] | None,
    force: bool,
) -> None:
    from huggingface_hub import HfApi, snapshot_download

    # HF_TOKEN (from a Modal secret) is picked up by huggingface_hub itself.
    if patterns is None:
        patterns = select_model_files(HfApi().list_repo_files(model_id, revision=revision))
    snapshot_download(
        model_id,
        revision=revision,
        local_dir=folder,
        allow_patterns=patterns,
        force_download=force,
    )


def _refusal(exc: BaseException) -> int | None:
    """The HTTP status of a Hub refusal (401/403, or a gated / missing repo), else None."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    names = {t.__name__ for t in type(exc).__mro__}
    if status in (401, 403) or names & {"GatedRepoError", "RepositoryNotFoundError"}:
        return status if isinstance(status, int) else 401
    return None


def _refused_message(model_id: str, status: int) -> str:
    token = "is set" if os.environ.get("HF_TOKEN") else "is not set"
    return (
        f"the Hugging Face Hub refused {model_id!r} (HTTP {status}): it is gated or private, "
        f"or the id is wrong. HF_TOKEN {token} in the download container. For a gated model, "
        f"accept its terms on https://huggingface.co/{model_id} with your account, create a "
        "Modal secret holding your token (`modal secret create huggingface HF_TOKEN=hf_...`) "
        'and give it to the download function: download_secrets = ["huggingface"] in '
        "scopegen.toml (or [tool.scopegen]); then run `scopegen deploy` again."
    )


def _marker_text(model_id: str, revision: str | None) -> str:
    return f"{model_id}\n{revision or ''}\n"


def _complete(marker: Path, revision: str | None) -> bool:
    """A marker says the download finished; its second line names the revision fetched."""
    try:
        lines = marker.read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    fetched = lines[1] if len(lines) > 1 else ""
    return fetched == (revision or "")


def download_models(
    model_ids: Iterable[str],
    models_dir: str | Path = MODELS_DIR,
    *,
    commit: Callable[[], Any] | None = None,
    fetch: Fetch | None = None,
    revisions: Mapping[str, str] | None = None,
    patterns: Sequence[str] | None = None,
    force: bool = False,
) -> list[str]:
    """Download each model into ``models_dir/<org>--<name>``; return the ids fetched now.

    A folder whose marker names the wanted revision is complete and skipped
    (unless ``force``); any other folder is (re)fetched, which resumes an
    interrupted download. The marker is written only after the fetch returned,
    and ``commit`` (the volume's) runs after each model so that finished work
    survives a later failure. ``patterns`` (``model_files``) replaces the
    automatic choice of files. A refusal by the Hub raises :class:`DownloadRefused`
    with what to do.
    """
    fetch = fetch or _snapshot_download
    revisions = revisions or {}
    root = Path(models_dir)
    fetched: list[str] = []
    for model_id in dict.fromkeys(model_ids):
        folder = root / model_dir_name(model_id)
        marker = folder / MARKER_NAME
        revision = revisions.get(model_id)
        shown = f"{model_id}@{revision}" if revision else model_id
        if not force and marker.is_file() and _complete(marker, revision):
            print(f"scopegen: {shown}: already complete in {folder}", flush=True)
            continue
        print(f"scopegen: {shown}: downloading into {folder}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)  # incomplete until this fetch returns
        try:
            fetch(
                model_id,
                folder,
                revision=revision,
                patterns=list(patterns) if patterns is not None else None,
                force=force,
            )
        except Exception as exc:
            status = _refusal(exc)
            if status is None:
                raise
            raise DownloadRefused(_refused_message(model_id, status)) from None
        marker.write_text(_marker_text(model_id, revision), encoding="utf-8")
        if commit is not None:
            commit()
        fetched.append(model_id)
        print(f"scopegen: {shown}: complete", flush=True)
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
    job_method: Callable[[], Any] | None = None,
) -> Any:
    """Import the interface through the server's factory; return the server's ASGI app.

    ``SCOPEGEN_TOKEN`` (from a Modal secret) turns on bearer-token checks,
    exactly as for ``scopegen serve``. When every worker is stuck past
    ``call_timeout``, :func:`stop_fetching_inputs` runs once. ``job_method``
    gives the Modal method that runs one job (the generated ``Server.run_job``):
    the job routes then keep jobs as Modal function calls (:class:`ModalJobs`).
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
    app = create_app(Path(interface_path), settings)
    app.on_degraded.append(_once(stop_fetching_inputs))
    if job_method is not None:
        app.jobs = ModalJobs(job_method)
    return app


async def run_job(app: Any, function: str, arguments: bytes) -> bytes:
    """The body of the generated ``Server.run_job``: one job, run in this container.

    Answers the finished job's fields as JSON bytes (never a pickled object
    of the interface's: Modal carries bytes).
    """
    result: bytes = await app.run_job(function, arguments)
    return result


class ModalJobs:
    """Jobs as Modal function calls (``docs/protocol.md``, Jobs): spawn, then ``from_id``.

    Any container answers for any job, and a job outlives the container that
    accepted it. The job id is the function call's id and the function's name
    (``fc-….add``). Modal keeps no timestamps nor items in progress for us: a
    job's ``created_at`` / ``started_at`` / ``finished_at`` are ``null``, a
    job not yet finished reads ``running`` (Modal does not say whether it was
    picked up), and a streaming job's items appear when it finishes.
    ``--job-ttl`` / ``--max-jobs`` do not apply: Modal keeps the calls.
    """

    def __init__(self, method: Callable[[], Any]) -> None:
        self._method = method  # lazily: ``Server().run_job`` exists once the app runs

    async def submit(self, ep: Any, kwargs: dict[str, Any], raw: bytes) -> bytes:
        call = await self._method().spawn.aio(ep.name, raw)
        return _job_body(f"{call.object_id}.{ep.name}", ep.name, {"status": "queued"})

    async def get(self, job_id: str) -> bytes:
        call, function = self._call(job_id)
        return _job_body(job_id, function, await _outcome(call, job_id))

    async def cancel(self, job_id: str) -> bytes:
        call, function = self._call(job_id)
        outcome = await _outcome(call, job_id)
        if outcome["status"] in ("queued", "running"):
            await call.cancel.aio()
            outcome = {"status": "cancelled"}
        return _job_body(job_id, function, outcome)

    def close(self) -> None:
        pass  # the calls belong to Modal, not to this container

    def _call(self, job_id: str) -> tuple[Any, str]:
        import modal

        call_id, _, function = job_id.rpartition(".")
        if not call_id.startswith("fc-") or not function:
            raise _unknown_job(job_id)
        return modal.FunctionCall.from_id(call_id), function


def _unknown_job(job_id: str) -> Exception:
    from scopegen.server._errors import CallError

    return CallError("unknown_job", f"no job {job_id[:80]!r} (finished jobs expire)")


async def _outcome(call: Any, job_id: str) -> dict[str, Any]:
    """The job's status (and result or error) from its Modal function call."""
    import orjson
    from modal import exception

    try:
        out = await call.get.aio(timeout=0)
    except exception.FunctionTimeoutError as exc:
        error = {"code": "timeout", "message": f"the job ran past its Modal timeout: {exc}"}
        return {"status": "failed", "error": error}
    except exception.TimeoutError:
        return {"status": "running"}  # not finished yet
    except exception.InputCancellation:
        return {"status": "cancelled"}
    except (exception.NotFoundError, exception.OutputExpiredError):
        raise _unknown_job(job_id) from None
    except exception.Error as exc:  # Modal's own failure (the container died, ...)
        if "cancel" in type(exc).__name__.lower() or "cancel" in str(exc).lower():
            return {"status": "cancelled"}
        error = {"code": "function_error", "message": str(exc), "type": type(exc).__name__}
        return {"status": "failed", "error": error}
    outcome: dict[str, Any] = orjson.loads(out)
    return outcome


def _job_body(job_id: str, function: str, outcome: Mapping[str, Any]) -> bytes:
    import orjson

    job = {
        "id": job_id,
        "function": function,
        "created_at": None,
        "started_at": None,
        "finished_at": None,
        **outcome,
    }
    return orjson.dumps({"job": job})


# Tasks in flight, kept referenced until they finish (the loop keeps only weak ones).
_tasks: set[asyncio.Task[Any]] = set()


def stop_fetching_inputs() -> None:
    """Ask Modal to route no more inputs to this container (run on the event loop).

    The server answers 503 while every worker is stuck, but Modal keeps
    routing to a container that answers fast; once asked, Modal lets the
    inputs in flight finish and stops the container, and new calls go to a
    fresh one. modal 1.6 sends the request asynchronously (``.aio``); 1.1 to
    1.5 set a flag in the container's input loop.
    """
    _log.warning(
        "scopegen: every worker is stuck in a call past its timeout; asking Modal to send "
        "this container no more inputs, so that a fresh container replaces it"
    )
    from modal.experimental import stop_fetching_inputs as stop

    send = getattr(stop, "aio", None)
    if send is None:
        stop()
        return
    task = asyncio.get_running_loop().create_task(send())
    _tasks.add(task)
    task.add_done_callback(_stopped)


def _stopped(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("scopegen: Modal did not take the request to stop inputs: %r", exc)


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            fn()

    return run
