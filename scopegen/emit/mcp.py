"""``OUT/mcp.json``: a ready ``mcpServers`` entry for one interface.

The entry names environment variables, never their values: the URL comes from
``<PACKAGE>_URL`` (the generated client's variable, with the same local
default) and the token from ``<PACKAGE>_TOKEN``. ``${VAR:-default}`` is the
expansion syntax harnesses such as Claude Code understand; harnesses that pass
args through verbatim still work because ``scopegen mcp`` expands it itself.
"""

from __future__ import annotations

import re

import orjson

__all__ = ["DEFAULT_URL", "env_prefix", "mcp_config"]

# The generated client's default (DESIGN §5): where `scopegen serve` listens.
DEFAULT_URL = "http://127.0.0.1:8000"


def env_prefix(package_name: str) -> str:
    """``model_tools`` -> ``MODEL_TOOLS``: the prefix of the client's env vars."""
    return re.sub(r"[^0-9A-Za-z]+", "_", package_name).strip("_").upper()


def mcp_config(interface_name: str, package_name: str) -> str:
    """The JSON text of ``OUT/mcp.json`` (deterministic, ends with a newline)."""
    prefix = env_prefix(package_name)
    entry = {
        "command": "scopegen",
        "args": [
            "mcp",
            f"${{{prefix}_URL:-{DEFAULT_URL}}}",
            "--token-env",
            f"{prefix}_TOKEN",
        ],
    }
    doc = {"mcpServers": {interface_name: entry}}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
