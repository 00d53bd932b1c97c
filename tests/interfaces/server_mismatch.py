"""Exposes `gone` statically, then un-registers it at run time: the server must refuse."""

import scopegen.runtime as _rt
from scopegen import expose


@expose
def kept() -> int:
    return 1


@expose
def gone() -> int:
    return 2


_rt._registry.pop("gone")
