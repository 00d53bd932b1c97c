"""Exposes a function the analyzer cannot see: the server must refuse."""

import importlib

from scopegen import expose


@expose
def visible() -> int:
    return 1


def hidden(a: int) -> int:
    return a


getattr(importlib.import_module("scopegen"), "expose")(hidden)  # noqa: B009
