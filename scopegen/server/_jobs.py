"""Jobs (``docs/protocol.md``, Jobs): calls that outlive a connection, kept in a bounded table.

A job is an asyncio task on the server's loop that runs the function through
the same executor as a call (so the concurrency limit and timeouts hold),
or, for a streaming function, collects the lines of ``_stream.stream_lines``.
Results and items are kept as encoded JSON (``_encode.encode``, the call
path's encoder) and spliced into answers with ``orjson.Fragment``.

The table keeps at most ``max_jobs`` jobs: finished ones expire ``ttl``
seconds after they finish; when the table is full the job that finished
first is evicted, and when none has finished a submission is refused
(429 ``too_many_jobs``, ``Retry-After``). Ids are random (``JOB_ID_BYTES``).

Cancelling: a queued job never runs (its worker checks under a lock before
it starts the function); a running streaming job stops at its next item; a
running plain job is marked cancelled and its result dropped (a thread
cannot be killed: a sync function runs to its end on its worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import orjson

from scopegen import protocol
from scopegen.server._encode import encode
from scopegen.server._errors import CallError
from scopegen.server._executor import add_call_frames
from scopegen.server._stream import DONE, is_item, item_value

__all__ = ["Job", "JobBackend", "JobTable", "run_job"]

_RETRY_SOON = ((protocol.RETRY_AFTER_HEADER.encode(), b"1"),)
_RESULT_PREFIX = len(b'{"result":')
_ERROR_PREFIX = len(b'{"error":')


class _Endpoint(Protocol):
    """What a job needs of the app's endpoint (``_app._Endpoint``)."""

    @property
    def name(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def streams(self) -> bool: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def run(self) -> Callable[[str, Callable[..., Any], dict[str, Any]], Any]: ...
    @property
    def result_tensors(self) -> bool: ...


Stream = Callable[[Any, dict[str, Any]], AsyncIterator[list[bytes]]]


class JobBackend(Protocol):
    """Where the app's job routes keep jobs: ``JobTable`` in this process, Modal's
    function calls on Modal (``scopegen.modal_runtime.ModalJobs``). Each answers
    the encoded ``{"job": ...}`` body, or raises ``CallError``."""

    async def submit(self, ep: Any, kwargs: dict[str, Any], raw: bytes) -> bytes: ...
    async def get(self, job_id: str) -> bytes: ...
    async def cancel(self, job_id: str) -> bytes: ...
    def close(self) -> None: ...


class _NotRun(Exception):
    """The job was cancelled before its worker started it: the function never runs."""


@dataclasses.dataclass(eq=False)
class Job:
    """One job; ``result`` / ``error`` / ``items`` are encoded JSON."""

    id: str
    function: str
    streams: bool
    status: str = "queued"
    created_at: float = dataclasses.field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: bytes | None = None
    error: bytes | None = None
    items: list[bytes] | None = None
    task: asyncio.Task[None] | None = None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "function": self.function,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.items is not None:
            items = [orjson.Fragment(i) for i in self.items]
            if self.status == "succeeded":
                out["result"] = items
            else:
                out["items"] = items
        elif self.result is not None:
            out["result"] = orjson.Fragment(self.result)
        if self.error is not None:
            out["error"] = orjson.Fragment(self.error)
        return out

    def body(self) -> bytes:
        return orjson.dumps({"job": self.json()})


class JobTable:
    """The jobs of one server: submit, look up, cancel; bounded in count and time."""

    def __init__(self, ttl: float, max_jobs: int, stream: Stream) -> None:
        self.ttl = ttl
        self.max_jobs = max_jobs
        self._stream = stream
        self._jobs: dict[str, Job] = {}  # in submission order
        self._lock = threading.Lock()  # queued -> running vs. cancelled, across threads

    def __len__(self) -> int:
        return len(self._jobs)

    async def submit(self, ep: Any, kwargs: dict[str, Any], raw: bytes) -> bytes:
        return self.add(ep, kwargs).body()

    async def get(self, job_id: str) -> bytes:
        return self.find(job_id).body()

    async def cancel(self, job_id: str) -> bytes:
        return self.stop(job_id).body()

    def close(self) -> None:
        self.cancel_all()

    def add(self, ep: _Endpoint, kwargs: dict[str, Any]) -> Job:
        """Queue ``ep(**kwargs)`` (already validated); ``too_many_jobs`` when full."""
        self._make_room()
        job = Job(secrets.token_urlsafe(protocol.JOB_ID_BYTES), ep.name, ep.streams)
        if ep.streams:
            job.items = []
        self._jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, ep, kwargs))
        return job

    def find(self, job_id: str) -> Job:
        self._expire(time.time())
        job = self._jobs.get(job_id)
        if job is None:
            raise CallError("unknown_job", f"no job {job_id[:80]!r} (finished jobs expire)")
        return job

    def stop(self, job_id: str) -> Job:
        job = self.find(job_id)
        with self._lock:
            if job.status in protocol.JOB_FINISHED:
                return job
            job.status = "cancelled"
        job.finished_at = time.time()
        if job.task is not None:
            job.task.cancel()
        return job

    def cancel_all(self) -> None:
        """Shutdown: stop what still runs (streams stop; threads finish on their own)."""
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()

    # ----------------------------------------------------------------- internals

    def _make_room(self) -> None:
        self._expire(time.time())
        if len(self._jobs) < self.max_jobs:
            return
        finished = [j for j in self._jobs.values() if j.finished_at is not None]
        oldest = min(finished, key=lambda j: j.finished_at or 0.0, default=None)
        if oldest is None:
            raise CallError(
                "too_many_jobs",
                f"the server keeps at most {self.max_jobs} jobs and none has finished;"
                " the job was not queued",
                _RETRY_SOON,
            )
        del self._jobs[oldest.id]

    def _expire(self, now: float) -> None:
        due = now - self.ttl
        gone = [
            j.id for j in self._jobs.values() if j.finished_at is not None and j.finished_at <= due
        ]
        for job_id in gone:
            del self._jobs[job_id]

    def _start(self, job: Job) -> None:
        """The worker (or the loop) is about to run the function: queued -> running."""
        with self._lock:
            if job.status != "queued":
                raise _NotRun
            job.status = "running"
            job.started_at = time.time()

    def _wrap(self, job: Job, ep: _Endpoint) -> Callable[..., Any]:
        fn = ep.fn
        if ep.is_async and not ep.streams:

            async def started_async(**kwargs: Any) -> Any:
                self._start(job)
                return await fn(**kwargs)

            return started_async

        def started(**kwargs: Any) -> Any:
            self._start(job)
            return fn(**kwargs)

        add_call_frames(started.__code__)
        return started

    async def _run(self, job: Job, ep: _Endpoint, kwargs: dict[str, Any]) -> None:
        run_ep = dataclasses.replace(ep, fn=self._wrap(job, ep))  # type: ignore[type-var]
        try:
            if ep.streams:
                await self._collect(job, run_ep, kwargs)
            else:
                value = await ep.run(ep.name, run_ep.fn, kwargs)
                result = encode("result", value, tensors=ep.result_tensors)[_RESULT_PREFIX:-1]
                self._finish(job, "succeeded", result=result)
        except CallError as err:
            self._finish(job, "failed", error=err.body[_ERROR_PREFIX:-1])
        except (_NotRun, asyncio.CancelledError):
            self._finish(job, "cancelled")
        except Exception as exc:  # a bug here must not leave the job running forever
            error = orjson.dumps({"code": "function_error", "message": repr(exc)})
            self._finish(job, "failed", error=error)

    async def _collect(self, job: Job, ep: Any, kwargs: dict[str, Any]) -> None:
        items = job.items
        assert items is not None
        async for batch in self._stream(ep, kwargs):
            for line in batch:
                if is_item(line):
                    items.append(item_value(line))
                elif line == DONE:
                    self._finish(job, "succeeded")
                else:
                    self._finish(job, "failed", error=line[_ERROR_PREFIX:-2])

    def _finish(
        self, job: Job, status: str, *, result: bytes | None = None, error: bytes | None = None
    ) -> None:
        with self._lock:
            if job.status == "cancelled":
                status = "cancelled"  # a result that comes after a cancel is dropped
            job.status = status
        if status == "succeeded":
            job.result = result
        elif status == "failed":
            job.error = error
        if job.finished_at is None:
            job.finished_at = time.time()


async def run_job(ep: _Endpoint, kwargs: dict[str, Any], stream: Stream) -> bytes:
    """Run one job here and now, to its end: the finished JOB's fields as JSON.

    What a Modal function call runs (``scopegen.modal_runtime``): no table, the
    caller keeps the outcome. ``{"status", "result"}`` or ``{"status", "error"}``
    (and ``items`` beside a streaming job's error).
    """
    table = JobTable(1.0, 1, stream)
    job = Job("", ep.name, ep.streams, status="queued")
    if ep.streams:
        job.items = []
    await table._run(job, ep, kwargs)
    out = job.json()
    return orjson.dumps({k: out[k] for k in ("status", "result", "error", "items") if k in out})
