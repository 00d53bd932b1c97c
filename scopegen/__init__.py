"""scopegen: typed RPC for GPU functions.

An interface file marks functions with ``@expose``; scopegen lints it,
generates a typed client package and a Modal app from it, and serves it.
"""

from scopegen.runtime import ModelNotFoundError, expose, get_model_path

__all__ = ["ModelNotFoundError", "__version__", "expose", "get_model_path"]

# Read from the installed distribution on first use: importlib.metadata costs
# more than the rest of ``import scopegen``, which the lint path and every
# interface file pay for.
__version__: str


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("scopegen")
        except PackageNotFoundError:  # run from source without installing (Modal's image)
            return "0+unknown"
    raise AttributeError(f"module 'scopegen' has no attribute {name!r}")
