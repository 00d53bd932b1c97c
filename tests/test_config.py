"""[tool.scopegen] / scopegen.toml: where it is found, what it accepts, how it refuses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scopegen.config import (
    DEFAULT_MAX_CONTAINERS,
    GPU_TYPES,
    BucketMount,
    ConfigError,
    ScopegenConfig,
    find_config_file,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parent.parent

# Every key, exactly: the README's table names each one (a test below checks).
KEYS = {
    "name",
    "environment",
    "gpu",
    "python_version",
    "python_packages",
    "system_packages",
    "models",
    "revisions",
    "model_files",
    "secrets",
    "download_secrets",
    "env",
    "timeout",
    "startup_timeout",
    "scaledown_window",
    "min_containers",
    "max_containers",
    "buffer_containers",
    "concurrency",
    "max_inputs",
    "cpu",
    "memory",
    "ephemeral_disk",
    "region",
    "cloud",
    "bucket_mounts",
    "memory_snapshot",
    "gpu_snapshot",
    "upload_include",
    "upload_ignore",
    "proxy_auth",
    "hide_tracebacks",
}

INTERFACE = "@expose\ndef f() -> int:\n    return 1\n"


def _interface(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "interface.py"
    path.write_text(INTERFACE)
    return path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


# --------------------------------------------------------------------------- the keys


def test_accepts_exactly_the_documented_keys() -> None:
    assert set(ScopegenConfig.model_fields) == KEYS


def test_the_readme_table_names_every_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") : readme.index("## Deploying to Modal")]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")}
    assert rows == KEYS
    bucket_rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines()
                   if line.startswith("| `bucket_mounts.")}
    assert bucket_rows == set()  # nested keys are listed in their own table below
    for field in BucketMount.model_fields:
        assert f"`{field}`" in section, field


def test_every_key_set_at_once() -> None:
    config = parse_config(
        {
            "name": "tools",
            "gpu": "A100-80GB:4",
            "python_version": "3.11",
            "python_packages": ["torch==2.5.1"],
            "system_packages": ["ffmpeg", "libsndfile1"],
            "models": ["google/gemma-2-9b", "gpt2"],
            "secrets": ["huggingface"],
            "timeout": 60,
            "startup_timeout": 120,
            "scaledown_window": 2,
            "min_containers": 1,
            "max_containers": 1,
            "concurrency": 8,
            "memory_snapshot": True,
            "proxy_auth": False,
            "environment": "staging",
            "revisions": {"gpt2": "main"},
            "model_files": ["*.safetensors", "*.json"],
            "download_secrets": ["huggingface"],
            "env": {"HF_HUB_OFFLINE": "1"},
            "buffer_containers": 1,
            "max_inputs": 12,
            "cpu": [2, 4.5],
            "memory": 16384,
            "ephemeral_disk": 51200,
            "region": "us-east",
            "cloud": "gcp",
            "bucket_mounts": [{"mount_path": "/weights", "bucket_name": "w", "secret": "aws"}],
            "gpu_snapshot": True,
            "upload_include": ["*.py", "weights/**"],
            "upload_ignore": ["weights/old/**"],
            "hide_tracebacks": True,
        }
    )
    assert config.gpu == "A100-80GB:4"
    assert config.models == ["google/gemma-2-9b", "gpt2"]
    assert (config.min_containers, config.max_containers) == (1, 1)
    assert config.cpu == [2.0, 4.5]
    assert config.bucket_mounts[0].read_only is True  # read-only unless asked
    assert config.admitted_inputs == 12


def test_gpu_fallback_list_is_normalised_in_order() -> None:
    config = parse_config({"gpu": ["h100", "a100-80gb", "l40s:2"]})
    assert config.gpu == ["H100", "A100-80GB", "L40S:2"]
    assert config.gpus == ["H100", "A100-80GB", "L40S:2"]
    assert parse_config({"gpu": ["t4"]}).gpu == "T4"  # a list of one is that GPU
    assert parse_config({"gpu": "t4"}).gpus == ["T4"]


def test_max_containers_and_max_inputs_have_finite_defaults() -> None:
    assert ScopegenConfig().container_limit == DEFAULT_MAX_CONTAINERS
    # Never below min_containers when only that is set.
    assert parse_config({"min_containers": 9}).container_limit == 9
    assert parse_config({"max_containers": 20}).container_limit == 20
    assert parse_config({"concurrency": 3}).admitted_inputs > 3


def test_defaults() -> None:
    config = ScopegenConfig()
    assert config.gpu == "A10"
    assert config.python_packages is None  # inferred from the imports
    assert config.proxy_auth is True
    assert config.concurrency == 1
    assert config.max_containers is None  # container_limit: DEFAULT_MAX_CONTAINERS
    assert config.secrets == config.download_secrets == []
    assert config.python_version == "3.12"
    assert config.app_name("model_tools") == "model-tools"
    assert config.volume_name("model_tools") == "model-tools-models"


@pytest.mark.parametrize("gpu", [*GPU_TYPES, "a10g", "h100:8", "T4:1", "L40S:2", "H100!:2"])
def test_every_modal_gpu_type_with_optional_count(gpu: str) -> None:
    assert parse_config({"gpu": gpu}).gpu.upper().removesuffix(":1") == gpu.upper().removesuffix(
        ":1"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"gpu": "A11"}, ['gpu = "A11"', "not a Modal GPU type", "T4", "H100!", ":N"]),
        ({"gpu": "H100:9"}, ['gpu = "H100:9"', "1 to 8"]),
        ({"gpu": "A10:5"}, ['gpu = "A10:5"', "A10 machines have at most 4 GPUs"]),
        ({"gpu": "a10g:8"}, ["A10G machines have at most 4 GPUs"]),
        ({"gpu": []}, ["gpu = []", "empty GPU list"]),
        ({"gpu": ["H100", "h100"]}, ["listed twice"]),
        ({"gpu": ["H100", 3]}, ["a list of GPU types"]),
        ({"gpu": ["H100", "X1"]}, ['gpu = ["H100", "X1"]', "not a Modal GPU type"]),
        ({"python_version": "3.10"}, ['python_version = "3.10"', "end-of-life", "modal 1.7"]),
        ({"cpu": 0}, ["cpu = 0", "positive number of cores"]),
        ({"cpu": [4, 2]}, ["cpu = [4, 2]", "limit (2) is below the request (4)"]),
        ({"memory": 1.5}, ["memory = 1.5", "MiB"]),
        ({"ephemeral_disk": 0}, ["ephemeral_disk = 0", "from 1 to 3145728"]),
        ({"region": "US East"}, ["region", "not a Modal region"]),
        ({"cloud": "azure"}, ['cloud = "azure"', "aws, gcp, oci, auto"]),
        ({"env": {"HF_TOKEN": "hf_abc"}}, ["HF_TOKEN is a credential", "modal secret create"]),
        ({"env": {"1X": "a"}}, ["not an environment variable name"]),
        ({"max_inputs": 2, "concurrency": 2}, ["max_inputs (2) must be above concurrency (2)"]),
        ({"gpu_snapshot": True}, ["gpu_snapshot = true needs memory_snapshot = true"]),
        ({"environment": "en-x"}, ["not a Modal environment name"]),
        ({"revisions": {"gpt2": "a b"}}, ["revisions.gpt2", "not a Hugging Face revision"]),
        ({"upload_ignore": ["../up"]}, ["relative to the interface's folder"]),
        ({"upload_include": "*.py"}, ["upload_include", "a list of strings"]),
        (
            {"bucket_mounts": [{"mount_path": "/models", "bucket_name": "b"}]},
            ["bucket_mounts[0].mount_path", "scopegen's own"],
        ),
        (
            {"bucket_mounts": [{"mount_path": "/w", "bucket": "b"}]},
            ["bucket_mounts[0].bucket: unknown key", "did you mean 'bucket_name'?"],
        ),
        (
            {"bucket_mounts": [{"mount_path": "/w", "bucket_name": "b", "key_prefix": "v1"}]},
            ["key prefix ends with '/'"],
        ),
        ({"bucket_mounts": {"mount_path": "/w"}}, ["a list of [[bucket_mounts]] tables"]),
        ({"gpu": "H100:x"}, ['gpu = "H100:x"', "bad GPU count"]),
        ({"gpus": "A10"}, ["gpus: unknown key", "did you mean 'gpu'?", "Allowed keys: name, gpu"]),
        ({"timeout": "600"}, ['timeout = "600"', "expected an integer"]),
        ({"timeout": True}, ["timeout = true", "expected an integer"]),
        ({"timeout": 0}, ["timeout = 0", "from 1 to 86400"]),
        ({"scaledown_window": 7200}, ["scaledown_window = 7200", "from 2 to 3600"]),
        ({"concurrency": 2.5}, ["concurrency = 2.5", "expected an integer"]),
        ({"max_containers": 0}, ["max_containers = 0", "from 1 to 1000"]),
        (
            {"min_containers": 3, "max_containers": 2},
            ["max_containers (2) is below min_containers (3)"],
        ),
        ({"memory_snapshot": "yes"}, ['memory_snapshot = "yes"', "true or false"]),
        ({"proxy_auth": 1}, ["proxy_auth = 1", "true or false"]),
        ({"python_version": "3.9"}, ['python_version = "3.9"', "3.11, 3.12, 3.13, 3.14"]),
        ({"python_packages": "torch"}, ['python_packages = "torch"', "a list of strings"]),
        (
            {"python_packages": ["torch", "--pre"]},
            ['python_packages[1] = "--pre"', "pip requirement"],
        ),
        ({"system_packages": ["lib gl"]}, ['system_packages[0] = "lib gl"', "apt package"]),
        ({"models": ["org/a", "../etc"]}, ['models[1] = "../etc"', "'org/name'"]),
        ({"secrets": ["my secret"]}, ['secrets[0] = "my secret"', "Modal secret name"]),
        ({"name": "my app"}, ['name = "my app"', "Modal app name", "letters, digits"]),
        ({"name": "x" * 60}, ["name = ", "at most 56 characters"]),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(
    data: dict[str, object], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message
    assert "pydantic" not in message.lower()  # no library jargon or error URLs
    assert "hf_abc" not in message  # a credential put in env by mistake is not echoed


def test_several_errors_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"gpu": "X", "timeout": -1, "typo": 1})
    message = str(info.value)
    assert 'gpu = "X"' in message and "timeout = -1" in message and "typo: unknown key" in message


# --------------------------------------------------------------------------- finding it


def test_scopegen_toml_beside_the_interface(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "tools" / "scopegen.toml", 'gpu = "T4"\n')
    _write(tmp_path / "pyproject.toml", '[tool.scopegen]\ngpu = "H100"\n')
    assert find_config_file(interface) == tmp_path / "tools" / "scopegen.toml"
    assert load_config(interface).gpu == "T4"


def test_nearest_pyproject_tool_scopegen_table(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "src" / "deep" / "tools")
    _write(
        tmp_path / "pyproject.toml",
        """\
        [project]
        name = "research"

        [tool.scopegen]
        gpu = "L40S"
        secrets = ["huggingface"]
        """,
    )
    config = load_config(interface)
    assert (config.gpu, config.secrets) == ("L40S", ["huggingface"])


def test_nearest_pyproject_without_the_table_means_defaults(tmp_path: Path) -> None:
    # The nearest pyproject.toml marks the project: a parent's table does not apply.
    interface = _interface(tmp_path / "inner" / "tools")
    _write(tmp_path / "inner" / "pyproject.toml", '[project]\nname = "inner"\n')
    _write(tmp_path / "pyproject.toml", '[tool.scopegen]\ngpu = "H100"\n')
    assert load_config(interface) == ScopegenConfig()


def test_no_configuration_at_all_means_defaults(tmp_path: Path) -> None:
    assert load_config(_interface(tmp_path / "tools")) == ScopegenConfig()


def test_scopegen_toml_may_use_a_tool_scopegen_table(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "tools" / "scopegen.toml", '[tool.scopegen]\ngpu = "L4"\n')
    assert load_config(interface).gpu == "L4"


def test_scopegen_toml_cannot_mix_both_styles(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "tools" / "scopegen.toml", 'gpu = "T4"\n[tool.scopegen]\ngpu = "L4"\n')
    with pytest.raises(ConfigError, match="one or the other"):
        load_config(interface)


def test_bad_value_message_names_the_file(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "pyproject.toml", '[tool.scopegen]\ngpu = "A11"\n')
    with pytest.raises(ConfigError) as info:
        load_config(interface)
    assert f"[tool.scopegen] in {tmp_path / 'pyproject.toml'}" in str(info.value)


def test_invalid_toml_is_a_config_error_with_the_position(tmp_path: Path) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "tools" / "scopegen.toml", "gpu = \n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_config(interface)


def test_the_examples_configurations_are_valid() -> None:
    found = sorted((ROOT / "examples").glob("*/scopegen.toml"))
    for path in found:
        load_config(path.with_name("interface.py"))


# --------------------------------------------------------------------------- the CLI


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scopegen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("command", [["deploy", "--dry-run"], ["build"]])
def test_cli_bad_configuration_exits_with_the_message_and_no_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    interface = _interface(tmp_path / "tools")
    _write(tmp_path / "tools" / "scopegen.toml", 'gpu = "A11"\nscaledown = 60\n')
    out = str(tmp_path / "out")
    result = _cli(command[0], str(interface), "-o", out, *command[1:], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert 'gpu = "A11"' in result.stderr
    assert "T4, L4, A10" in result.stderr
    assert "scaledown: unknown key; did you mean 'scaledown_window'?" in result.stderr
    assert str(tmp_path / "tools" / "scopegen.toml") in result.stderr
    assert not (tmp_path / "out" / "modal_app.py").exists()
