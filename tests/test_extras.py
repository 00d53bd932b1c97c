"""The install hints name the same bounds as pyproject.toml's extras."""

from __future__ import annotations

import sys
from pathlib import Path

from scopegen.extras import MCP_REQUIREMENT, MODAL_REQUIREMENT, install_hint

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_match_the_extras_of_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert extras["mcp"] == [MCP_REQUIREMENT]
    assert extras["modal"] == [MODAL_REQUIREMENT]
    # .venv (`make install`: the dev extra) has both SDKs, as the hint says.
    dev = " ".join(extras["dev"])
    assert "mcp>=" in dev
    assert "modal>=" in dev


def test_install_hint_names_the_sdk_not_a_scopegen_extra() -> None:
    hint = install_hint(MODAL_REQUIREMENT)
    assert hint.startswith("pip install 'modal>=1.1.4,<2'")
    assert "scopegen[" not in hint
    assert "make install" in hint
