"""Lints clean, raises while the server imports it."""

from scopegen import expose


def _load_model() -> None:
    raise RuntimeError("model weights are corrupt (raised at import)")


_load_model()


@expose
def never() -> int:
    return 1
