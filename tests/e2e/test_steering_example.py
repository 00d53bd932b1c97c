"""examples/steering on CPU: hidden states out and a steering vector in, as tensors.

A real server on the tiny random-weight Gemma2 (``examples/gemma/make_tiny_model.py``)
and the client ``scopegen build`` generates for the example, pip installed into a
fresh venv (it brings numpy and ml_dtypes, never torch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._serving import RunningServer, running_server
from tests._venvs import BASE_PACKAGES, Venv, make_venv

ROOT = Path(__file__).resolve().parents[2]
STEERING = ROOT / "examples" / "steering" / "interface.py"
MAKE_TINY = ROOT / "examples" / "gemma" / "make_tiny_model.py"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
PACKAGE = "steering_example_tools"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    models = tmp_path_factory.mktemp("models")
    made = subprocess.run(
        [sys.executable, str(MAKE_TINY), str(models)], capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stdout + made.stderr
    with running_server(
        STEERING, args=["--models-dir", str(models)], env=OFFLINE, startup_timeout=180
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    out = tmp_path_factory.mktemp("steering-build")
    built = subprocess.run(
        [sys.executable, "-m", "scopegen", "build", STEERING, "-o", out, "--name", PACKAGE],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    venv = make_venv(tmp_path_factory.mktemp("steering-venv") / "venv", BASE_PACKAGES)
    venv.pip("install", "--quiet", str(out / PACKAGE))
    return venv


AGENT = """
import importlib.util, json
import numpy as np
import steering_example_tools as tools
assert importlib.util.find_spec("torch") is None
n = tools.num_layers()
a = tools.hidden_states("hello hi hey", layer=n - 1)
b = tools.hidden_states("The quick brown fox", layer=n - 1)
direction = (a.mean(axis=0) - b.mean(axis=0)).astype(np.float32)
plain = tools.steer("Once upon a time", layer=0, vector=np.zeros_like(direction), max_tokens=5)
again = tools.steer("Once upon a time", layer=0, vector=np.zeros_like(direction), max_tokens=5)
pushed = tools.steer("Once upon a time", layer=0, vector=direction, scale=50.0, max_tokens=5)
try:
    tools.steer("x", layer=0, vector=np.zeros(3, dtype=np.float32))
    wrong = None
except tools.FunctionError as exc:
    wrong = str(exc)
print(json.dumps({
    "n": n, "a": [a.dtype.name, list(a.shape)], "b_tokens": b.shape[0],
    "plain": plain.text, "again": again.text,
    "logits": [type(plain.logits).__name__, plain.logits.dtype.name, list(plain.logits.shape)],
    "same_logits": bool(np.array_equal(plain.logits, again.logits)),
    "moved": float(np.abs(pushed.logits - plain.logits).max()),
    "wrong": wrong,
}))
"""


def test_hidden_states_and_a_steering_vector_through_the_built_client(
    venv: Venv, server: RunningServer
) -> None:
    env = {f"{PACKAGE.upper()}_URL": server.url, f"{PACKAGE.upper()}_TOKEN": server.token or ""}
    got = json.loads(venv.run_python(AGENT, env=env).stdout)
    assert got["n"] == 2
    assert got["a"][0] == "float32" and got["a"][1][1] == 32  # [tokens, hidden_size]
    assert got["a"][1][0] >= 1 and got["b_tokens"] >= 1
    assert got["plain"].startswith("Once upon a time") and got["plain"] == got["again"]
    assert got["logits"] == ["ndarray", "float32", [384]]  # the vocabulary
    assert got["same_logits"]
    assert got["moved"] > 0  # the vector changed what the model computes
    assert got["wrong"] is not None and "vector must have shape (32,)" in got["wrong"]
