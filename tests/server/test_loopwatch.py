"""LoopWatch: a heartbeat on the loop, a thread that notices when it stops."""

from __future__ import annotations

import asyncio
import io
import time
from types import FrameType

from scopegen.server._loopwatch import LoopWatch


def _name_of(frame: FrameType | None) -> str:
    while frame is not None:
        if frame.f_code.co_name == "blocker":
            return f"blocker at line {frame.f_lineno}"
        frame = frame.f_back
    return "something else"


def _run(body_seconds: float, *, block: bool, threshold: float = 0.2) -> str:
    out = io.StringIO()
    watch = LoopWatch(threshold, _name_of, out)

    async def blocker() -> None:
        if block:
            time.sleep(body_seconds)
        else:
            await asyncio.sleep(body_seconds)

    async def main() -> None:
        watch.start(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        await blocker()
        await asyncio.sleep(3 * watch.interval)  # the beat after the block reports it
        watch.stop()

    asyncio.run(main())
    return out.getvalue()


def test_a_block_past_the_threshold_is_reported_while_it_lasts_and_when_it_ends() -> None:
    lines = _run(0.8, block=True).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("WARNING:  the event loop is blocked (")
    assert "so far) by blocker at line " in lines[0]
    assert lines[1].startswith("WARNING:  the event loop was blocked for ")
    blocked = float(lines[1].split("blocked for ")[1].split(" s ")[0])
    assert 0.5 <= blocked <= 0.9
    assert "await asyncio.to_thread(...)" in lines[1]


def test_awaiting_and_short_blocks_say_nothing() -> None:
    assert _run(0.8, block=False) == ""
    assert _run(0.05, block=True) == ""


def test_stop_ends_the_heartbeat() -> None:
    out = io.StringIO()
    watch = LoopWatch(0.2, _name_of, out)

    async def main() -> None:
        watch.start(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        watch.stop()
        time.sleep(0.5)  # stopped: not reported

    asyncio.run(main())
    assert out.getvalue() == ""
