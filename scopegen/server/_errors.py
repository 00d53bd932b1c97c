"""The one error type of the call path: an answer from the protocol's error table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from scopegen.protocol import ERROR_BY_CODE

__all__ = ["CallError", "Headers", "error_body"]

Headers = Sequence[tuple[bytes, bytes]]


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """``{"error": {"code": ..., "message": ..., **extra}}`` as bytes."""
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


class CallError(Exception):
    """An error answer, raised by a step of the call path; the app's ``_call`` sends it.

    ``code`` is a row of ``scopegen.protocol.ERRORS``, which gives the status;
    ``extra`` are the row's other fields (``details``, ``type``, ``traceback``).
    Building one costs only on the error path.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, code: str, message: str, headers: Headers = (), **extra: Any) -> None:
        super().__init__(code)
        self.status = ERROR_BY_CODE[code].status
        self.body = error_body(code, message, **extra)
        self.headers = headers
