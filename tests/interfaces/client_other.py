"""Another version of ``client_rich.py``: served to a client built from that file.

``echo`` is unchanged, ``pair`` now returns a string (the client expects a
tuple), and every other function is gone: the client must warn about the
hash mismatch, raise UnknownFunction and InvalidResponse.
"""

from scopegen import expose


@expose
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@expose
def pair(a: int, b: int = 2) -> str:
    return f"{a},{b}"
