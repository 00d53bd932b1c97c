"""Load the templates of generated files.

Templates live in ``templates/`` at the root of the source checkout; the wheel
ships the same folder as ``scopegen/_templates`` (pyproject's force-include).
Look in the installed location first, then in the checkout.
"""

from __future__ import annotations

import functools
from pathlib import Path
from string import Template

__all__ = ["load_template", "render_template", "templates_root"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@functools.cache
def templates_root() -> Path:
    """The folder holding ``client/`` (and the other emitters' templates)."""
    for candidate in (_PACKAGE_DIR / "_templates", _PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"scopegen templates not found in {_PACKAGE_DIR / '_templates'} "
        f"or {_PACKAGE_DIR.parent / 'templates'}; the installation is incomplete"
    )


@functools.cache
def load_template(relpath: str) -> Template:
    """``load_template("client/pyproject.toml.tmpl")``: a ``string.Template`` (``$name``)."""
    path = templates_root() / relpath
    # newline="" keeps the bytes as written: output must not depend on the platform.
    with open(path, encoding="utf-8", newline="") as f:
        return Template(f.read())


def render_template(relpath: str, **values: str) -> str:
    """Substitute every ``$name``; a missing value is an error, never left as text."""
    return load_template(relpath).substitute(values)
