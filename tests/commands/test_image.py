"""What goes into the Modal image: distributions inferred from the imports, the upload."""

from __future__ import annotations

import sys
from pathlib import Path

from scopegen.commands.image import (
    gitignore_patterns,
    infer_python_packages,
    infer_system_packages,
)


def test_imports_map_to_distributions_stdlib_and_scopegen_skipped(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("")
    (tmp_path / "localpkg").mkdir()
    modules = [
        "__future__", "os", "json", "typing", "dataclasses", "scopegen", "scopegen.spec",
        "transformers", "torch", "torch.nn.functional", "sklearn.linear_model", "PIL",
        "cv2", "yaml", "sentence_transformers", "numpy", "helpers", "localpkg.sub", ".sibling",
    ]  # fmt: skip
    assert infer_python_packages(modules, tmp_path) == [
        "transformers",
        "torch",
        "accelerate",  # transformers' device_map="auto" needs it
        "scikit-learn",
        "pillow",
        "opencv-python",
        "pyyaml",
        "sentence-transformers",
        "numpy",
    ]


def test_every_stdlib_module_is_skipped() -> None:
    assert infer_python_packages(sorted(sys.stdlib_module_names)) == []


def test_opencv_needs_libgl_on_debian_slim() -> None:
    assert infer_system_packages(["numpy", "opencv-python"]) == ["libgl1", "libglib2.0-0"]
    assert infer_system_packages(["numpy"]) == []


# --------------------------------------------------------------------------- .gitignore


def _gitignores(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / ".git").mkdir()
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    folder = tmp_path / "exp" / "one"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_gitignore_rules_become_patterns_relative_to_the_interface_folder(
    tmp_path: Path,
) -> None:
    folder = _gitignores(
        tmp_path,
        {
            ".gitignore": (
                "# a comment\n\n*.ckpt\n/exp/one/data/\n/exp/*/logs\n/exp/**/tmp\n"
                "/other/x\n/exp/one\n\\#hash\nspaced   \n"
            ),
            "exp/one/.gitignore": "wandb/\n!keep.ckpt\n/local.txt\n",
        },
    )
    assert gitignore_patterns(folder) == [
        "**/*.ckpt",
        "data",  # anchored under the folder: rebased
        "logs",  # a wildcard step that matches the folder's path
        "**/tmp",  # "**" may match anywhere below
        # /other/x cannot match inside the folder, and /exp/one is the folder itself: dropped
        "**/#hash",
        "**/spaced",
        "**/wandb",
        "!**/keep.ckpt",
        "local.txt",
    ]


def test_without_a_repository_only_the_folders_own_gitignore_counts(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.py\n")
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / ".gitignore").write_text("data/\n")
    assert gitignore_patterns(folder) == ["**/data"]
