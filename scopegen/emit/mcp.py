"""``OUT/mcp.json``: a ready ``mcpServers`` entry for one interface.

The entry names environment variables, never their values: the URL comes from
``<PREFIX>_URL`` (the generated client's variable, with the same local
default, or the deployed endpoint that ``scopegen deploy`` recorded) and the
token from ``<PREFIX>_TOKEN``; ``<PREFIX>`` is
``scopegen.protocol.env_prefix(package)``, as for the client itself.
``${VAR:-default}`` is the expansion syntax harnesses such as Claude Code
understand; harnesses that pass args through verbatim still work because
``scopegen mcp`` expands it itself.
"""

from __future__ import annotations

import orjson

from scopegen.protocol import DEFAULT_URL, env_prefix

__all__ = ["mcp_config"]


def mcp_config(interface_name: str, package_name: str, *, default_url: str | None = None) -> str:
    """The JSON text of ``OUT/mcp.json`` (deterministic, ends with a newline).

    ``default_url`` (a deployed endpoint) replaces the local default, as for the client.
    """
    prefix = env_prefix(package_name)
    entry = {
        "command": "scopegen",
        "args": [
            "mcp",
            f"${{{prefix}_URL:-{default_url or DEFAULT_URL}}}",
            "--token-env",
            f"{prefix}_TOKEN",
        ],
    }
    doc = {"mcpServers": {interface_name: entry}}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
