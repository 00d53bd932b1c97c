"""The floor for bench_tensors.py: a raw ASGI app answering fixed bytes, no framing at all.

``POST /download`` answers the 512 x 3584 float32 activations' raw bytes;
``POST /upload`` reads the body (a steering vector's raw bytes) and answers 2 bytes.
"""

from typing import Any

import torch

_gen = torch.Generator().manual_seed(0)
RAW = torch.randn(512, 3584, generator=_gen).numpy().tobytes()
_OCTETS = (b"content-type", b"application/octet-stream")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = RAW if scope["path"] == "/download" else b"ok"
    headers = [_OCTETS, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
