"""The examples: they lint clean, build, configure, and the Gemma one serves on CPU.

The Gemma example is the scoped-sandbox document's reference for a real GPU
deployment; here it runs on CPU with the tiny random-weight stand-in that
``examples/gemma/make_tiny_model.py`` builds offline, and is called through
the client ``scopegen build`` generated for it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scopegen.config import load_config
from tests._serving import RunningServer, running_server
from tests._venvs import Venv, shared_venv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EMBEDDINGS = EXAMPLES / "embeddings" / "interface.py"
GEMMA = EXAMPLES / "gemma" / "interface.py"
STEERING = EXAMPLES / "steering" / "interface.py"
AGENT = EXAMPLES / "agent" / "agent.py"
MAKE_TINY = EXAMPLES / "gemma" / "make_tiny_model.py"
# Unique in the session's shared client venv.
GEMMA_PACKAGE = "gemma_example_tools"
INTERFACES = [EMBEDDINGS, GEMMA, STEERING]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def scopegen(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scopegen", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        **kwargs,
    )


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOPEGEN_")}
    env.update(OFFLINE)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- static


def test_example_interfaces_lint_clean_even_strict() -> None:
    proc = scopegen("lint", "--strict", "--format", "json", *INTERFACES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_lint_walks_examples_folder_and_finds_every_interface() -> None:
    proc = scopegen("lint", "examples")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"({len(INTERFACES)} files)" in proc.stdout
    assert sorted(EXAMPLES.glob("*/interface.py")) == sorted(INTERFACES)


@pytest.mark.parametrize("path", INTERFACES, ids=lambda p: p.parent.name)
def test_example_uses_injected_globals_like_the_seed(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "scopegen" not in imported
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {"expose", "get_model_path"} <= names


@pytest.mark.parametrize(
    ("path", "functions", "model"),
    [
        (
            EMBEDDINGS,
            ["get_model_info", "get_embedding", "compare_texts"],
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        (
            GEMMA,
            ["get_model_info", "generate_text", "compare_texts", "stream_text"],
            "google/gemma-2-9b",
        ),
        (STEERING, ["num_layers", "hidden_states", "steer"], "google/gemma-2-9b"),
    ],
    ids=["embeddings", "gemma", "steering"],
)
def test_schema_lists_example_functions_and_models(
    path: Path, functions: list[str], model: str
) -> None:
    proc = scopegen("schema", path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert [f["name"] for f in manifest["functions"]] == functions
    assert manifest["models"] == [model]


def test_gemma_schema_keeps_the_seed_default_max_tokens_50() -> None:
    manifest = json.loads(scopegen("schema", GEMMA).stdout)
    generate = next(f for f in manifest["functions"] if f["name"] == "generate_text")
    params = generate["parameters"]
    assert params["required"] == ["prompt"]
    assert params["properties"]["max_tokens"]["default"] == 50


def test_example_configs_validate_for_gpu_deployments() -> None:
    embeddings = load_config(EMBEDDINGS)
    assert embeddings.gpu == "T4"
    assert embeddings.all_models([]) == ("sentence-transformers/all-MiniLM-L6-v2",)
    gemma = load_config(GEMMA)
    assert gemma.gpu == "A100"  # the document's SandboxConfig(gpu="A100", ...)
    assert gemma.python_packages == ["torch", "transformers", "accelerate"]
    assert gemma.all_models([]) == ("google/gemma-2-9b",)
    # Gated weights need HF_TOKEN: the download function's, never the server's.
    assert (gemma.download_secrets, gemma.secrets) == (["huggingface"], [])


@pytest.mark.parametrize("path", INTERFACES, ids=lambda p: p.parent.name)
def test_example_builds_deterministically_and_check_passes(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    first = scopegen("build", path, "-o", out, "--name", "model_tools")
    assert first.returncode == 0, first.stderr
    digest = _tree_digest(out)
    check = scopegen("build", path, "-o", out, "--name", "model_tools", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    again = scopegen("build", path, "-o", out, "--name", "model_tools")
    assert again.returncode == 0, again.stderr
    assert _tree_digest(out) == digest
    assert (out / "model_tools" / "pyproject.toml").is_file()
    for name in ("modal_app.py", "modal_download.py"):
        compile((out / name).read_text(encoding="utf-8"), name, "exec")


def test_gemma_deploy_dry_run_plans_a100_app_with_model_download(tmp_path: Path) -> None:
    proc = scopegen("deploy", GEMMA, "-o", tmp_path, "--dry-run", env=env_with())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run --detach" in proc.stdout
    assert "modal_download.py::download_models" in proc.stdout
    assert "modal deploy" in proc.stdout
    app = (tmp_path / "modal_app.py").read_text(encoding="utf-8")
    assert 'gpu="A100"' in app
    assert "gemma-2-9b" in app
    download = (tmp_path / "modal_download.py").read_text(encoding="utf-8")
    assert '"google/gemma-2-9b"' in download
    assert 'modal.Secret.from_name("huggingface")' in download
    assert "huggingface" not in app  # the token stays with the download


def test_pre_commit_hooks_manifest_declares_scopegen_lint() -> None:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    by_id = {h["id"]: h for h in hooks}
    lint = by_id["scopegen-lint"]
    assert lint["entry"] == "scopegen lint"
    assert lint["language"] == "python"
    files = re.compile(lint["files"])
    for name in ("interface.py", "experiments/x/interface.py", "a/gemma_interface.py"):
        assert files.search(name), name
    for name in ("interfaces.py", "a/myinterface.py", "interface.pyi"):
        assert not files.search(name), name
    assert by_id["scopegen-build-check"]["entry"] == "scopegen build --check"


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- tiny gemma


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    proc = subprocess.run(
        [sys.executable, str(MAKE_TINY), str(models)],
        capture_output=True,
        text=True,
        env=env_with(),
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return models


def test_make_tiny_model_writes_gemma2_in_models_dir_layout(tiny_models: Path) -> None:
    folder = tiny_models / "google--gemma-2-9b"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "gemma2"
    assert config["num_hidden_layers"] == 2
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name


def test_make_tiny_model_is_reproducible(tiny_models: Path, tmp_path: Path) -> None:
    # In-process this time (the fixture ran the script's command line).
    spec = importlib.util.spec_from_file_location("make_tiny_model", MAKE_TINY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    b = module.make_tiny_model(tmp_path)
    a = tiny_models / "google--gemma-2-9b"
    assert b == tmp_path / "google--gemma-2-9b"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def gemma_client(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the client ``scopegen build`` generated, pip installed."""
    out = tmp_path_factory.mktemp("gemma-build")
    proc = scopegen("build", GEMMA, "-o", out, "--name", GEMMA_PACKAGE)
    assert proc.returncode == 0, proc.stderr
    venv = shared_venv(tmp_path_factory)
    venv.install(out / GEMMA_PACKAGE)
    return venv


@pytest.fixture(scope="module")
def gemma_server(tiny_models: Path) -> Iterator[RunningServer]:
    with running_server(
        GEMMA,
        token="t0k-gemma",
        args=["--models-dir", str(tiny_models)],
        env=OFFLINE,
        startup_timeout=180,
    ) as server:
        yield server


def _run_client(
    venv: Venv, server: RunningServer, code: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = venv.env(
        {f"{GEMMA_PACKAGE.upper()}_URL": server.url, f"{GEMMA_PACKAGE.upper()}_TOKEN": "t0k-gemma"}
    )
    return subprocess.run(
        [str(venv.python), *(["-c", code] if code else []), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv.root,
        check=False,
        timeout=120,
    )


CALLS = """
import json
import gemma_example_tools as gemma_tools
info = gemma_tools.get_model_info()
gen = gemma_tools.generate_text("Once upon a time", max_tokens=8)
gen_default = gemma_tools.generate_text("hello")
same = gemma_tools.compare_texts("hello", "hello")
other = gemma_tools.compare_texts("hello", "The quick brown fox jumps over the lazy dog.")
with gemma_tools.Client(token="wrong") as bad:
    try:
        bad.get_model_info()
        denied = None
    except gemma_tools.Unauthorized as exc:
        denied = exc.code
print(json.dumps({"info": info, "gen": gen, "gen_default": gen_default,
                  "same": same, "other": other, "denied": denied}))
"""


def test_gemma_example_on_cpu_through_built_client(
    gemma_client: Venv, gemma_server: RunningServer
) -> None:
    proc = _run_client(gemma_client, gemma_server, CALLS)
    assert proc.returncode == 0, proc.stderr + gemma_server.log
    got = json.loads(proc.stdout)
    assert got["info"] == {"num_layers": 2, "hidden_size": 32, "vocab_size": 384}
    assert got["gen"]["prompt"] == "Once upon a time"
    assert got["gen"]["generated"].startswith("Once upon a time")
    assert len(got["gen"]["generated"]) > len("Once upon a time")
    assert got["gen_default"]["generated"].startswith("hello")
    assert got["same"]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert got["other"]["similarity"] < 0.999
    assert got["denied"] == "unauthorized"


STREAM = """
import json, time
import gemma_example_tools as gemma_tools
whole = gemma_tools.generate_text("Once upon a time", max_tokens=8)["generated"]
t0 = time.monotonic()
pieces = []
for piece in gemma_tools.stream_text("Once upon a time", max_tokens=8):
    pieces.append(piece)
with gemma_tools.Client() as c:
    with c.stream_text("hello", max_tokens=50) as stream:
        first = next(stream)
print(json.dumps({"whole": whole, "pieces": pieces, "first": first}))
"""


def test_gemma_streams_tokens_through_the_built_client(
    gemma_client: Venv, gemma_server: RunningServer
) -> None:
    proc = _run_client(gemma_client, gemma_server, STREAM)
    assert proc.returncode == 0, proc.stderr + gemma_server.log
    got = json.loads(proc.stdout)
    assert 1 < len(got["pieces"]) <= 8  # one piece per decoded token
    # Greedy both ways: the pieces put together are generate_text's continuation.
    assert "Once upon a time" + "".join(got["pieces"]) == got["whole"]
    assert isinstance(got["first"], str) and got["first"]


def test_agent_script_generates_text_with_gemma_client(
    gemma_client: Venv, gemma_server: RunningServer
) -> None:
    proc = _run_client(gemma_client, gemma_server, "", str(AGENT), "--package", GEMMA_PACKAGE)
    assert proc.returncode == 0, proc.stderr + gemma_server.log
    out = proc.stdout
    assert "1. get_model_info() -> " in out and "num_layers=2" in out
    assert "2. generate_text('Once upon a time', max_tokens=20) -> " in out
    assert "3. compare_texts('hello', 'hi') -> " in out
    assert "4. submitted 5 compare_texts jobs" in out
    assert "'goodbye': similarity " in out


# --------------------------------------------------------------------------- make demo


def test_demo_runs_every_step_and_stops_its_server(tmp_path: Path) -> None:
    """``make demo`` end to end (into a temporary work dir instead of .demo/)."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env_with(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    steps = re.findall(r"^\[\s*(\d+)/(\d+)\] .* ok +\d+\.\ds", out, re.M)
    assert [int(i) for i, _ in steps] == list(range(1, 11))
    close = re.search(r"compare_texts\('hello', 'hi'\) -> Similarity\(.*similarity=([\d.]+)\)", out)
    assert close is not None and 0.7 < float(close.group(1)) < 0.9, out  # real MiniLM: 0.807
    assert "384 floats, L2 norm 1.000000" in out
    assert "stopped cleanly" in out
    assert re.search(r"all steps passed in \d+\.\ds", out)
    started = re.search(r"start scopegen serve .* pid (\d+)", out)
    assert started is not None
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(int(started.group(1)), 0)


# --------------------------------------------------------------------------- from Python

EXPERIMENT = EXAMPLES / "agent" / "experiment.py"


def test_experiment_script_does_the_whole_flow_from_python(
    tiny_models: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``examples/agent/experiment.py``: serve, build, install, MCP config, the agent's calls."""
    workspace = shared_venv(tmp_path_factory)  # an existing venv: install adds the client
    args = ["--interface", GEMMA, "--models-dir", tiny_models, "--workdir", tmp_path]
    args += ["--package", "gemma_experiment_tools", "--workspace", workspace.root]
    proc = subprocess.run(
        [sys.executable, str(EXPERIMENT), *map(str, args)],
        capture_output=True,
        text=True,
        env=env_with(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    served = re.search(r"^1\. serving gemma on (http://\S+)$", out, re.M)
    assert served is not None, out
    assert "agent: using gemma_experiment_tools from " + str(workspace.root) in out
    assert "1. get_model_info() -> " in out and "num_layers=2" in out
    assert "2. generate_text('Once upon a time', max_tokens=20) -> " in out
    assert "3. compare_texts('hello', 'hi') -> " in out
    config = json.loads((tmp_path / "mcp.json").read_text(encoding="utf-8"))
    entry = config["mcpServers"]["gemma_experiment_tools"]
    assert entry["args"][:4] == ["-m", "scopegen", "mcp", served.group(1)]
    assert "6. stopped the server" in out
    with pytest.raises(httpx.ConnectError):  # the port is closed once the script is done
        httpx.get(f"{served.group(1)}/healthz", timeout=5)
