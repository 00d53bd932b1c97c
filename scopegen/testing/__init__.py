"""Test an interface file in this process, as remote callers will see it.

::

    import scopegen.testing

    with scopegen.testing.load("interface.py", models={"org/name": "./weights"}) as iface:
        assert iface.add(a=2, b=3) == 5
        with pytest.raises(scopegen.testing.CallError) as err:
            iface.add(a=True, b=3)
        assert err.value.code == "invalid_arguments"

Every call goes through the server's own code (``scopegen.server``): the
same validation, result encoding and error codes as ``scopegen serve``, with
no socket and no subprocess. The pytest plugin ``scopegen.pytest_plugin``
(registered on install) adds the ``scopegen_load`` fixture.
"""

from __future__ import annotations

from scopegen.server import InterfaceImportError, InterfaceLintError, InterfaceLoadError
from scopegen.testing._asgi import Response
from scopegen.testing._load import CallError, Interface, Stream, load

__all__ = [
    "CallError",
    "Interface",
    "InterfaceImportError",
    "InterfaceLintError",
    "InterfaceLoadError",
    "Response",
    "Stream",
    "load",
]

# Shown as ``scopegen.testing.CallError`` in tracebacks and reprs (httpx does the same).
for _name in ("CallError", "Interface", "Response", "Stream", "load"):
    globals()[_name].__module__ = __name__
del _name
