"""The floor of a stream: a bare raw-ASGI NDJSON loop, no validation, no worker thread.

``POST /`` with ``{"n": N}`` answers ``{"item": i}\\n`` for i in range(N) then
``{"done":true}\\n``, one ``send`` per line, straight from the event loop.
"""

from typing import Any

import orjson

_HEAD = [(b"content-type", b"application/x-ndjson")]


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
    message = await receive()
    n = orjson.loads(message.get("body") or b'{"n": 0}')["n"]
    await send({"type": "http.response.start", "status": 200, "headers": _HEAD})
    for i in range(n):
        line = orjson.dumps({"item": i}) + b"\n"
        await send({"type": "http.response.body", "body": line, "more_body": True})
    await send({"type": "http.response.body", "body": b'{"done":true}\n'})
