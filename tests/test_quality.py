"""The package itself stays `ruff` and `mypy --strict` clean (generated code is checked
in the client and Modal tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def test_ruff_is_clean_on_package_tests_benchmarks_and_examples() -> None:
    r = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--output-format",
            "concise",
            "scopegen",
            "tests",
            "benchmarks",
            "examples",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "scopegen"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
