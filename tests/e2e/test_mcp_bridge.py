"""The MCP bridge: `scopegen mcp URL` against a real `scopegen serve`, via the mcp SDK client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
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
)

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from tests._serving import RunningServer, running_server

ROOT = Path(__file__).resolve().parents[2]
INTERFACE = ROOT / "tests" / "interfaces" / "mcp_tools.py"
TOKEN = "mcp-test-token"
STARTUP_TIMEOUT = 60


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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCOPEGEN_", "MCP_TOOLS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _text(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def _session(args: list[str], env: Mapping[str, str]) -> Any:
    """Run ``body(session)`` against ``python -m scopegen ARGS`` over stdio."""

    def run(body: Any) -> Any:
        async def main() -> Any:
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "scopegen", *args], env=dict(env), cwd=ROOT
            )
            with anyio.fail_after(STARTUP_TIMEOUT):
                async with (
                    stdio_client(params) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    return await body(session)

        return anyio.run(main)

    return run


def _bridge(server: RunningServer) -> Any:
    return _session(["mcp", server.url], _child_env(SCOPEGEN_TOKEN=TOKEN))


def _start_failure(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scopegen", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=STARTUP_TIMEOUT,
    )


# --------------------------------------------------------------------------- end to end


def test_tools_mirror_the_manifest_names_descriptions_and_schemas(
    server: RunningServer, manifest: dict[str, Any]
) -> None:
    async def body(session: ClientSession) -> Any:
        return (await session.list_tools()).tools

    tools = _bridge(server)(body)
    functions = manifest["functions"]
    assert [t.name for t in tools] == [f["name"] for f in functions]
    for tool, fn in zip(tools, functions, strict=True):
        # Byte-for-byte the schema the server enforces (with its $defs).
        assert tool.inputSchema == fn["parameters"], tool.name
        assert tool.outputSchema == result_schema(fn["returns"]), tool.name
        if fn["doc"]:
            assert tool.description == fn["doc"]
        else:
            assert tool.description == f"Call {fn['name']} on the scopegen interface mcp_tools."
    measure = next(t for t in tools if t.name == "measure")
    assert "Span" in measure.inputSchema["$defs"]


def test_good_calls_return_the_result_as_text_and_structured_content(
    server: RunningServer,
) -> None:
    async def body(session: ClientSession) -> list[CallToolResult]:
        return [
            await session.call_tool("add", {"a": 2, "b": 40}),
            await session.call_tool("shout", {"text": "hi", "times": 2}),
            await session.call_tool(
                "measure", {"span": {"start": 1, "end": 4}, "spans": [{"start": 0, "end": 2}]}
            ),
            await session.call_tool("slow_echo", {"value": 1.5}),
        ]

    add, shout, measure, echo = _bridge(server)(body)
    for r in (add, shout, measure, echo):
        assert not r.isError, _text(r)
    assert add.structuredContent == {"result": 42}
    assert _text(add) == "42"
    assert shout.structuredContent == {"result": "HI HI"}
    assert _text(shout) == "HI HI"  # a string result reads as itself, not as JSON
    assert measure.structuredContent == {"result": {"length": 3, "extra": 2}}
    assert orjson.loads(_text(measure)) == {"length": 3, "extra": 2}
    assert echo.structuredContent == {"result": 1.5}


def test_bad_arguments_and_raising_functions_are_tool_errors_and_the_bridge_keeps_serving(
    server: RunningServer,
) -> None:
    async def body(session: ClientSession) -> list[CallToolResult]:
        return [
            await session.call_tool("add", {"a": "two"}),
            await session.call_tool("add", {"a": 1, "c": 3}),
            await session.call_tool("fail", {"reason": "no GPU"}),
            await session.call_tool("no_such_tool", {}),
            await session.call_tool("add", {"a": 1}),
        ]

    wrong_type, unexpected, raised, unknown, after = _bridge(server)(body)

    assert wrong_type.isError
    text = _text(wrong_type)
    assert text.startswith("invalid_arguments (HTTP 422): ")
    assert "- a: " in text  # the location of the bad argument
    assert wrong_type.structuredContent is None

    assert unexpected.isError
    assert "invalid_arguments" in _text(unexpected)
    assert "- c: " in _text(unexpected)

    assert raised.isError
    text = _text(raised)
    assert text.startswith("function_error (HTTP 500): refused: no GPU")
    assert "type: RuntimeError" in text
    assert "remote traceback:" in text
    assert 'raise RuntimeError(f"refused: {reason}")' in text

    assert unknown.isError
    assert _text(unknown).startswith("unknown_function")

    # The same bridge process still answers after every kind of failure.
    assert not after.isError
    assert after.structuredContent == {"result": 2}


def test_a_server_that_goes_away_gives_connection_failed_not_a_crashed_bridge() -> None:
    with running_server(INTERFACE) as srv:

        async def body(session: ClientSession) -> list[CallToolResult]:
            before = await session.call_tool("add", {"a": 1})
            srv.proc.terminate()
            srv.proc.wait(timeout=10)
            gone = await session.call_tool("add", {"a": 1})
            tools = await session.list_tools()  # the bridge itself still answers
            assert len(tools.tools) == 5
            return [before, gone]

        before, gone = _session(["mcp", srv.url], _child_env())(body)
    assert before.structuredContent == {"result": 2}
    assert gone.isError
    assert _text(gone).startswith(f"connection_failed: could not connect to {srv.url}")
    assert "tried 3 times" in _text(gone)


def test_the_generated_mcp_json_entry_starts_a_working_bridge(server: RunningServer) -> None:
    """Run the exact args of mcp.json (URL placeholder and all) with its env var names."""
    entry = orjson.loads(mcp_config("mcp_tools", "mcp_tools"))["mcpServers"]["mcp_tools"]
    assert entry["command"] == "scopegen"
    env = _child_env(MCP_TOOLS_URL=server.url, MCP_TOOLS_TOKEN=TOKEN)

    async def body(session: ClientSession) -> CallToolResult:
        return await session.call_tool("add", {"a": 5})

    result = _session(entry["args"], env)(body)
    assert not result.isError, _text(result)
    assert result.structuredContent == {"result": 6}


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
    ]
