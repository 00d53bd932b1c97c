"""Which ``mcp`` SDK is installed, and whether the bridge runs on it.

Read from the package metadata, without importing the SDK: a version the
bridge does not support gets one line naming both versions, not whatever an
import or a changed API would raise.
"""

from __future__ import annotations

import re
from importlib import metadata

from scopegen.extras import MCP_REQUIREMENT, install_hint

__all__ = ["SUPPORTED_MAJORS", "installed_sdk_version", "sdk_major", "sdk_problem"]

# Major -> the oldest minor of it that works (1.10 brought structured tool output).
SUPPORTED_MAJORS = {1: 10, 2: 0}
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def installed_sdk_version() -> str | None:
    """The installed ``mcp`` distribution's version, ``None`` when there is none."""
    try:
        return metadata.version("mcp")
    except metadata.PackageNotFoundError:
        return None


def sdk_major(version: str) -> int:
    """The major of a version string; ``-1`` when it does not start with ``N.N``."""
    match = _RELEASE.match(version)
    return int(match.group(1)) if match else -1


def sdk_problem(version: str | None) -> str | None:
    """Why the bridge cannot run on SDK ``version`` (one line), or ``None`` if it can."""
    if version is None:
        return (
            f"the MCP SDK is not installed, and the bridge needs {MCP_REQUIREMENT}: "
            f"{install_hint(MCP_REQUIREMENT)}"
        )
    match = _RELEASE.match(version)
    if match:
        major, minor = int(match.group(1)), int(match.group(2))
        if major in SUPPORTED_MAJORS and minor >= SUPPORTED_MAJORS[major]:
            return None
    return (
        f"the installed MCP SDK is mcp {version}, and the bridge needs {MCP_REQUIREMENT}: "
        f"{install_hint(MCP_REQUIREMENT)}"
    )
