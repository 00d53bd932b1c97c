"""Async functions that block the event loop, and one that does not (loop-watch tests)."""

from __future__ import annotations

import asyncio
import time

from scopegen import expose


@expose
async def nap(seconds: float) -> str:
    """Blocks the event loop: time.sleep inside async def (lint warns: SG015)."""
    time.sleep(seconds)  # on purpose: what the server must notice
    return "woke"


@expose
async def polite_nap(seconds: float) -> str:
    """Well-behaved: awaits, so other requests run meanwhile."""
    await asyncio.sleep(seconds)
    return "woke"


@expose
def sync_nap(seconds: float) -> str:
    """Blocks its worker thread only."""
    time.sleep(seconds)
    return "woke"
