"""Run a module as ``python -m`` would, with httptools and uvloop hidden.

``python _apps/pure_python.py MODULE ARGS...``: uvicorn's ``auto`` then picks
h11 and the asyncio loop, as on a machine without those extensions (for
bench_server.py ``--pure-python``).
"""

import runpy
import sys

for name in ("httptools", "uvloop"):
    sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail

module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
