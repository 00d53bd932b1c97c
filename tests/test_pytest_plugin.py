"""The pytest plugin: registered by installing scopegen, light to load, one load per session.

Each test runs pytest itself in a fresh folder (no conftest of this repo), as
a researcher's project would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

INTERFACE = """
    from pathlib import Path

    # Counts how often the file runs (a model load, in real life).
    counter = Path(__file__).with_name("loads.txt")
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))


    @expose
    def add(a: int, b: int) -> int:
        return a + b
"""

TESTS = """
    import pytest

    import scopegen.testing


    def test_add(scopegen_load):
        assert scopegen_load("interface.py").add(a=2, b=3) == 5


    def test_true_is_not_an_int(scopegen_load):
        with pytest.raises(scopegen.testing.CallError) as err:
            scopegen_load("interface.py").add(a=True, b=3)
        assert err.value.code == "invalid_arguments"


    def test_shows_the_answer(scopegen_load):
        scopegen_load("interface.py").add(a="x", b=3)
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_fixture_loads_each_file_once_per_session_beside_the_test(tmp_path: Path) -> None:
    project = tmp_path / "experiment"
    project.mkdir()
    (project / "interface.py").write_text(textwrap.dedent(INTERFACE))
    (project / "test_interface.py").write_text(textwrap.dedent(TESTS))
    proc = _pytest(tmp_path)  # run from above: paths are found beside the test file
    out = proc.stdout
    assert "1 failed, 2 passed" in out, out + proc.stderr
    assert (project / "loads.txt").read_text() == "1"
    # The failure reads as the protocol's answer: code, status, which argument and why.
    assert "scopegen.testing.CallError: invalid_arguments (422): invalid arguments for add" in out
    assert "def call(" not in out  # the traceback stops at the test's own line
    assert "a: Input should be a valid integer" in out


def test_loading_the_plugin_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, scopegen.pytest_plugin\n"
        "print([m for m in ('scopegen.server', 'scopegen.testing', 'orjson', 'pydantic', "
        "'uvicorn', 'httpx', 'torch') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(proc.stdout.replace("'", '"')) == [], proc.stderr
