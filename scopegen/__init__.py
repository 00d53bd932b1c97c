"""scopegen: typed RPC for GPU functions.

An interface file marks functions with ``@expose``; scopegen lints it,
generates a typed client package and a Modal app from it, and serves it.
"""

from scopegen.runtime import ModelNotFoundError, expose, get_model_path

__all__ = ["ModelNotFoundError", "__version__", "expose", "get_model_path"]

__version__ = "0.1.0"
