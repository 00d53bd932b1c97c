"""Which MCP SDK versions the bridge accepts, and the one line it prints otherwise."""

from __future__ import annotations

import pytest

from scopegen.mcp._sdk import sdk_major, sdk_problem


@pytest.mark.parametrize("version", ["1.10.0", "1.30.0", "2.0.0", "2.3.0", "2.3.0rc1", "2.11"])
def test_supported_versions_have_no_problem(version: str) -> None:
    assert sdk_problem(version) is None


@pytest.mark.parametrize("version", ["1.9.4", "0.9.1", "3.0.0", "10.1", "dev"])
def test_unsupported_versions_are_one_line_naming_installed_and_needed(version: str) -> None:
    problem = sdk_problem(version)
    assert problem is not None
    assert "\n" not in problem
    assert f"mcp {version}," in problem
    assert "needs mcp>=1.10,<3" in problem
    # An install that works from anywhere: the SDK is on the index, scopegen is not.
    assert "pip install 'mcp>=1.10,<3'" in problem
    assert "scopegen[" not in problem


def test_a_missing_sdk_says_what_to_install() -> None:
    problem = sdk_problem(None)
    assert problem is not None
    assert problem.startswith("the MCP SDK is not installed, and the bridge needs mcp>=1.10,<3")
    assert "make install" in problem


def test_sdk_major_reads_the_leading_number() -> None:
    assert sdk_major("2.3.0") == 2
    assert sdk_major("1.30.0") == 1
    assert sdk_major("garbage") == -1
