"""The stdio MCP server: the low-level ``mcp.server.Server`` API, one tool per function.

The low-level API (not FastMCP) lets the manifest's raw JSON Schemas be the
tools' input schemas as they are.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import httpx
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from scopegen import __version__
from scopegen.mcp._remote import CallOutcome, Remote

__all__ = ["build_server", "serve_stdio"]


def build_server(remote: Remote, client: httpx.AsyncClient) -> Server[Any, Any]:
    """An MCP server whose tools forward to ``remote`` through ``client``."""
    tools = [
        types.Tool(
            name=spec.name,
            description=spec.description,
            inputSchema=spec.input_schema,
            outputSchema=spec.output_schema,
        )
        for spec in remote.tools()
    ]
    names = {tool.name for tool in tools}
    manifest = remote.manifest
    server: Server[Any, Any] = Server(
        f"scopegen-{remote.interface_name}",
        version=__version__,
        instructions=(
            f"Tools of the scopegen interface {remote.interface_name} "
            f"(hash {manifest.get('hash', '?')}) served at {remote.url}. Each tool runs the "
            "remote function of the same name; the server checks arguments against the "
            "tool's input schema and answers errors as 'code (HTTP status): message'."
        ),
    )

    async def list_tools() -> list[types.Tool]:
        return tools

    async def call_tool(name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        if name not in names:
            outcome = CallOutcome(
                False, f"unknown_function: {remote.interface_name} has no tool named {name!r}"
            )
        else:
            outcome = await remote.call(client, name, arguments)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.text)],
            structuredContent=outcome.structured,
            isError=not outcome.ok,
        )

    # The SDK's decorators are untyped; registering through them keeps its plumbing
    # (tool cache, result wrapping). Input is not validated here: the server does it
    # with strict JSON typing and answers `invalid_arguments` with every detail.
    server.list_tools()(list_tools)  # type: ignore[no-untyped-call]
    server.call_tool(validate_input=False)(call_tool)
    return server


async def _serve(remote: Remote) -> None:
    async with remote.async_client() as client:
        server = build_server(remote, client)
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
