"""The generated OUT/modal_app.py and OUT/modal_download.py: modal objects that follow the
configuration.

Everything here is offline: modal builds its App, Function and Cls objects
locally and only contacts Modal when an app is run or deployed. Each option is
read back from those objects (``FunctionInfo``, the autoscaler settings), not
only from the text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen.analyze import analyze_file
from scopegen.commands.image import image_spec
from scopegen.config import CONTROL_INPUTS, DEFAULT_MAX_CONTAINERS, load_config
from scopegen.emit.modal import (
    DOWNLOAD_PACKAGES,
    SERVER_PACKAGES,
    emit_modal_app,
    emit_modal_download,
)
from tests._modal_helpers import (
    generate,
    import_app,
    load_settings,
    service_function,
    uploaded_files,
    write_interface,
)

pytest.importorskip("modal")

# Offline guard: any attempt to talk to Modal fails fast instead of succeeding.
OFFLINE = {"MODAL_SERVER_URL": "http://127.0.0.1:9", "MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": ""}

ROOT = Path(__file__).resolve().parents[2]

# Loads models at module level and imports the GPU stack: importing the
# generated file must do none of it. It leaves a file behind if it ever runs.
HEAVY_INTERFACE = """\
    from pathlib import Path

    import torch
    import transformers
    from transformers import AutoModel

    Path(__file__).with_name("INTERFACE_WAS_IMPORTED").touch()

    model = AutoModel.from_pretrained(get_model_path("google/gemma-2-9b"))
    tokenizer_path = get_model_path("acme/tokenizer")


    @expose
    def num_layers() -> int:
        return int(model.config.num_hidden_layers)
"""

TINY_INTERFACE = """\
    @expose
    def f() -> int:
        return 1
"""

FULL_CONFIG = """\
    name = "my-tools"
    environment = "staging"
    gpu = ["h100:2", "A100-80GB:2"]
    python_version = "3.11"
    python_packages = ["torch==2.5.1", "transformers>=4.44"]
    system_packages = ["ffmpeg"]
    models = ["acme/extra-model", "google/gemma-2-9b"]
    revisions = {"google/gemma-2-9b" = "a0b1c2d"}
    model_files = ["*.safetensors", "*.json", "tokenizer.model"]
    secrets = ["scopegen-token"]
    download_secrets = ["huggingface"]
    env = {HF_HUB_OFFLINE = "1"}
    timeout = 1200
    startup_timeout = 1800
    scaledown_window = 120
    min_containers = 1
    max_containers = 6
    buffer_containers = 2
    concurrency = 3
    max_inputs = 7
    cpu = [2.0, 4]
    memory = [16384, 32768]
    ephemeral_disk = 102400
    region = ["us-east", "us-west"]
    cloud = "aws"
    memory_snapshot = true
    proxy_auth = false

    [[bucket_mounts]]
    mount_path = "/weights"
    bucket_name = "my-weights"
    key_prefix = "v1/"
    secret = "aws-creds"
"""

# memory_snapshot alone: a CPU snapshot after the imports, the models load after restore.
SNAPSHOT_CONFIG = """\
    memory_snapshot = true
"""


@pytest.fixture
def heavy_app(tmp_path: Path) -> Path:
    interface = write_interface(tmp_path / "heavy" / "tools", HEAVY_INTERFACE)
    return generate(interface, tmp_path / "heavy" / "build")


@pytest.fixture
def configured_app(tmp_path: Path) -> Path:
    folder = tmp_path / "configured" / "tools"
    interface = write_interface(folder, HEAVY_INTERFACE, config=FULL_CONFIG)
    return generate(interface, tmp_path / "configured" / "build")


# --------------------------------------------------------------------------- importing

_PROBE = """
import gc, importlib.util, json, sys
import modal
from tests._modal_helpers import registered
spec = importlib.util.spec_from_file_location("target", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
apps = [o for o in gc.get_objects() if isinstance(o, modal.App)]
functions, classes = registered(module.app)
print(json.dumps({{
    "apps": [a.name for a in apps],
    "functions": functions,
    "classes": classes,
    "cls_objects": sum(isinstance(o, modal.Cls) for o in gc.get_objects()),
    "heavy": sorted(m for m in ("torch", "transformers", "interface", "scopegen.server",
                                "uvicorn", "modal_app") if m in sys.modules),
}}))
"""


def _probe(target: Path) -> dict[str, object]:
    """Import a generated file in a fresh interpreter (warnings as errors); what it created."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _PROBE.format(path=str(target))],
        capture_output=True,
        text=True,
        cwd=ROOT,  # for tests._modal_helpers; OUT is elsewhere
        env={**os.environ, "PYTHONWARNINGS": "error"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    facts: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return facts


def test_importing_makes_one_app_and_imports_no_model_stack_nor_the_interface(
    heavy_app: Path,
) -> None:
    # modal's deprecation warnings fail the probe too.
    assert _probe(heavy_app) == {
        "apps": ["tools"],
        "functions": ["Server.*"],
        "classes": ["Server"],
        "cls_objects": 1,
        "heavy": [],
    }
    assert not (heavy_app.parent.parent / "tools" / "INTERFACE_WAS_IMPORTED").exists()


def test_importing_the_download_target_registers_no_gpu_class(heavy_app: Path) -> None:
    # `modal run` creates every object of the app it imports: here, one CPU function.
    facts = _probe(heavy_app.with_name("modal_download.py"))
    assert facts == {
        "apps": ["tools-download"],
        "functions": ["download_models"],
        "classes": [],
        "cls_objects": 0,
        "heavy": [],
    }
    module = import_app(heavy_app.with_name("modal_download.py"))
    info = module.download_models.info()
    assert info.gpus == []
    assert "torch" not in heavy_app.with_name("modal_download.py").read_text()


def test_interface_path_resolves_relative_to_the_generated_file(heavy_app: Path) -> None:
    module = import_app(heavy_app)
    expected = heavy_app.parent.parent / "tools" / "interface.py"
    assert Path(module.interface_path()).resolve() == expected.resolve()
    assert module.REMOTE_INTERFACE_DIR == "/root/interface"


def test_moving_project_keeps_the_interface_path_working(tmp_path: Path) -> None:
    interface = write_interface(tmp_path / "a" / "tools", TINY_INTERFACE)
    generate(interface, tmp_path / "a" / "build")
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    module = import_app(moved / "build" / "modal_app.py")
    assert Path(module.interface_path()).resolve() == (moved / "tools" / "interface.py").resolve()


# --------------------------------------------------------------------------- configuration


def test_defaults_follow_the_documented_values(heavy_app: Path) -> None:
    module = import_app(heavy_app)
    function = service_function(module.Server)
    info = function.info()
    assert info.gpus == [("A10", 1)]
    assert info.timeout == 600
    assert info.startup_timeout == 900
    # Admitted: one call plus room for the control routes; executed: one.
    assert info.concurrency_info.max_inputs == 1 + CONTROL_INPUTS
    assert info.concurrency_info.target_inputs == 1
    assert module.CONCURRENCY == 1
    assert info.secrets == []
    assert info.volumes["/models"].name == "tools-models"
    assert info.cloud_bucket_mounts == {}
    assert (info.cpu, info.memory_mib, info.ephemeral_disk_mib) == (None, None, None)
    assert (info.regions, info.cloud) == (None, None)
    # The web endpoint, and the method each job runs as (a Modal function call).
    assert sorted(info.method_names) == ["run_job", "web"]
    # requires_proxy_auth=True is the default: the endpoint is not public.
    assert info.method_details["web"].unauthenticated is False
    hidden = load_settings(function)
    assert hidden, "modal no longer keeps the autoscaler settings where this test looks"
    assert hidden["enable_memory_snapshot"] is False
    assert hidden["min_containers"] == 0
    assert hidden["max_containers"] == DEFAULT_MAX_CONTAINERS  # finite by default
    assert hidden["buffer_containers"] is None
    assert hidden["scaledown_window"] == 300
    assert not hidden["experimental_options"]
    assert module.app.name == "tools"


def test_every_option_of_the_class_follows_the_configuration(configured_app: Path) -> None:
    module = import_app(configured_app)
    function = service_function(module.Server)
    info = function.info()
    assert module.app.name == "my-tools"
    assert info.gpus == [("H100", 2), ("A100-80GB", 2)]  # fallbacks, in order
    assert info.timeout == 1200
    assert info.startup_timeout == 1800
    assert (info.concurrency_info.max_inputs, info.concurrency_info.target_inputs) == (7, 3)
    assert info.cpu == (2.0, 4.0)
    assert info.memory_mib == (16384, 32768)
    assert info.ephemeral_disk_mib == 102400
    assert info.regions == ["us-east", "us-west"]
    assert info.cloud == "aws"
    # The server's secrets and env only; the Hugging Face token is the download's alone.
    assert info.secrets == [
        "modal.Secret.from_name('scopegen-token')",
        "Secret.from_dict([HF_HUB_OFFLINE])",
    ]
    assert {path: mount.name for path, mount in info.volumes.items()} == {
        "/models": "my-tools-models"
    }
    bucket = info.cloud_bucket_mounts["/weights"]
    assert (bucket.bucket_name, bucket.key_prefix, bucket.read_only) == ("my-weights", "v1/", True)
    assert info.method_details["web"].unauthenticated is True  # proxy_auth = false
    hidden = load_settings(function)
    assert hidden["enable_memory_snapshot"] is True
    assert hidden["min_containers"] == 1
    assert hidden["max_containers"] == 6
    assert hidden["buffer_containers"] == 2
    assert hidden["scaledown_window"] == 120
    assert module.ENV == {"HF_HUB_OFFLINE": "1"}
    assert module.PYTHON_PACKAGES == ["torch==2.5.1", "transformers>=4.44"]
    text = configured_app.read_text()
    assert 'PYTHON_VERSION = "3.11"' in text
    assert '.apt_install("ffmpeg")' in text
    assert "max_concurrency=CONCURRENCY," in text


def test_gpu_snapshot_loads_the_interface_before_the_snapshot(tmp_path: Path) -> None:
    interface = write_interface(
        tmp_path / "tools", TINY_INTERFACE, config="memory_snapshot = true\ngpu_snapshot = true\n"
    )
    app_file = generate(interface, tmp_path / "build")
    module = import_app(app_file)
    hidden = load_settings(service_function(module.Server))
    # What modal sends to Modal (it turns option values into strings).
    assert hidden["experimental_options"] == {"enable_gpu_snapshot": "True"}
    text = app_file.read_text()
    assert "@modal.enter(snap=True)\n    def load(self)" in text
    assert "def prepare" not in text


def test_the_server_runs_concurrency_calls_and_modal_admits_more(
    configured_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = import_app(configured_app)
    seen: dict[str, object] = {}

    def fake_create_asgi_app(path: Path, **kwargs: object) -> object:
        seen.update(kwargs)
        return object()

    import scopegen.modal_runtime

    monkeypatch.setattr(scopegen.modal_runtime, "create_asgi_app", fake_create_asgi_app)
    from tests._modal_helpers import user_class

    instance = user_class(module.Server)()
    instance.load()
    assert seen["max_concurrency"] == 3  # executed at once
    assert seen["call_timeout"] == 1190
    info = service_function(module.Server).info()
    assert info.concurrency_info.max_inputs == 7  # admitted at once


def test_download_function_runs_on_cpu_with_the_volume_and_its_own_secrets(
    configured_app: Path,
) -> None:
    module = import_app(configured_app.with_name("modal_download.py"))
    info = module.download_models.info()
    assert info.gpus == []
    assert info.cpu == 2.0
    assert info.volumes["/models"].name == "my-tools-models"
    assert info.secrets == ["modal.Secret.from_name('huggingface')"]
    assert info.cloud_bucket_mounts == {}
    assert info.timeout >= 3600
    assert module.REVISIONS == {"google/gemma-2-9b": "a0b1c2d"}
    assert module.MODEL_FILES == ["*.safetensors", "*.json", "tokenizer.model"]
    assert module.app.name == "my-tools-download"


def test_models_found_by_the_analyzer_are_in_the_download_list(
    heavy_app: Path, configured_app: Path
) -> None:
    heavy = import_app(heavy_app.with_name("modal_download.py"))
    assert heavy.MODEL_IDS == ("google/gemma-2-9b", "acme/tokenizer")
    # Configured ids are added after the static ones, each id once.
    assert import_app(configured_app.with_name("modal_download.py")).MODEL_IDS == (
        "google/gemma-2-9b",
        "acme/tokenizer",
        "acme/extra-model",
    )
    assert "MODEL_IDS" not in heavy_app.read_text()  # the server's file does not download


def test_download_cli_takes_force_as_a_flag(heavy_app: Path) -> None:
    # modal's own CLI turns the function's signature into options: `--force` must parse.
    download = heavy_app.with_name("modal_download.py")
    result = subprocess.run(
        [sys.executable, "-m", "modal", "run", f"{download}::download_models", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--force" in result.stdout and "--no-force" in result.stdout


def test_memory_snapshot_adds_a_pre_snapshot_import_step(tmp_path: Path) -> None:
    interface = write_interface(tmp_path / "tools", HEAVY_INTERFACE, config=SNAPSHOT_CONFIG)
    app_file = generate(interface, tmp_path / "build")
    module = import_app(app_file)
    text = app_file.read_text()
    assert "@modal.enter(snap=True)\n    def prepare(self)" in text
    assert "@modal.enter(snap=False)\n    def load(self)" in text
    assert module.PRELOAD_MODULES == ("torch", "transformers", "scopegen.server")


def test_no_snapshot_no_snap_methods(heavy_app: Path) -> None:
    text = heavy_app.read_text()
    assert "snap=" not in text
    assert "PRELOAD_MODULES" not in text


# --------------------------------------------------------------------------- the image


def test_image_installs_inferred_packages_and_the_servers_own_dependencies(
    heavy_app: Path,
) -> None:
    module = import_app(heavy_app)
    # numpy: the server moves tensors through it, and torch's wheels do not pull it in.
    assert module.PYTHON_PACKAGES == ["torch", "transformers", "accelerate", "numpy"]
    assert list(SERVER_PACKAGES) == module.SERVER_PACKAGES
    text = heavy_app.read_text()
    assert ".uv_pip_install(*PYTHON_PACKAGES, *SERVER_PACKAGES)" in text
    assert '.add_local_python_source("scopegen")' in text
    assert ".add_local_dir(LOCAL_INTERFACE_DIR, REMOTE_INTERFACE_DIR, ignore=IGNORE)" in text
    download = heavy_app.with_name("modal_download.py").read_text()
    assert f".uv_pip_install({', '.join(map(repr, DOWNLOAD_PACKAGES))})".replace("'", '"') in (
        download
    )


def test_server_packages_are_project_dependencies_without_the_cli_stack() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {r.split(";")[0].strip() for r in project["dependencies"]}
    # The same bounds as pyproject, and none of what only the CLI uses.
    assert set(SERVER_PACKAGES) <= declared
    names = {re.split(r"[<>=!~ ]", r, maxsplit=1)[0] for r in SERVER_PACKAGES}
    assert names == {"libcst", "pydantic", "orjson"}


def test_the_server_in_the_container_imports_none_of_the_cli_stack(tmp_path: Path) -> None:
    # What the image leaves out must not be imported by the code the container runs:
    # the generated class's load(), then a call through the ASGI app (no uvicorn).
    interface = write_interface(tmp_path / "tools", TINY_INTERFACE)
    app_file = generate(interface, tmp_path / "build")
    probe = textwrap.dedent(
        f"""
        import asyncio, importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("modal_app", {str(app_file)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        server = module.Server._get_user_cls()()
        server.load()
        app = server.web()
        sent = []
        async def call():
            async def receive():
                return {{"type": "http.request", "body": b"{{}}", "more_body": False}}
            async def send(message):
                sent.append(message)
            scope = {{"type": "http", "method": "POST", "path": "/v1/call/f", "headers": []}}
            await app(scope, receive, send)
        asyncio.run(call())
        cli = ("uvicorn", "httptools", "uvloop", "typer", "rich", "click", "httpx")
        print(json.dumps({{"status": sent[0]["status"],
                          "imported": sorted(m for m in cli if m in sys.modules)}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    # modal itself imports rich and click locally; in the container it is Modal's own copy.
    assert facts["status"] == 200
    assert set(facts["imported"]) <= {"rich", "click"}, facts


def test_sklearn_pil_cv2_yaml_sentence_transformers_map_to_distributions(tmp_path: Path) -> None:
    interface = write_interface(
        tmp_path / "tools",
        """\
        import json
        import os.path
        import cv2
        import sklearn.metrics
        import yaml
        from PIL import Image
        from sentence_transformers import SentenceTransformer
        import helpers
        import scopegen


        @expose
        def f() -> int:
            return 1
        """,
    )
    (tmp_path / "tools" / "helpers.py").write_text("X = 1\n")
    module = import_app(generate(interface, tmp_path / "build"))
    assert module.PYTHON_PACKAGES == [
        "opencv-python",
        "scikit-learn",
        "pyyaml",
        "pillow",
        "sentence-transformers",
    ]
    # opencv-python needs libGL on debian_slim.
    text = (tmp_path / "build" / "modal_app.py").read_text()
    assert '.apt_install("libgl1", "libglib2.0-0")' in text


def test_build_output_inside_the_interface_folder_is_not_uploaded(tmp_path: Path) -> None:
    interface = write_interface(tmp_path / "tools", TINY_INTERFACE)
    module = import_app(generate(interface, tmp_path / "tools" / "dist" / "out"))
    assert "dist/out" in module.IGNORE
    assert "**/.*" in module.IGNORE  # .env, .git, .venv never leave the machine


def _folder(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_upload_honours_gitignore_and_upload_ignore(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    _folder(
        repo,
        {
            # The repository's rules: unanchored ones apply at any depth, an anchored
            # one only where it points.
            ".gitignore": "*.ckpt\n/experiments/exp1/scratch/\n/other/\n",
            "experiments/exp1/.gitignore": "data/\nnotebooks/*.ipynb\n!notebooks/keep.ipynb\n",
            "experiments/exp1/helpers.py": "X = 1\n",
            "experiments/exp1/model.ckpt": "weights",
            "experiments/exp1/data/big.bin": "data",
            "experiments/exp1/scratch/tmp.txt": "tmp",
            "experiments/exp1/notebooks/try.ipynb": "{}",
            "experiments/exp1/notebooks/keep.ipynb": "{}",
            "experiments/exp1/configs/a.yaml": "a: 1\n",
            "experiments/exp1/logs/run.log": "log",
            "experiments/exp1/.env": "SECRET=1\n",
        },
    )
    interface = write_interface(
        repo / "experiments" / "exp1", TINY_INTERFACE, config='upload_ignore = ["logs"]\n'
    )
    module = import_app(generate(interface, tmp_path / "build"))
    assert uploaded_files(module.image) == [
        "/root/interface/configs/a.yaml",
        "/root/interface/helpers.py",
        "/root/interface/interface.py",
        "/root/interface/notebooks/keep.ipynb",
        "/root/interface/scopegen.toml",
    ]


def test_upload_include_narrows_the_upload_and_keeps_the_interface(tmp_path: Path) -> None:
    _folder(
        tmp_path / "tools",
        {"helpers.py": "", "weights/small.bin": "w", "data/big.bin": "d", "notes.md": ""},
    )
    interface = write_interface(
        tmp_path / "tools", TINY_INTERFACE, config='upload_include = ["helpers.py", "weights"]\n'
    )
    module = import_app(generate(interface, tmp_path / "build"))
    assert uploaded_files(module.image) == [
        "/root/interface/helpers.py",
        "/root/interface/interface.py",
        "/root/interface/weights/small.bin",
    ]


def test_plain_ignore_patterns_keep_modals_directory_pruning(tmp_path: Path) -> None:
    # Any "!" pattern makes modal walk ignored folders file by file: none without need.
    interface = write_interface(tmp_path / "tools", TINY_INTERFACE)
    module = import_app(generate(interface, tmp_path / "build"))
    assert not any(p.startswith("!") for p in module.IGNORE)


# --------------------------------------------------------------------------- the text


def test_output_is_deterministic_and_has_no_absolute_path(tmp_path: Path) -> None:
    interface = write_interface(tmp_path / "tools", HEAVY_INTERFACE, config=FULL_CONFIG)
    analysis = analyze_file(interface)
    config = load_config(interface)
    image = image_spec(analysis, config, tmp_path / "build")
    first = emit_modal_app(analysis.interface, image, config)
    first += emit_modal_download(analysis.interface, image, config)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        relative = analyze_file("tools/interface.py")
        again_image = image_spec(relative, config, Path("build"))
        again = emit_modal_app(relative.interface, again_image, config)
        again += emit_modal_download(relative.interface, again_image, config)
    finally:
        os.chdir(cwd)
    assert first == again
    assert str(tmp_path) not in first
    assert not re.search(r"""["'](/(home|tmp|Users|work)\b|[A-Za-z]:\\)""", first)


DEPRECATED = (
    "Stub",
    "web_endpoint",
    "keep_warm",
    "concurrency_limit",
    "container_idle_timeout",
    "allow_concurrent_inputs",
    "modal.gpu",
    "modal.Mount",
)


def test_uses_no_deprecated_modal_name(configured_app: Path, heavy_app: Path) -> None:
    for app_file in (configured_app, heavy_app):
        for path in (app_file, app_file.with_name("modal_download.py")):
            text = path.read_text()
            for name in DEPRECATED:
                assert name not in text, name


@pytest.mark.e2e
def test_generated_file_passes_ruff_and_mypy_strict(configured_app: Path, heavy_app: Path) -> None:
    bindir = Path(sys.executable).parent
    apps = (configured_app, heavy_app)
    files = [str(p) for a in apps for p in (a, a.with_name("modal_download.py"))]
    ruff = subprocess.run(
        [str(bindir / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"), *files],
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    # The configured files have every optional part (apt, buckets, env, secrets, fallbacks).
    mypy = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            str(configured_app),
            str(configured_app.with_name("modal_download.py")),
        ],
        capture_output=True,
        text=True,
        cwd=configured_app.parent,
        timeout=300,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
