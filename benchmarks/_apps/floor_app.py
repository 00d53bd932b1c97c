"""The floor: a minimal raw ASGI + orjson dispatcher, no validation, no error handling.

It runs the sync functions exactly as scopegen does (one worker thread via
``loop.run_in_executor`` on a 1-worker pool), so the gap to it is the price of
scopegen's validation, routing, request ids and error handling.
"""

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

EMBEDDING = [math.sin(i) for i in range(4096)]


def ping(x: int) -> int:
    return x


def embed(text: str) -> list[float]:
    return EMBEDDING


ROUTES = {"/v1/call/ping": ping, "/v1/call/embed": embed}
_POOL = ThreadPoolExecutor(max_workers=1)
_JSON = (b"content-type", b"application/json")


def _invoke(fn: Any, kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    fn = ROUTES[scope["path"]]
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body", False):
        message = await receive()
        body += message.get("body", b"")
    kwargs = orjson.loads(body) if body else {}
    result = await asyncio.get_running_loop().run_in_executor(_POOL, _invoke, fn, kwargs)
    out = orjson.dumps({"result": result})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [_JSON, (b"content-length", b"%d" % len(out))],
        }
    )
    await send({"type": "http.response.body", "body": out})
