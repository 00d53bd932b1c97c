"""`scopegen serve`: start-up that fails fast, options, model paths, access log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import pytest

from tests._serving import ServerStartError, running_server

# Every test here starts `scopegen serve` as a real process.
pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parents[1]
IFACES = HERE / "interfaces"


def serve_exits(
    args: Sequence[str], *, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    """Run `scopegen serve ARGS` expecting it to exit by itself; return (code, output, secs)."""
    child_env = {k: v for k, v in os.environ.items() if k != "SCOPEGEN_TOKEN"}
    child_env.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "scopegen", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


def test_lint_errors_stop_serve_before_the_import() -> None:
    code, out, _ = serve_exits([str(IFACES / "server_lint_error.py"), "--port", "0"])
    assert code == 1
    assert "SG001" in out
    # The file imports a module that does not exist: it was never executed.
    assert "ModuleNotFoundError" not in out
    assert "scopegen: serving" not in out


def test_import_exception_exits_fast_with_the_traceback() -> None:
    code, out, secs = serve_exits([str(IFACES / "server_import_error.py"), "--port", "0"])
    assert code == 1
    assert "Traceback (most recent call last)" in out
    assert "RuntimeError: model weights are corrupt (raised at import)" in out
    assert "_load_model()" in out
    assert secs < 20
    # The message is the traceback's last line; the closing line does not repeat it.
    assert out.count("model weights are corrupt (raised at import)") == 2  # source, message
    assert "importing" in out and "failed (traceback above); not serving" in out


def test_missing_file_is_a_usage_error() -> None:
    code, out, _ = serve_exits([str(IFACES / "server_no_such_file.py"), "--port", "0"])
    assert code == 2
    assert "server_no_such_file.py" in out


@pytest.mark.parametrize(
    ("name", "needle"),
    [("server_mismatch.py", "gone"), ("server_hidden.py", "hidden")],
)
def test_runtime_exposure_must_match_the_analysis(name: str, needle: str) -> None:
    code, out, _ = serve_exits([str(IFACES / name), "--port", "0"])
    assert code == 1
    assert "differs from its static analysis" in out
    assert needle in out


def test_non_loopback_host_needs_a_token_or_insecure() -> None:
    code, out, _ = serve_exits(
        [str(IFACES / "server_basic.py"), "--host", "0.0.0.0", "--port", "0"]
    )
    assert code == 2
    assert "--insecure" in out
    assert "SCOPEGEN_TOKEN" in out


def test_insecure_allows_a_non_loopback_bind() -> None:
    with running_server(
        IFACES / "server_basic.py", args=["--host", "0.0.0.0", "--insecure"]
    ) as srv:
        assert srv.url.startswith("http://0.0.0.0:")
        r = httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2})
        assert r.json() == {"result": 3}


def test_a_token_allows_a_non_loopback_bind() -> None:
    with running_server(IFACES / "server_basic.py", token="t", args=["--host", "0.0.0.0"]) as srv:
        assert httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2}).status_code == 401


def test_no_token_means_no_auth_on_loopback() -> None:
    with running_server(IFACES / "server_basic.py") as srv:
        assert httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2}).json() == {"result": 3}
        assert "securitySchemes" not in httpx.get(f"{srv.url}/openapi.json").json()["components"]


def test_reload_start_up_fails_fast_like_serve() -> None:
    # Edits while serving are tests/e2e/test_reload_server.py; start-up is the same as without it.
    code, out, _ = serve_exits([str(IFACES / "server_lint_error.py"), "--port", "0", "--reload"])
    assert code == 1
    assert "SG001" in out and "ModuleNotFoundError" not in out
    code, out, _ = serve_exits([str(IFACES / "server_import_error.py"), "--port", "0", "--reload"])
    assert code == 1
    assert "RuntimeError: model weights are corrupt (raised at import)" in out
    assert 'server_import_error.py", line 10, in <module>' in out


def test_bad_model_option_is_a_usage_error() -> None:
    code, out, _ = serve_exits([str(IFACES / "server_basic.py"), "--model", "no-equals-sign"])
    assert code == 2
    assert "ID=PATH" in out


def test_startup_line_names_interface_and_url() -> None:
    with running_server(IFACES / "server_basic.py", token="t") as srv:
        assert (
            f"scopegen: serving server_basic on {srv.url} (15 functions, token required)" in srv.log
        )


def test_no_access_log_turns_call_lines_off() -> None:
    with running_server(IFACES / "server_basic.py", args=["--no-access-log"]) as srv:
        httpx.post(f"{srv.url}/v1/call/add", json={"a": 1, "b": 2}, headers={"x-request-id": "q1"})
        time.sleep(0.3)  # well past the log's flush interval
        assert "q1" not in srv.log
        assert " call add " not in srv.log


def test_hide_tracebacks_keeps_them_out_of_responses_only() -> None:
    with running_server(IFACES / "server_basic.py", args=["--hide-tracebacks"]) as srv:
        r = httpx.post(f"{srv.url}/v1/call/boom", json={"message": "secret path"})
        err = r.json()["error"]
        assert r.status_code == 500
        assert err == {"code": "function_error", "message": "secret path", "type": "ValueError"}
        srv.wait_for_log("raise ValueError(message)")  # the server's own log keeps it


def test_max_concurrency_runs_sync_calls_in_parallel() -> None:
    with running_server(IFACES / "server_basic.py", args=["--max-concurrency", "4"]) as srv:

        def one(_: int) -> int:
            r = httpx.post(f"{srv.url}/v1/call/sleepy", json={"seconds": 0.5}, timeout=30)
            return r.status_code

        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(one, range(4))) == [200] * 4
        assert time.monotonic() - t0 < 1.6  # serially it would take 2 s


def test_default_concurrency_is_one_call_at_a_time() -> None:
    with running_server(IFACES / "server_basic.py") as srv:

        def one(_: int) -> int:
            r = httpx.post(f"{srv.url}/v1/call/sleepy", json={"seconds": 0.3}, timeout=30)
            return r.status_code

        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            assert list(pool.map(one, range(3))) == [200] * 3
        assert time.monotonic() - t0 >= 0.85


# --------------------------------------------------------------------------- model paths


@pytest.fixture
def no_hf_cache(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "hf-empty"
    empty.mkdir()
    return {"HF_HUB_CACHE": str(empty), "SCOPEGEN_MODELS_DIR": ""}


def test_model_option_feeds_get_model_path(tmp_path: Path, no_hf_cache: dict[str, str]) -> None:
    weights = tmp_path / "tiny"
    weights.mkdir()
    with running_server(
        IFACES / "server_models.py", args=["--model", f"acme/tiny-model={weights}"], env=no_hf_cache
    ) as srv:
        r = httpx.post(f"{srv.url}/v1/call/model_dir")
        assert r.json() == {"result": str(weights)}


def test_models_dir_feeds_get_model_path(tmp_path: Path, no_hf_cache: dict[str, str]) -> None:
    (tmp_path / "acme--tiny-model").mkdir()
    (tmp_path / "acme--other").mkdir()
    with running_server(
        IFACES / "server_models.py", args=["--models-dir", str(tmp_path)], env=no_hf_cache
    ) as srv:
        assert httpx.post(f"{srv.url}/v1/call/model_dir").json() == {
            "result": str(tmp_path / "acme--tiny-model")
        }
        r = httpx.post(f"{srv.url}/v1/call/other_model", json={"model_id": "acme/other"})
        assert r.json() == {"result": str(tmp_path / "acme--other")}
        r = httpx.post(f"{srv.url}/v1/call/other_model", json={"model_id": "acme/missing"})
        err = r.json()["error"]
        assert err["type"] == "scopegen.runtime.ModelNotFoundError"
        assert "acme/missing" in err["message"]


def test_models_dir_from_the_environment(tmp_path: Path, no_hf_cache: dict[str, str]) -> None:
    (tmp_path / "acme--tiny-model").mkdir()
    env = no_hf_cache | {"SCOPEGEN_MODELS_DIR": str(tmp_path)}
    with running_server(IFACES / "server_models.py", env=env) as srv:
        r = httpx.post(f"{srv.url}/v1/call/model_dir")
        assert r.json() == {"result": str(tmp_path / "acme--tiny-model")}


def test_missing_model_fails_startup_naming_the_id(no_hf_cache: dict[str, str]) -> None:
    code, out, _ = serve_exits([str(IFACES / "server_models.py"), "--port", "0"], env=no_hf_cache)
    assert code == 1
    # One line that says where and what to pass; no traceback: the file has no bug.
    line = out.strip().splitlines()[-1]  # after the lint warning about `other_model` (SG011)
    assert "Traceback" not in out
    assert out.count("not found locally") == 1
    assert line.startswith(f"scopegen serve: {IFACES / 'server_models.py'}:4: model ")
    assert "'acme/tiny-model' not found locally" in line
    assert "neither --models-dir nor $SCOPEGEN_MODELS_DIR is set" in line
    assert "--model acme/tiny-model=PATH, or --models-dir DIR" in line
    assert "DIR/acme--tiny-model/" in line
    with (
        pytest.raises(ServerStartError),
        running_server(IFACES / "server_models.py", env=no_hf_cache, startup_timeout=30),
    ):
        pass


# --------------------------------------------------------------------------- real tensors


def test_tensors_in_bare_results_are_sent_as_tensors_and_typed_json_says_how_to_fix() -> None:
    zeros = {"$tensor": {"dtype": "float32", "shape": [3], "data": "AAAAAAAAAAAAAAAA"}}
    with running_server(IFACES / "server_torch.py", startup_timeout=120) as srv:
        r = httpx.post(f"{srv.url}/v1/call/embedding", json={"text": "hi"})
        assert r.json() == {"result": {"text": "hi", "embedding": zeros}}
        r = httpx.post(f"{srv.url}/v1/call/nested_tensor")
        scalar = {"$tensor": {"dtype": "float32", "shape": [], "data": "AACAPw=="}}
        assert r.json() == {"result": [1, {"scores": [0.5, scalar]}]}
        r = httpx.post(f"{srv.url}/v1/call/typed_as_json")
        assert r.status_code == 500
        assert r.json()["error"] == {
            "code": "unserializable_result",
            "message": "result is torch.Tensor; return .tolist()",
        }
        assert httpx.post(f"{srv.url}/v1/call/as_list").json() == {
            "result": {"embedding": [0.0, 0.0, 0.0]}
        }
        # numpy arrays in a bare result are tensors too; numpy scalars are numbers.
        r = httpx.post(f"{srv.url}/v1/call/array")
        values = orjson.loads(r.content)["result"].pop("values")
        assert values["$tensor"]["dtype"] == "int64" and values["$tensor"]["shape"] == [3]
        assert orjson.loads(r.content)["result"] == {"values": values, "mean": 1.5, "count": 3}
