"""The MCP bridge: `scopegen mcp URL` against a real `scopegen serve`, over raw JSON-RPC.

The harness side is written here, not taken from the SDK: newline-delimited
JSON-RPC on the bridge's stdin/stdout, as a harness speaks it. So the same
test drives the bridge on both SDK majors it supports: the one `make install`
puts in .venv (2.x, also what the `mcp` extra resolves to today) and 1.x in a
venv of its own (scopegen and `mcp>=1.10,<2`, built once per session).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest

from scopegen.emit.mcp import env_prefix, mcp_config
from scopegen.mcp._remote import (
    BridgeStartError,
    error_text,
    expand_env,
    outcome_from_response,
    resolve_url,
    result_schema,
    returns_schema,
)
from tests._serving import RunningServer, running_server
from tests._venvs import make_venv

ROOT = Path(__file__).resolve().parents[2]
INTERFACE = ROOT / "tests" / "interfaces" / "mcp_tools.py"
TOKEN = "mcp-test-token"
STARTUP_TIMEOUT = 60
# Any revision both majors negotiate through the initialize handshake.
PROTOCOL_VERSION = "2025-06-18"


@dataclass(frozen=True)
class SdkEnv:
    """A Python that has scopegen and one MCP SDK; ``major`` is checked, not assumed."""

    python: str
    major: int


def _sdk_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "from importlib.metadata import version; print(version('mcp'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tempfile.gettempdir(),
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def sdk1_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    venv = make_venv(tmp_path_factory.mktemp("mcp1") / "venv", packages=(str(ROOT), "mcp>=1.10,<2"))
    return str(venv.python)


@pytest.fixture(scope="session", params=["dev", "sdk1"])
def sdk(request: pytest.FixtureRequest) -> SdkEnv:
    """Each SDK major the bridge supports: .venv's (2.x) and a 1.x venv."""
    if request.param == "dev":
        env = SdkEnv(sys.executable, 2)
    else:
        env = SdkEnv(request.getfixturevalue("sdk1_python"), 1)
    version = _sdk_version(env.python)
    assert version.split(".")[0] == str(env.major), (request.param, version)
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(INTERFACE, token=TOKEN) as srv:
        yield srv


@pytest.fixture(scope="module")
def manifest(server: RunningServer) -> dict[str, Any]:
    with server.client() as c:
        data: dict[str, Any] = c.get("/v1/functions").json()
    return data


def _child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCOPEGEN_", "MCP_TOOLS_")) and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class RpcError(Exception):
    """A JSON-RPC error answer (not a tool error: those are results with isError)."""


class Harness:
    """The harness side of MCP over stdio: one JSON object per line each way."""

    def __init__(self, python: str, args: list[str], env: Mapping[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [python, "-m", "scopegen", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env),
            # Not the checkout: `-m` would import scopegen from the working folder.
            cwd=tempfile.gettempdir(),
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(b"")

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n")
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send({"method": method, **({"params": params} if params is not None else {})})

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._next_id += 1
        rid = self._next_id
        self._send({"id": rid, "method": method, "params": params or {}})
        while True:
            try:
                line = self._lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no answer to {method}; stderr:\n{self.stderr}") from None
            if not line:
                raise AssertionError(f"the bridge closed stdout; stderr:\n{self.stderr}")
            message = orjson.loads(line)
            if message.get("id") != rid:
                if "id" not in message:
                    self.notifications.append(message)
                continue  # a notification or a log message from the server
            if "error" in message:
                raise RpcError(message["error"])
            return message["result"]

    def initialize(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "scopegen-tests", "version": "0"},
            },
        )
        self.notify("notifications/initialized")
        return result

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.request("tools/list")["tools"]
        return tools

    def call(
        self, name: str, arguments: dict[str, Any], progress_token: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if progress_token is not None:
            params["_meta"] = {"progressToken": progress_token}
        result: dict[str, Any] = self.request("tools/call", params)
        return result

    def close(self) -> int:
        """Close stdin, as a harness does when it is done; the bridge's exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()


@contextlib.contextmanager
def harness(python: str, args: list[str], env: Mapping[str, str]) -> Iterator[Harness]:
    h = Harness(python, args, env)
    try:
        init = h.initialize()
        assert init["serverInfo"]["name"] == "scopegen-mcp_tools", init
        yield h
    finally:
        code = h.close()
    assert code == 0, code


def _bridge(sdk: SdkEnv, server: RunningServer) -> contextlib.AbstractContextManager[Harness]:
    return harness(sdk.python, ["mcp", server.url], _child_env(SCOPEGEN_TOKEN=TOKEN))


def _text(result: dict[str, Any]) -> str:
    assert len(result["content"]) == 1, result
    block = result["content"][0]
    assert block["type"] == "text"
    text: str = block["text"]
    return text


def _start_failure(
    args: list[str], env: Mapping[str, str], python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "scopegen", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=tempfile.gettempdir(),
        timeout=STARTUP_TIMEOUT,
    )


# --------------------------------------------------------------------------- end to end


def test_tools_mirror_the_manifest_names_descriptions_and_schemas(
    sdk: SdkEnv, server: RunningServer, manifest: dict[str, Any]
) -> None:
    with _bridge(sdk, server) as h:
        tools = h.list_tools()
    functions = manifest["functions"]
    assert [t["name"] for t in tools] == [f["name"] for f in functions]
    for tool, fn in zip(tools, functions, strict=True):
        # Byte-for-byte the schema the server enforces (with its $defs).
        assert tool["inputSchema"] == fn["parameters"], tool["name"]
        assert tool["outputSchema"] == result_schema(returns_schema(fn)), tool["name"]
        if fn["doc"]:
            assert tool["description"] == fn["doc"]
        else:
            assert tool["description"] == f"Call {fn['name']} on the scopegen interface mcp_tools."
    measure = next(t for t in tools if t["name"] == "measure")
    assert "Span" in measure["inputSchema"]["$defs"]


def test_good_calls_return_the_result_as_text_and_structured_content(
    sdk: SdkEnv, server: RunningServer
) -> None:
    with _bridge(sdk, server) as h:
        add = h.call("add", {"a": 2, "b": 40})
        shout = h.call("shout", {"text": "hi", "times": 2})
        measure = h.call(
            "measure", {"span": {"start": 1, "end": 4}, "spans": [{"start": 0, "end": 2}]}
        )
        echo = h.call("slow_echo", {"value": 1.5})
    for r in (add, shout, measure, echo):
        assert not r.get("isError"), _text(r)
    assert add["structuredContent"] == {"result": 42}
    assert _text(add) == "42"
    assert shout["structuredContent"] == {"result": "HI HI"}
    assert _text(shout) == "HI HI"  # a string result reads as itself, not as JSON
    assert measure["structuredContent"] == {"result": {"length": 3, "extra": 2}}
    assert orjson.loads(_text(measure)) == {"length": 3, "extra": 2}
    assert echo["structuredContent"] == {"result": 1.5}


def test_a_streaming_tool_sends_progress_per_item_and_returns_the_items(
    sdk: SdkEnv, server: RunningServer
) -> None:
    with _bridge(sdk, server) as h:
        result = h.call("countdown", {"start": 3}, progress_token="tok-7")
        quiet = h.call("countdown", {"start": 2})  # no token: no progress
        tools = {t["name"]: t for t in h.list_tools()}
    assert not result.get("isError"), _text(result)
    assert result["structuredContent"] == {"result": [3, 2, 1]}
    assert orjson.loads(_text(result)) == [3, 2, 1]
    assert quiet["structuredContent"] == {"result": [2, 1]}
    progress = [n["params"] for n in h.notifications if n["method"] == "notifications/progress"]
    assert [(p["progressToken"], p["progress"], p.get("message")) for p in progress] == [
        ("tok-7", 1, "3"),
        ("tok-7", 2, "2"),
        ("tok-7", 3, "1"),
    ]
    schema = tools["countdown"]["outputSchema"]
    assert schema["properties"]["result"] == {"type": "array", "items": {"type": "integer"}}


def test_bad_arguments_and_raising_functions_are_tool_errors_and_the_bridge_keeps_serving(
    sdk: SdkEnv, server: RunningServer
) -> None:
    with _bridge(sdk, server) as h:
        wrong_type = h.call("add", {"a": "two"})
        unexpected = h.call("add", {"a": 1, "c": 3})
        raised = h.call("fail", {"reason": "no GPU"})
        unknown = h.call("no_such_tool", {})
        after = h.call("add", {"a": 1})

    assert wrong_type["isError"]
    text = _text(wrong_type)
    assert text.startswith("invalid_arguments (HTTP 422): ")
    assert "- a: " in text  # the location of the bad argument
    assert wrong_type.get("structuredContent") is None

    assert unexpected["isError"]
    assert "invalid_arguments" in _text(unexpected)
    assert "- c: " in _text(unexpected)

    assert raised["isError"]
    text = _text(raised)
    assert text.startswith("function_error (HTTP 500): refused: no GPU")
    assert "type: RuntimeError" in text
    assert "remote traceback:" in text
    assert 'raise RuntimeError(f"refused: {reason}")' in text

    assert unknown["isError"]
    assert _text(unknown).startswith("unknown_function")

    # The same bridge process still answers after every kind of failure.
    assert not after.get("isError")
    assert after["structuredContent"] == {"result": 2}


def test_a_server_that_goes_away_gives_connection_failed_not_a_crashed_bridge(
    sdk: SdkEnv,
) -> None:
    with running_server(INTERFACE) as srv, harness(sdk.python, ["mcp", srv.url], _child_env()) as h:
        before = h.call("add", {"a": 1})
        srv.proc.terminate()
        srv.proc.wait(timeout=10)
        gone = h.call("add", {"a": 1})
        assert len(h.list_tools()) == 6  # the bridge itself still answers
    assert before["structuredContent"] == {"result": 2}
    assert gone["isError"]
    assert _text(gone).startswith(f"connection_failed: could not connect to {srv.url}")
    assert "tried 3 times" in _text(gone)


def test_the_generated_mcp_json_entry_starts_a_working_bridge(server: RunningServer) -> None:
    """Run the exact args of mcp.json (URL placeholder and all) with its env var names."""
    entry = orjson.loads(mcp_config("mcp_tools", "mcp_tools"))["mcpServers"]["mcp_tools"]
    assert entry["command"] == "scopegen"
    env = _child_env(MCP_TOOLS_URL=server.url, MCP_TOOLS_TOKEN=TOKEN)
    with harness(sys.executable, entry["args"], env) as h:
        result = h.call("add", {"a": 5})
    assert not result.get("isError"), _text(result)
    assert result["structuredContent"] == {"result": 6}


# --------------------------------------------------------------------------- start-up failures


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_url_exits_non_zero_with_a_clear_message() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = _start_failure(["mcp", url], _child_env())
    assert proc.returncode == 1
    assert f"cannot reach the scopegen server at {url}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""  # stdout is the protocol channel


def test_wrong_token_exits_non_zero_naming_unauthorized(server: RunningServer) -> None:
    wrong = "not-the-token-3141"
    proc = _start_failure(["mcp", server.url], _child_env(SCOPEGEN_TOKEN=wrong))
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr
    assert "the token in $SCOPEGEN_TOKEN" in proc.stderr
    assert wrong not in proc.stderr  # never echoes the token
    assert proc.stdout == ""


def test_missing_token_names_the_variable_it_read(server: RunningServer) -> None:
    proc = _start_failure(["mcp", server.url, "--token-env", "MY_TOKEN"], _child_env())
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr
    assert "no token ($MY_TOKEN is not set)" in proc.stderr


def test_a_url_that_is_not_a_scopegen_server_is_refused(server: RunningServer) -> None:
    proc = _start_failure(["mcp", f"{server.url}/elsewhere"], _child_env(SCOPEGEN_TOKEN=TOKEN))
    assert proc.returncode == 1
    assert "answered HTTP 404" in proc.stderr
    assert "is this the base URL of a scopegen server?" in proc.stderr


@pytest.mark.parametrize("version", ["3.0.0", "1.9.4", "0.9.1"])
def test_an_unsupported_sdk_gets_one_line_naming_both_versions(
    version: str, tmp_path: Path
) -> None:
    # Versions that cannot be installed here (3.0 does not exist yet): the bridge reads the
    # version from the package metadata, so a dist-info first on sys.path stands for one.
    info = tmp_path / f"mcp-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mcp\nVersion: {version}\n")
    env = _child_env(PYTHONPATH=str(tmp_path))
    proc = _start_failure(["mcp", "http://127.0.0.1:9"], env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"scopegen mcp: the installed MCP SDK is mcp {version}, ")
    assert "needs mcp>=1.10,<3" in lines[0]
    assert "pip install 'mcp>=1.10,<3'" in lines[0]


def test_a_url_that_is_not_http_is_a_usage_error() -> None:
    proc = _start_failure(["mcp", "localhost:8000"], _child_env())
    assert proc.returncode == 2
    assert "must start with http:// or https://" in proc.stderr


# --------------------------------------------------------------------------- mcp.json


def test_mcp_config_is_deterministic_json_naming_env_vars_only() -> None:
    text = mcp_config("model_tools", "model_tools")
    assert text == mcp_config("model_tools", "model_tools")
    assert text.endswith("\n")
    assert orjson.loads(text) == {
        "mcpServers": {
            "model_tools": {
                "command": "scopegen",
                "args": [
                    "mcp",
                    "${MODEL_TOOLS_URL:-http://127.0.0.1:8000}",
                    "--token-env",
                    "MODEL_TOOLS_TOKEN",
                ],
            }
        }
    }


def test_env_prefix_matches_the_client_convention() -> None:
    assert env_prefix("model_tools") == "MODEL_TOOLS"
    assert env_prefix("my-tools") == "MY_TOOLS"


def test_config_lint_and_build_paths_do_not_import_mcp_and_build_writes_mcp_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        from scopegen.cli import app
        from scopegen.emit.mcp import mcp_config
        mcp_config("mcp_tools", "mcp_tools")
        for argv in (["lint", {str(INTERFACE)!r}], ["schema", {str(INTERFACE)!r}],
                     ["build", {str(INTERFACE)!r}, "-o", {str(out)!r}]):
            try:
                app(argv)
            except SystemExit as exc:
                assert not exc.code, (argv, exc.code)
        loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
        print("LOADED", loaded)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr
    assert (out / "mcp.json").read_text(encoding="utf-8") == mcp_config("mcp_tools", "mcp_tools")


# --------------------------------------------------------------------------- pure helpers


def test_url_placeholders_expand_like_a_harness_would() -> None:
    env = {"PKG_URL": "http://gpu.example:9000"}
    assert expand_env("${PKG_URL:-http://127.0.0.1:8000}", env) == "http://gpu.example:9000"
    assert expand_env("${OTHER:-http://127.0.0.1:8000}", env) == "http://127.0.0.1:8000"
    assert expand_env("$PKG_URL/", env) == "http://gpu.example:9000/"
    with pytest.raises(BridgeStartError, match=r"\$MISSING, which is not set"):
        expand_env("${MISSING}", env)


def test_resolve_url_forgives_a_copied_endpoint_path() -> None:
    assert resolve_url("http://h:1/", {}) == "http://h:1"
    assert resolve_url("http://h:1/v1/functions", {}) == "http://h:1"
    assert resolve_url("https://x.modal.run/v1", {}) == "https://x.modal.run"


def test_error_text_carries_code_message_details_and_traceback() -> None:
    payload = {
        "error": {
            "code": "function_error",
            "message": "boom",
            "type": "ValueError",
            "traceback": "Traceback (most recent call last):\nValueError: boom\n",
        }
    }
    assert error_text(500, payload) == (
        "function_error (HTTP 500): boom\ntype: ValueError\n\nremote traceback:\n"
        "Traceback (most recent call last):\nValueError: boom"
    )
    timeout = {"error": {"code": "timeout", "message": "ran past 1 s"}}
    assert error_text(504, timeout) == "timeout (HTTP 504): ran past 1 s"


def test_a_non_scopegen_answer_is_a_bad_response_error() -> None:
    outcome = outcome_from_response(502, b"<html>Bad Gateway</html>")
    assert not outcome.ok
    assert outcome.text.startswith("bad_response (HTTP 502)")
    assert "Bad Gateway" in outcome.text
    assert not outcome_from_response(200, b'{"answer": 1}').ok


def test_output_schema_wraps_the_return_schema_and_keeps_its_defs() -> None:
    returns = {"$ref": "#/$defs/Span", "$defs": {"Span": {"type": "object"}}}
    assert result_schema(returns) == {
        "type": "object",
        "properties": {"result": {"$ref": "#/$defs/Span"}},
        "required": ["result"],
        "$defs": {"Span": {"type": "object"}},
    }


def test_manifest_is_the_one_the_server_serves(server: RunningServer) -> None:
    # Guards the premise of the schema test above: the manifest comes from the live server.
    r = httpx.get(f"{server.url}/v1/functions", headers=server.headers)
    assert r.status_code == 200
    assert [f["name"] for f in r.json()["functions"]] == [
        "add",
        "shout",
        "measure",
        "fail",
        "slow_echo",
        "countdown",
    ]
