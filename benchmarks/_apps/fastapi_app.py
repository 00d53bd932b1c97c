"""The same two functions as a FastAPI user would write them (sync ``def``, Pydantic args)."""

import math

from fastapi import FastAPI
from pydantic import BaseModel

EMBEDDING = [math.sin(i) for i in range(4096)]

app = FastAPI()


class PingArgs(BaseModel):
    x: int


class EmbedArgs(BaseModel):
    text: str


@app.post("/v1/call/ping")
def ping(args: PingArgs) -> dict:  # type: ignore[type-arg]
    return {"result": args.x}


@app.post("/v1/call/embed")
def embed(args: EmbedArgs) -> dict:  # type: ignore[type-arg]
    return {"result": EMBEDDING}
