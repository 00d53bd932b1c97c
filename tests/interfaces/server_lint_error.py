"""Fails lint (SG001); if the server imported it anyway, the import below would fail loudly."""

import scopegen_module_that_does_not_exist  # noqa: F401

from scopegen import expose


@expose
def untyped(x) -> int:  # type: ignore[no-untyped-def]
    return 1
