"""The stdio MCP server: the SDK's low-level ``Server``, one tool per function.

The low-level API (not FastMCP) lets the manifest's raw JSON Schemas be the
tools' input schemas as they are. Its two majors register handlers
differently, and both are supported (``scopegen.mcp._sdk`` checks which is
installed before this module is imported):

- 2.x takes ``on_list_tools`` / ``on_call_tool`` in the constructor, each
  called with ``(ctx, params)`` and answering a result model;
- 1.x registers through decorators (``server.list_tools()(fn)``), each called
  with plain values.

The MCP types are built with ``model_validate`` from their wire (camelCase)
names, which both majors accept (1.x names its fields that way, 2.x aliases
its snake_case fields so).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import mcp.types as types
import orjson
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from scopegen import __version__
from scopegen.extras import MCP_REQUIREMENT
from scopegen.mcp._remote import BridgeStartError, CallOutcome, Remote
from scopegen.mcp._sdk import installed_sdk_version, sdk_major

__all__ = ["build_server", "serve_stdio"]

# (tool name, arguments, where progress goes: the request's session and progress token)
CallTool = Callable[
    [str, "dict[str, Any] | None", Any, "str | int | None"], Awaitable[types.CallToolResult]
]
_PROGRESS_MESSAGE = 200  # characters of an item shown in its progress notification


def build_server(
    remote: Remote, client: httpx.AsyncClient, *, major: int | None = None
) -> Server[Any]:
    """An MCP server whose tools forward to ``remote`` through ``client``.

    ``major`` is the SDK's major version (default: the installed one's).
    """
    tools = [
        types.Tool.model_validate(
            {
                "name": spec.name,
                "description": spec.description,
                "inputSchema": spec.input_schema,
                "outputSchema": spec.output_schema,
            }
        )
        for spec in remote.tools()
    ]
    names = {tool.name for tool in tools}

    async def call_tool(
        name: str, arguments: dict[str, Any] | None, session: Any, token: str | int | None
    ) -> types.CallToolResult:
        # Input is not validated here: the server does it with strict JSON typing and
        # answers `invalid_arguments` with every detail.
        if name not in names:
            outcome = CallOutcome(
                False, f"unknown_function: {remote.interface_name} has no tool named {name!r}"
            )
        else:
            on_item = None
            if session is not None and token is not None:

                async def on_item(index: int, item: Any) -> None:
                    # One progress notification per item of a streaming function.
                    text = item if isinstance(item, str) else orjson.dumps(item).decode()
                    await session.send_progress_notification(
                        token, float(index + 1), None, text[:_PROGRESS_MESSAGE]
                    )

            outcome = await remote.call(client, name, arguments, on_item)
        return types.CallToolResult.model_validate(
            {
                "content": [{"type": "text", "text": outcome.text}],
                "structuredContent": outcome.structured,
                "isError": not outcome.ok,
            }
        )

    if major is None:
        major = sdk_major(installed_sdk_version() or "")
    name = f"scopegen-{remote.interface_name}"
    instructions = (
        f"Tools of the scopegen interface {remote.interface_name} "
        f"(hash {remote.manifest.get('hash', '?')}) served at {remote.url}. Each tool runs the "
        "remote function of the same name; the server checks arguments against the "
        "tool's input schema and answers errors as 'code (HTTP status): message'."
    )
    if major >= 2:
        return _server_v2(name, instructions, tools, call_tool)
    return _server_v1(name, instructions, tools, call_tool)


def _server_v2(
    name: str, instructions: str, tools: list[types.Tool], call_tool: CallTool
) -> Server[Any]:
    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult.model_validate({"tools": tools})

    async def on_call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        raw = getattr(ctx, "params", None) or {}
        meta = raw.get("_meta") if isinstance(raw, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        return await call_tool(params.name, params.arguments, ctx.session, _token(token))

    # Typed against whichever major mypy sees: the 1.x constructor has no on_* keywords.
    factory: Any = Server
    server: Server[Any] = factory(
        name,
        version=__version__,
        instructions=instructions,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
    return server


def _server_v1(
    name: str, instructions: str, tools: list[types.Tool], call_tool: CallTool
) -> Server[Any]:
    server: Any = Server(name, version=__version__, instructions=instructions)

    async def list_tools() -> list[types.Tool]:
        return tools

    # Registering through the decorators keeps the SDK's plumbing (tool cache, result
    # wrapping); a CallToolResult is passed through as it is.
    async def call_tool_v1(name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        ctx = server.request_context
        meta = getattr(ctx, "meta", None)
        token = getattr(meta, "progressToken", None) if meta is not None else None
        return await call_tool(name, arguments, ctx.session, _token(token))

    server.list_tools()(list_tools)
    server.call_tool(validate_input=False)(call_tool_v1)
    typed: Server[Any] = server
    return typed


def _token(value: object) -> str | int | None:
    # A bool is an int to Python, never a progress token.
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


async def _serve(remote: Remote) -> None:
    async with remote.async_client() as client:
        try:
            server = build_server(remote, client)
        except (AttributeError, TypeError) as exc:
            # A supported major whose low-level API moved again: one line, not a traceback.
            version = installed_sdk_version()
            raise BridgeStartError(
                f"the installed MCP SDK (mcp {version}) has an API this bridge does not know "
                f"({exc}); it was tested on {MCP_REQUIREMENT}"
            ) from exc
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def serve_stdio(remote: Remote) -> int:
    """Serve MCP on stdin/stdout until the harness closes stdin."""
    count = len(remote.manifest["functions"])
    # stdout is the protocol channel: everything for humans goes to stderr.
    sys.stderr.write(
        f"scopegen mcp: {count} tool(s) from {remote.interface_name} "
        f"(hash {remote.manifest.get('hash', '?')}) at {remote.url}\n"
    )
    sys.stderr.flush()
    anyio.run(_serve, remote)
    return 0
