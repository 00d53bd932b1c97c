"""What runs inside the Modal containers, run here.

The ASGI app is built exactly as the generated ``Server`` class builds it: the
class's own ``load`` (``@modal.enter``) and ``web`` (``@modal.asgi_app``)
methods are called on the plain class ``@app.cls`` wrapped, and the object
``web`` returns is served by a real uvicorn, lifespan included.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scopegen.modal_runtime import (
    VolumeModelPaths,
    create_asgi_app,
    download_models,
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


def test_download_writes_marker_last_commits_each_and_skips_complete_ones(tmp_path: Path) -> None:
    _fill(tmp_path, "acme/done", complete=True)
    events: list[str] = []

    def fetch(model_id: str, folder: Path) -> None:
        # The marker must not exist while files are still arriving.
        assert not (folder / MARKER_NAME).exists()
        (folder / "weights.bin").write_bytes(b"\0" * 16)
        events.append(f"fetch {model_id} -> {folder.name}")

    fetched = download_models(
        ["acme/a", "acme/done", "b", "acme/a"],
        tmp_path,
        commit=lambda: events.append("commit"),
        fetch=fetch,
    )
    assert fetched == ["acme/a", "b"]
    assert events == ["fetch acme/a -> acme--a", "commit", "fetch b -> b", "commit"]
    for name in ("acme--a", "b"):
        assert (tmp_path / name / MARKER_NAME).is_file()
        assert (tmp_path / name / "weights.bin").is_file()
    # A second run finds everything complete.
    assert download_models(["acme/a", "b"], tmp_path, fetch=fetch) == []


def test_interrupted_download_leaves_no_marker_and_is_retried(tmp_path: Path) -> None:
    def broken(model_id: str, folder: Path) -> None:
        (folder / "part.bin").write_bytes(b"1")
        raise ConnectionError("hub went away")

    with pytest.raises(ConnectionError):
        download_models(["acme/big"], tmp_path, fetch=broken)
    assert not (tmp_path / "acme--big" / MARKER_NAME).exists()
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        volume_model_paths(str(tmp_path)).resolve("acme/big")

    assert download_models(["acme/big"], tmp_path, fetch=lambda m, f: None) == ["acme/big"]
    assert (tmp_path / "acme--big" / MARKER_NAME).is_file()


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
