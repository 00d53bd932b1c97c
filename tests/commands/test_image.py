"""What goes into the Modal image: distributions inferred from the interface's imports."""

from __future__ import annotations

import sys
from pathlib import Path

from scopegen.commands.image import infer_python_packages, infer_system_packages


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
