"""The generated OUT/modal_app.py: modal 1.x objects that follow the configuration.

Everything here is offline: modal builds its App, Function and Cls objects
locally and only contacts Modal when an app is run or deployed.
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
from scopegen.config import load_config
from scopegen.emit.modal import SCOPEGEN_PACKAGES, emit_modal_app
from tests._modal_helpers import (
    generate,
    import_app,
    load_settings,
    service_function,
    write_interface,
)

pytest.importorskip("modal")

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
    gpu = "h100:2"
    python_version = "3.11"
    python_packages = ["torch==2.5.1", "transformers>=4.44"]
    system_packages = ["ffmpeg"]
    models = ["acme/extra-model", "google/gemma-2-9b"]
    secrets = ["huggingface", "scopegen-token"]
    timeout = 1200
    startup_timeout = 1800
    scaledown_window = 120
    min_containers = 1
    max_containers = 4
    concurrency = 3
    memory_snapshot = true
    proxy_auth = false
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


def test_importing_makes_one_app_and_imports_no_model_stack_nor_the_interface(
    heavy_app: Path,
) -> None:
    # A fresh interpreter, warnings as errors: modal's deprecation warnings fail it too.
    probe = textwrap.dedent(
        f"""
        import gc, importlib.util, json, sys
        import modal
        spec = importlib.util.spec_from_file_location("modal_app", {str(heavy_app)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        apps = [o for o in gc.get_objects() if isinstance(o, modal.App)]
        print(json.dumps({{
            "apps": len(apps),
            "module_apps": [k for k, v in vars(module).items() if isinstance(v, modal.App)],
            "heavy": sorted(m for m in ("torch", "transformers", "interface", "scopegen.server",
                                        "uvicorn") if m in sys.modules),
        }}))
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", probe],
        capture_output=True,
        text=True,
        cwd=heavy_app.parent.parent.parent,  # somewhere else than OUT
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts == {"apps": 1, "module_apps": ["app"], "heavy": []}
    assert not (heavy_app.parent.parent / "tools" / "INTERFACE_WAS_IMPORTED").exists()


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
    info = service_function(module.Server).info()
    assert info.gpus == [("A10", 1)]
    assert info.timeout == 600
    assert info.startup_timeout == 900
    assert info.concurrency_info.max_inputs == 1
    assert info.secrets == []
    assert info.volumes["/models"].name == "tools-models"
    assert info.method_names == ["web"]
    # requires_proxy_auth=True is the default: the endpoint is not public.
    assert info.method_details["web"].unauthenticated is False
    hidden = load_settings(service_function(module.Server))
    if hidden:
        assert hidden["enable_memory_snapshot"] is False
        assert hidden["min_containers"] == 0
        assert hidden["max_containers"] is None
        assert hidden["scaledown_window"] == 300
    assert module.app.name == "tools"


def test_class_gpu_volume_secrets_concurrency_and_scaling_follow_the_configuration(
    configured_app: Path,
) -> None:
    module = import_app(configured_app)
    function = service_function(module.Server)
    info = function.info()
    assert module.app.name == "my-tools"
    assert info.gpus == [("H100", 2)]
    assert info.timeout == 1200
    assert info.startup_timeout == 1800
    assert info.concurrency_info.max_inputs == 3
    assert info.secrets == [
        "modal.Secret.from_name('huggingface')",
        "modal.Secret.from_name('scopegen-token')",
    ]
    assert {path: mount.name for path, mount in info.volumes.items()} == {
        "/models": "my-tools-models"
    }
    assert info.method_details["web"].unauthenticated is True  # proxy_auth = false
    hidden = load_settings(function)
    assert hidden, "modal no longer keeps the autoscaler settings where this test looks"
    assert hidden["enable_memory_snapshot"] is True
    assert hidden["min_containers"] == 1
    assert hidden["max_containers"] == 4
    assert hidden["scaledown_window"] == 120

    # The same values, as written in the source (what a reader of the file sees).
    text = configured_app.read_text()
    for fragment in (
        'gpu="H100:2"',
        "timeout=1200,",
        "startup_timeout=1800,",
        "scaledown_window=120,",
        "min_containers=1,",
        "max_containers=4,",
        "enable_memory_snapshot=True,",
        "@modal.concurrent(max_inputs=3)",
        "max_concurrency=3,",
        "@modal.asgi_app(requires_proxy_auth=False)",
        'modal.Volume.from_name("my-tools-models", create_if_missing=True)',
        'modal.Image.debian_slim(python_version=PYTHON_VERSION)',
        'PYTHON_VERSION = "3.11"',
        '.apt_install("ffmpeg")',
    ):
        assert fragment in text, fragment
    assert module.PYTHON_PACKAGES == ["torch==2.5.1", "transformers>=4.44"]


def test_download_function_runs_on_cpu_with_the_volume_and_secrets(configured_app: Path) -> None:
    module = import_app(configured_app)
    info = module.download_models.info()
    assert info.gpus == []
    assert info.volumes["/models"].name == "my-tools-models"
    assert info.secrets == [
        "modal.Secret.from_name('huggingface')",
        "modal.Secret.from_name('scopegen-token')",
    ]
    assert info.timeout >= 3600


def test_models_found_by_the_analyzer_are_in_the_download_list(
    heavy_app: Path, configured_app: Path
) -> None:
    assert import_app(heavy_app).MODEL_IDS == ("google/gemma-2-9b", "acme/tokenizer")
    # Configured ids are added after the static ones, each id once.
    assert import_app(configured_app).MODEL_IDS == (
        "google/gemma-2-9b",
        "acme/tokenizer",
        "acme/extra-model",
    )


def test_memory_snapshot_adds_a_pre_snapshot_import_step(configured_app: Path) -> None:
    module = import_app(configured_app)
    text = configured_app.read_text()
    assert "@modal.enter(snap=True)" in text
    assert "@modal.enter(snap=False)" in text
    assert module.PRELOAD_MODULES == ("torch", "transformers", "scopegen.server")


def test_no_snapshot_no_snap_methods(heavy_app: Path) -> None:
    text = heavy_app.read_text()
    assert "snap=" not in text
    assert "PRELOAD_MODULES" not in text


# --------------------------------------------------------------------------- the image


def test_image_installs_inferred_packages_and_scopegens_own_dependencies(heavy_app: Path) -> None:
    module = import_app(heavy_app)
    assert module.PYTHON_PACKAGES == ["torch", "transformers", "accelerate"]
    assert list(SCOPEGEN_PACKAGES) == module.SCOPEGEN_PACKAGES
    text = heavy_app.read_text()
    assert '.uv_pip_install(*PYTHON_PACKAGES, *SCOPEGEN_PACKAGES)' in text
    assert '.add_local_python_source("scopegen")' in text
    assert ".add_local_dir(LOCAL_INTERFACE_DIR, REMOTE_INTERFACE_DIR, ignore=IGNORE)" in text


def test_scopegen_packages_match_the_project_dependencies() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # Markers aside: the image is Linux CPython, where platform markers are settled.
    def bare(requirements: list[str]) -> list[str]:
        return [r.split(";")[0].strip() for r in requirements]

    assert bare(list(SCOPEGEN_PACKAGES)) == bare(project["dependencies"])


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


# --------------------------------------------------------------------------- the text


def test_output_is_deterministic_and_has_no_absolute_path(tmp_path: Path) -> None:
    interface = write_interface(tmp_path / "tools", HEAVY_INTERFACE, config=FULL_CONFIG)
    analysis = analyze_file(interface)
    config = load_config(interface)
    image = image_spec(analysis, config, tmp_path / "build")
    first = emit_modal_app(analysis.interface, image, config)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        relative = analyze_file("tools/interface.py")
        again_image = image_spec(relative, config, Path("build"))
        again = emit_modal_app(relative.interface, again_image, config)
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
        text = app_file.read_text()
        for name in DEPRECATED:
            assert name not in text, name


@pytest.mark.e2e
def test_generated_file_passes_ruff_and_mypy_strict(configured_app: Path, heavy_app: Path) -> None:
    bindir = Path(sys.executable).parent
    files = [str(configured_app), str(heavy_app)]
    ruff = subprocess.run(
        [str(bindir / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"), *files],
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    # The configured file has every optional part (apt, snapshot step, secrets).
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(configured_app)],
        capture_output=True,
        text=True,
        cwd=configured_app.parent,
        timeout=300,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
