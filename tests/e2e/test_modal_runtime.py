"""What runs inside the Modal containers, run here.

The ASGI app is built exactly as the generated ``Server`` class builds it: the
class's own ``load`` (``@modal.enter``) and ``web`` (``@modal.asgi_app``)
methods are called on the plain class ``@app.cls`` wrapped, and the object
``web`` returns is served by a real uvicorn, lifespan included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from scopegen.modal_runtime import (
    Fetch,
    VolumeModelPaths,
    create_asgi_app,
    download_models,
    select_model_files,
    volume_model_paths,
)
from scopegen.runtime import MARKER_NAME, ModelNotFoundError
from tests._modal_helpers import generate, import_app, user_class, write_interface

pytest.importorskip("modal")

# Reads a file from its model folder at import time, like a real from_pretrained.
MODEL_INTERFACE = """\
    from pathlib import Path

    GREETING = (Path(get_model_path("acme/greeter")) / "greeting.txt").read_text().strip()


    @expose
    def greet(name: str, excited: bool = False) -> str:
        \"\"\"Say hello with the model's greeting.\"\"\"
        return f"{GREETING}, {name}{'!' if excited else '.'}"


    @expose
    async def model_dir() -> str:
        return get_model_path("acme/greeter")
"""


def _fill(models: Path, model_id: str, *, complete: bool) -> Path:
    folder = models / model_id.replace("/", "--")
    folder.mkdir(parents=True)
    (folder / "greeting.txt").write_text("Hello\n")
    if complete:
        (folder / MARKER_NAME).write_text(model_id)
    return folder


# --------------------------------------------------------------------------- model paths


def test_get_model_path_in_modal_resolves_the_volume_folder(tmp_path: Path) -> None:
    folder = _fill(tmp_path, "google/gemma-2-9b", complete=True)
    assert volume_model_paths(str(tmp_path)).resolve("google/gemma-2-9b") == str(folder)


def test_volume_paths_are_the_documented_model_paths() -> None:
    paths = volume_model_paths()
    assert isinstance(paths, VolumeModelPaths)
    assert (paths.models_dir, paths.require_marker, paths.use_hf_cache) == ("/models", True, False)


def test_missing_marker_fails_clearly_naming_the_download_step(tmp_path: Path) -> None:
    _fill(tmp_path, "google/gemma-2-9b", complete=False)
    with pytest.raises(ModelNotFoundError) as info:
        volume_model_paths(str(tmp_path)).resolve("google/gemma-2-9b")
    message = str(info.value)
    assert "'google/gemma-2-9b'" in message
    assert str(tmp_path / "google--gemma-2-9b") in message
    assert "incomplete" in message and MARKER_NAME in message
    assert "download_models" in message


def test_missing_model_fails_and_never_falls_back_to_the_hf_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A usable copy in the Hugging Face cache must not be picked up inside Modal.
    snapshot = tmp_path / "hf" / "hub" / "models--acme--greeter" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelNotFoundError, match="is not there"):
        volume_model_paths(str(tmp_path / "models")).resolve("acme/greeter")


# --------------------------------------------------------------------------- download


def _fetcher(events: list[str]) -> Fetch:
    def fetch(
        model_id: str,
        folder: Path,
        *,
        revision: str | None,
        patterns: list[str] | None,
        force: bool,
    ) -> None:
        # The marker must not exist while files are still arriving.
        assert not (folder / MARKER_NAME).exists()
        (folder / "weights.bin").write_bytes(b"\0" * 16)
        events.append(f"fetch {model_id} -> {folder.name} rev={revision} force={force}")

    return fetch


def test_download_writes_marker_last_commits_each_and_skips_complete_ones(tmp_path: Path) -> None:
    _fill(tmp_path, "acme/done", complete=True)
    events: list[str] = []
    fetched = download_models(
        ["acme/a", "acme/done", "b", "acme/a"],
        tmp_path,
        commit=lambda: events.append("commit"),
        fetch=_fetcher(events),
    )
    assert fetched == ["acme/a", "b"]
    assert events == [
        "fetch acme/a -> acme--a rev=None force=False",
        "commit",
        "fetch b -> b rev=None force=False",
        "commit",
    ]
    for name in ("acme--a", "b"):
        assert (tmp_path / name / MARKER_NAME).is_file()
        assert (tmp_path / name / "weights.bin").is_file()
    # A second run finds everything complete.
    assert download_models(["acme/a", "b"], tmp_path, fetch=_fetcher(events)) == []


def test_a_new_revision_or_force_fetches_a_complete_model_again(tmp_path: Path) -> None:
    events: list[str] = []
    fetch = _fetcher(events)
    assert download_models(["acme/a"], tmp_path, fetch=fetch) == ["acme/a"]
    # The marker names the revision it holds: pinning another one fetches again ...
    pinned = {"acme/a": "v2"}
    assert download_models(["acme/a"], tmp_path, fetch=fetch, revisions=pinned) == ["acme/a"]
    assert download_models(["acme/a"], tmp_path, fetch=fetch, revisions=pinned) == []
    # ... and so does --force, which also asks the Hub for every file again.
    assert download_models(["acme/a"], tmp_path, fetch=fetch, revisions=pinned, force=True) == [
        "acme/a"
    ]
    assert events == [
        "fetch acme/a -> acme--a rev=None force=False",
        "fetch acme/a -> acme--a rev=v2 force=False",
        "fetch acme/a -> acme--a rev=v2 force=True",
    ]
    assert volume_model_paths(str(tmp_path)).resolve("acme/a") == str(tmp_path / "acme--a")


def test_interrupted_download_leaves_no_marker_and_is_retried(tmp_path: Path) -> None:
    def broken(model_id: str, folder: Path, **_: object) -> None:
        (folder / "part.bin").write_bytes(b"1")
        raise ConnectionError("hub went away")

    with pytest.raises(ConnectionError):
        download_models(["acme/big"], tmp_path, fetch=broken)
    assert not (tmp_path / "acme--big" / MARKER_NAME).exists()
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        volume_model_paths(str(tmp_path)).resolve("acme/big")

    assert download_models(["acme/big"], tmp_path, fetch=_fetcher([])) == ["acme/big"]
    assert (tmp_path / "acme--big" / MARKER_NAME).is_file()


# sentence-transformers/all-MiniLM-L6-v2 as the Hub lists it: the same weights
# in six formats, of which loading needs one.
MINILM_FILES = [
    ".gitattributes",
    "1_Pooling/config.json",
    "README.md",
    "config.json",
    "config_sentence_transformers.json",
    "data_config.json",
    "model.safetensors",
    "modules.json",
    "onnx/model.onnx",
    "onnx/model_O1.onnx",
    "onnx/model_qint8_avx512.onnx",
    "openvino/openvino_model.bin",
    "openvino/openvino_model.xml",
    "pytorch_model.bin",
    "rust_model.ot",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tf_model.h5",
    "tokenizer.json",
    "tokenizer_config.json",
    "train_script.py",
    "vocab.txt",
]


def test_select_model_files_keeps_one_weights_format_and_everything_loading_reads() -> None:
    assert select_model_files(MINILM_FILES) == [
        ".gitattributes",
        "1_Pooling/config.json",
        "README.md",
        "config.json",
        "config_sentence_transformers.json",
        "data_config.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "train_script.py",
        "vocab.txt",
    ]
    # PyTorch weights when there are no safetensors; sharded checkpoints keep their index.
    bin_only = ["config.json", "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "tf_model.h5"]
    assert select_model_files(bin_only) == [
        "config.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",
    ]
    # An unknown layout (GGUF quantisations): everything, unless model_files says which.
    assert select_model_files(["model-q4.gguf", "model-q8.gguf", "README.md"]) is None


class _FakeHub:
    """A Hugging Face Hub on loopback: one public repo, one gated; it logs each path."""

    SHA = "a" * 40
    FILES: ClassVar[dict[str, bytes]] = {
        "config.json": b'{"hidden_size": 8}',
        "model.safetensors": b"S" * 64,
        "pytorch_model.bin": b"B" * 64,
        "onnx/model.onnx": b"O" * 64,
    }

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hub = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                hub.paths.append(self.path)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if "/acme/gated" in path or path.startswith("/acme/gated/"):
                    # What the Hub answers for a gated repo without a token.
                    body = b'{"error": "Access to model acme/gated is restricted."}'
                    self._send(401, body, ("X-Error-Code", "GatedRepo"))
                elif path.startswith("/api/models/acme/m/tree/"):
                    listing = [{"type": "file", "path": k, "size": len(v), "oid": k}
                               for k, v in hub.FILES.items()]
                    self._send(200, json.dumps(listing).encode())
                elif path.startswith("/api/models/acme/m/revision/"):
                    info = {"id": "acme/m", "sha": hub.SHA,
                            "siblings": [{"rfilename": k} for k in hub.FILES]}
                    self._send(200, json.dumps(info).encode())
                elif path.startswith(f"/acme/m/resolve/{hub.SHA}/"):
                    name = path.split("/", 5)[5]
                    headers = [("X-Repo-Commit", hub.SHA), ("ETag", f'"{name}"')]
                    self._send(200, hub.FILES[name], *headers)
                else:
                    self._send(404, b'{"error": "not found"}')

            def _send(self, status: int, body: bytes, *headers: tuple[str, str]) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub() -> Iterator[_FakeHub]:
    hub = _FakeHub()
    try:
        yield hub
    finally:
        hub.close()


def _download_in_subprocess(
    hub: _FakeHub, models: Path, code: str
) -> subprocess.CompletedProcess[str]:
    # huggingface_hub reads HF_ENDPOINT when it is imported: a fresh interpreter.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(models.parent / "hf"))
    program = "from scopegen.modal_runtime import download_models\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True, text=True, cwd=models.parent, env=env, timeout=120,
    )


def test_download_from_the_hub_fetches_only_what_loading_needs(
    fake_hub: _FakeHub, tmp_path: Path
) -> None:
    models = tmp_path / "volume"
    code = f"print(download_models(['acme/m'], {str(models)!r}, revisions={{'acme/m': 'v1'}}))"
    result = _download_in_subprocess(fake_hub, models, code)
    assert result.returncode == 0, result.stderr
    assert "['acme/m']" in result.stdout
    folder = models / "acme--m"
    fetched = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert fetched == ["config.json", "model.safetensors"]  # not the .bin, not onnx/
    assert (folder / MARKER_NAME).read_text() == "acme/m\nv1\n"
    assert any(p.startswith("/api/models/acme/m/revision/v1") for p in fake_hub.paths)
    assert volume_model_paths(str(models)).resolve("acme/m") == str(folder)


def test_a_gated_model_fails_naming_the_model_and_the_hf_token_secret(
    fake_hub: _FakeHub, tmp_path: Path
) -> None:
    models = tmp_path / "volume"
    result = _download_in_subprocess(
        fake_hub, models, f"download_models(['acme/gated'], {str(models)!r})"
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("scopegen.modal_runtime.DownloadRefused:")
    assert "'acme/gated' (HTTP 401)" in last
    assert "HF_TOKEN is not set" in last
    assert "modal secret create huggingface HF_TOKEN=" in last
    assert 'download_secrets = ["huggingface"]' in last
    assert not (models / "acme--gated" / MARKER_NAME).exists()


# --------------------------------------------------------------------------- the ASGI app


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn (lifespan on) on a free port; yield its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up (lifespan failed?)"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not shut down (lifespan shutdown hung?)"


@pytest.fixture
def greeter_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The generated module, with MODELS_DIR pointed at a local stand-in for the volume."""
    interface = write_interface(tmp_path / "greeter", MODEL_INTERFACE, config="concurrency = 2\n")
    module = import_app(generate(interface, tmp_path / "build"))
    models = tmp_path / "volume"
    _fill(models, "acme/greeter", complete=True)
    monkeypatch.setattr(module, "MODELS_DIR", str(models))
    return module


def test_modal_class_enter_and_asgi_app_serve_the_interface_end_to_end(
    greeter_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCOPEGEN_TOKEN", "s3cret")
    server = user_class(greeter_app.Server)()
    server.load()  # @modal.enter
    app = server.web()  # @modal.asgi_app
    assert app is server.asgi
    assert type(app).__name__ == "ScopegenApp"
    # The configuration reaches the server: concurrency = 2, call timeout under Modal's.
    assert app.settings.max_concurrency == 2
    assert app.settings.call_timeout == 590
    assert app.settings.token == "s3cret"

    auth = {"Authorization": "Bearer s3cret"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/v1/call/greet", json={"name": "Ada"}).status_code == 401
        reply = client.post("/v1/call/greet", json={"name": "Ada", "excited": True}, headers=auth)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"result": "Hello, Ada!"}
        where = client.post("/v1/call/model_dir", headers=auth).json()["result"]
        assert where == str(Path(greeter_app.MODELS_DIR) / "acme--greeter")
        manifest = client.get("/v1/functions", headers=auth).json()
        assert manifest["name"] == "greeter"
        assert manifest["models"] == ["acme/greeter"]
        bad = client.post("/v1/call/greet", json={"name": 5}, headers=auth)
        assert bad.status_code == 422


def test_enter_fails_clearly_when_the_volume_lacks_the_model(
    greeter_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-volume"
    _fill(empty, "acme/greeter", complete=False)
    monkeypatch.setattr(greeter_app, "MODELS_DIR", str(empty))
    server = user_class(greeter_app.Server)()
    with pytest.raises(Exception) as info:
        server.load()
    message = str(info.value)
    assert "acme/greeter" in message
    assert "incomplete" in message
    assert "download_models" in message


def test_create_asgi_app_applies_concurrency_and_the_call_timeout(tmp_path: Path) -> None:
    interface = write_interface(
        tmp_path / "slow",
        """\
        import time


        @expose
        def nap(seconds: float) -> float:
            time.sleep(seconds)
            return seconds
        """,
    )
    app = create_asgi_app(
        interface, models_dir=str(tmp_path), max_concurrency=2, call_timeout=1.0
    )

    async def calls() -> tuple[list[httpx.Response], float, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = time.perf_counter()
            pair = await asyncio.gather(
                client.post("/v1/call/nap", json={"seconds": 0.5}),
                client.post("/v1/call/nap", json={"seconds": 0.5}),
            )
            both = time.perf_counter() - started
            slow = await client.post("/v1/call/nap", json={"seconds": 2})
            return list(pair), both, slow

    pair, both, slow = asyncio.run(calls())
    assert [r.json() for r in pair] == [{"result": 0.5}, {"result": 0.5}]
    assert both < 0.9, f"two calls took {both:.2f}s: they did not run side by side"
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "timeout"


def test_hide_tracebacks_config_reaches_the_modal_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interface = write_interface(
        tmp_path / "boom",
        """\
        @expose
        def boom() -> int:
            raise ValueError("secret internals")
        """,
        config="hide_tracebacks = true\n",
    )
    module = import_app(generate(interface, tmp_path / "build"))
    monkeypatch.setattr(module, "MODELS_DIR", str(tmp_path))
    server = user_class(module.Server)()
    server.load()
    assert server.asgi.settings.hide_tracebacks is True
    with serve(server.web()) as url, httpx.Client(base_url=url, timeout=30) as client:
        error = client.post("/v1/call/boom").json()["error"]
    assert error["code"] == "function_error" and error["type"] == "ValueError"
    assert "traceback" not in error


SLOW_INTERFACE = """\
    import threading

    release = threading.Event()


    @expose
    def hang(seconds: float) -> str:
        release.wait(seconds)
        return "done"


    @expose
    def quick() -> str:
        return "quick"
"""


def test_control_routes_never_wait_behind_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # concurrency = 1: the only worker is busy for 3 s, and Modal admits more inputs
    # than that (MAX_INPUTS): /healthz, the manifest and OpenAPI answer at once.
    interface = write_interface(tmp_path / "slow", SLOW_INTERFACE)
    module = import_app(generate(interface, tmp_path / "build"))
    assert module.MAX_INPUTS > module.CONCURRENCY == 1
    monkeypatch.setattr(module, "MODELS_DIR", str(tmp_path))
    server = user_class(module.Server)()
    server.load()
    with serve(server.web()) as url, httpx.Client(base_url=url, timeout=30) as client:
        busy = threading.Thread(
            target=lambda: client.post("/v1/call/hang", json={"seconds": 3.0}), daemon=True
        )
        busy.start()
        time.sleep(0.3)  # the call holds the worker now
        for path in ("/healthz", "/v1/functions", "/openapi.json"):
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            took = time.perf_counter() - started
            assert took < 0.5, f"{path} waited {took:.2f}s behind the call"
        busy.join(timeout=10)


class _ContainerStub:
    """Modal's gRPC stub inside a container, as far as stop_fetching_inputs uses it."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def ContainerStop(self, request: Any, **kwargs: Any) -> None:
        self.requests.append(request)


def test_a_container_whose_workers_are_all_stuck_asks_modal_to_stop_sending_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # modal's own stop_fetching_inputs runs; only its container singleton is stood in
    # for (it exists inside a Modal container only), down to the gRPC stub.
    from types import SimpleNamespace

    from modal._runtime.container_io_manager import _ContainerIOManager

    stub = _ContainerStub()
    container = SimpleNamespace(task_id="ta-stuck", _client=SimpleNamespace(_stub=stub))
    monkeypatch.setattr(_ContainerIOManager, "_singleton", container, raising=False)
    interface = write_interface(tmp_path / "slow", SLOW_INTERFACE)
    app = create_asgi_app(interface, models_dir=str(tmp_path), max_concurrency=1, call_timeout=0.3)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/call/hang", json={"seconds": 2.0}).status_code == 504
        deadline = time.monotonic() + 5
        while not stub.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(r.task_id, r.graceful) for r in stub.requests] == [("ta-stuck", True)]
        # Meanwhile the server still refuses calls it cannot run (Modal drains it).
        assert client.post("/v1/call/quick").status_code == 503
        assert client.get("/healthz").status_code == 503
        # Stuck again later: Modal was already asked once; it is not asked twice.
        time.sleep(1.8)
        assert client.post("/v1/call/hang", json={"seconds": 2.0}).status_code == 504
        time.sleep(0.3)
        assert len(stub.requests) == 1
        time.sleep(1.8)
    assert "asking Modal to send this container no more inputs" in caplog.text


# --------------------------------------------------------------------------- jobs on Modal


class _FakeCall:
    """Modal's cloud side of one function call (spawn / from_id), run in this process.

    What runs is real: the generated ``run_job`` body (``modal_runtime.run_job``) on
    the real app; only Modal's routing of the call to a container is faked.
    """

    calls: ClassVar[dict[str, _FakeCall]] = {}

    def __init__(self, task: asyncio.Task[bytes]) -> None:
        self.object_id = f"fc-{len(self.calls) + 1}"
        self.task = task
        self.cancelled = False
        self.calls[self.object_id] = self
        self.get = type("Get", (), {"aio": self._get})()
        self.cancel = type("Cancel", (), {"aio": self._cancel})()

    async def _get(self, timeout: float | None = None) -> bytes:
        from modal import exception

        if self.cancelled:
            raise exception.InputCancellation("cancelled")
        if not self.task.done():
            raise exception.TimeoutError("not yet")
        return self.task.result()

    async def _cancel(self) -> None:
        self.cancelled = True
        self.task.cancel()


def test_jobs_on_modal_are_function_calls_any_container_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modal

    from scopegen.modal_runtime import ModalJobs, run_job

    interface = write_interface(
        tmp_path / "jobs",
        """\
        import time
        from collections.abc import Iterator


        @expose
        def nap(seconds: float) -> float:
            time.sleep(seconds)
            return seconds


        @expose
        def count(n: int) -> Iterator[int]:
            yield from range(n)
        """,
    )
    spawned: list[tuple[str, bytes]] = []

    async def spawn(function: str, arguments: bytes) -> _FakeCall:
        spawned.append((function, arguments))
        return _FakeCall(asyncio.ensure_future(run_job(app, function, arguments)))

    method = type("Method", (), {"spawn": type("Spawn", (), {"aio": staticmethod(spawn)})()})()
    app = create_asgi_app(interface, models_dir=str(tmp_path), job_method=lambda: method)
    assert isinstance(app.jobs, ModalJobs)
    monkeypatch.setattr(modal.FunctionCall, "from_id", lambda call_id: _FakeCall.calls[call_id])

    async def flow() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            out: dict[str, Any] = {}
            r = await client.post("/v1/jobs/nap", json={"seconds": 0.3})
            out["submitted"] = (r.status_code, r.json()["job"])
            job_id = r.json()["job"]["id"]
            out["running"] = (await client.get(f"/v1/jobs/{job_id}")).json()["job"]
            await asyncio.sleep(0.6)
            out["done"] = (await client.get(f"/v1/jobs/{job_id}")).json()["job"]
            stream_id = (await client.post("/v1/jobs/count", json={"n": 3})).json()["job"]["id"]
            await asyncio.sleep(0.3)
            out["stream"] = (await client.get(f"/v1/jobs/{stream_id}")).json()["job"]
            slow = (await client.post("/v1/jobs/nap", json={"seconds": 5})).json()["job"]["id"]
            await asyncio.sleep(0.05)
            out["cancel"] = (await client.delete(f"/v1/jobs/{slow}")).json()["job"]
            out["after_cancel"] = (await client.get(f"/v1/jobs/{slow}")).json()["job"]
            bad = await client.post("/v1/jobs/nap", json={"seconds": "x"})
            out["bad"] = bad.status_code
            out["unknown"] = (await client.get("/v1/jobs/not-a-call")).status_code
            return out

    out = asyncio.run(flow())
    status, job = out["submitted"]
    assert status == 202 and job["status"] == "queued"
    assert job["id"] == "fc-1.nap" and job["function"] == "nap"
    assert out["running"]["status"] == "running"
    assert out["done"]["status"] == "succeeded" and out["done"]["result"] == 0.3
    assert out["stream"]["status"] == "succeeded" and out["stream"]["result"] == [0, 1, 2]
    assert out["cancel"]["status"] == "cancelled"
    assert out["after_cancel"]["status"] == "cancelled"
    assert out["bad"] == 422 and out["unknown"] == 404
    assert [f for f, _ in spawned] == ["nap", "count", "nap"]  # the 422 spawned nothing
