"""Protocol v1 in one place: routes, error codes, headers, client policy, reserved names.

Every part of scopegen that speaks or documents the protocol reads this
module: the server (``scopegen.server``), the OpenAPI document
(``scopegen.emit.openapi``), the MCP bridge (``scopegen.mcp``), the
analyzer's SG009 and the client emitter. The generated client stays
standalone: its templates receive these values when it is generated. The
prose for someone writing a client in another language is ``docs/protocol.md``.

Import-light on purpose: the lint path imports it (no httpx, no orjson).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

__all__ = [
    "ALLOW_HEADER",
    "AUTHORIZATION_HEADER",
    "CALL_PREFIX",
    "CLIENT_BASE_ERRORS",
    "CLIENT_ERROR_CLASSES",
    "CLIENT_ERROR_ROWS",
    "CLIENT_RESERVED_FUNCTION_NAMES",
    "CLIENT_RESERVED_TYPE_NAMES",
    "CONNECT_TIMEOUT",
    "DEFAULT_JOB_TTL",
    "DEFAULT_MAX_JOBS",
    "DEFAULT_URL",
    "ENV_FALLBACK_PREFIX",
    "ERRORS",
    "ERROR_BY_CODE",
    "FUNCTIONS_PATH",
    "HEALTH_PATH",
    "INITIAL_RETRY_DELAY",
    "INTERFACE_HASH_HEADER",
    "JOBS_PREFIX",
    "JOB_FINISHED",
    "JOB_ID_BYTES",
    "JOB_STATUSES",
    "JSON_MEDIA_TYPE",
    "MANIFEST_TIMEOUT",
    "MANIFEST_VERSION",
    "MAX_REDIRECTS",
    "MAX_RETRIES",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "MODAL_KEY_ENV",
    "MODAL_KEY_HEADER",
    "MODAL_SECRET_ENV",
    "MODAL_SECRET_HEADER",
    "NDJSON_MEDIA_TYPE",
    "OPENAPI_PATH",
    "ORIGIN_ONLY_HEADERS",
    "PROXY_ERRORS",
    "READ_TIMEOUT",
    "REDIRECT_STATUSES",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_PATTERN",
    "RETRY_AFTER_HEADER",
    "RETRY_JITTER",
    "RETRY_STATUSES",
    "SERVER_TIMING_HEADER",
    "TENSOR_ALIGN",
    "TENSOR_BASE64_PATTERN",
    "TENSOR_DTYPES",
    "TENSOR_KEY",
    "TENSOR_MAGIC",
    "TENSOR_MAX_NDIM",
    "TENSOR_MEDIA_TYPE",
    "TENSOR_SCHEMA_KEY",
    "TOKEN_ENV",
    "WWW_AUTHENTICATE_HEADER",
    "ErrorCode",
    "env_prefix",
    "next_hop",
    "origin",
    "reserved_function_name",
    "reserved_type_name",
    "retry_delay",
    "tensor_schema",
]

# --------------------------------------------------------------------------- routes

# The manifest's ``"scopegen"`` field; a client refuses a manifest of another version.
MANIFEST_VERSION: Final = 1

CALL_PREFIX: Final = "/v1/call/"  # POST CALL_PREFIX + function name
FUNCTIONS_PATH: Final = "/v1/functions"  # GET: the manifest
OPENAPI_PATH: Final = "/openapi.json"  # GET: OpenAPI 3.1
HEALTH_PATH: Final = "/healthz"  # GET: liveness, never needs a token
# POST JOBS_PREFIX + function name submits a job; GET / DELETE JOBS_PREFIX + id.
JOBS_PREFIX: Final = "/v1/jobs/"

JSON_MEDIA_TYPE: Final = "application/json"
# A streaming result: one JSON object per line, each ending with "\n":
# {"item": ...} per item, {"error": {...}} ends a failed stream, {"done": true} a whole one.
NDJSON_MEDIA_TYPE: Final = "application/x-ndjson"

# --------------------------------------------------------------------------- jobs

JOB_STATUSES: Final = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_FINISHED: Final = frozenset({"succeeded", "failed", "cancelled"})
JOB_ID_BYTES: Final = 18  # random bytes in a local job id (144 bits, url-safe base64)
DEFAULT_JOB_TTL: Final = 3600.0  # seconds a finished job is kept (``serve --job-ttl``)
DEFAULT_MAX_JOBS: Final = 1000  # jobs kept at most (``serve --max-jobs``)

# --------------------------------------------------------------------------- headers

# Lower-case, as ASGI hands them over (HTTP header names are case-insensitive).
REQUEST_ID_HEADER: Final = "x-request-id"
AUTHORIZATION_HEADER: Final = "authorization"
RETRY_AFTER_HEADER: Final = "retry-after"
ALLOW_HEADER: Final = "allow"
WWW_AUTHENTICATE_HEADER: Final = "www-authenticate"
# A request id the server echoes; anything else is replaced by a fresh one.
REQUEST_ID_PATTERN: Final = r"[A-Za-z0-9._:@+=/-]{1,128}"
# Modal's proxy auth (a web endpoint with ``requires_proxy_auth``), spelt as Modal does.
MODAL_KEY_HEADER: Final = "Modal-Key"
MODAL_SECRET_HEADER: Final = "Modal-Secret"
MODAL_KEY_ENV: Final = "MODAL_KEY"
MODAL_SECRET_ENV: Final = "MODAL_SECRET"
# Sent on every answer: the hash of the interface the server serves now, so a
# long-lived client learns of a redeploy (``serve --reload``, a new Modal app).
INTERFACE_HASH_HEADER: Final = "x-scopegen-interface-hash"
# On call answers: ``queue;dur=<ms>, run;dur=<ms>`` (W3C Server-Timing).
SERVER_TIMING_HEADER: Final = "server-timing"
# Credentials that go only to the origin they were configured for: a redirect
# to another host gets none of them (httpx itself strips only Authorization).
ORIGIN_ONLY_HEADERS: Final = ("authorization", "modal-key", "modal-secret")

# --------------------------------------------------------------------------- environment

DEFAULT_URL: Final = "http://127.0.0.1:8000"  # where ``scopegen serve`` listens by default
TOKEN_ENV: Final = "SCOPEGEN_TOKEN"  # the server's token, and every client's fallback
ENV_FALLBACK_PREFIX: Final = "SCOPEGEN"  # clients fall back to SCOPEGEN_URL / SCOPEGEN_TOKEN

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def env_prefix(package: str) -> str:
    """The prefix of a client package's environment variables: ``<PREFIX>_URL``, ``_TOKEN``.

    ``model_tools`` -> ``MODEL_TOOLS``, ``_probe_`` -> ``PROBE``: runs of
    anything but letters and digits become one ``_``, the ends are stripped,
    and the rest is upper-cased. A prefix that would be empty or start with a
    digit (not a shell variable name) gets ``SCOPEGEN`` in front. The client,
    its README, ``mcp.json`` and ``scopegen deploy`` all name variables
    through this one function.
    """
    words = _NOT_ALNUM.sub("_", package).strip("_").upper()
    if not words:
        return ENV_FALLBACK_PREFIX
    if words[0].isdigit():
        return f"{ENV_FALLBACK_PREFIX}_{words}"
    return words


# --------------------------------------------------------------------------- client policy

# GPU calls are slow: wait long for an answer, but not for a connection.
READ_TIMEOUT: Final = 600.0
CONNECT_TIMEOUT: Final = 10.0
MANIFEST_TIMEOUT: Final = 30.0  # reading /v1/functions (the MCP bridge at start-up)
# Retries happen only when the call certainly did not run (a connection that was
# never made, or a status in RETRY_STATUSES), with exponential backoff and jitter.
MAX_RETRIES: Final = 2
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
RETRY_JITTER: Final = 0.25  # each delay is shortened by up to this fraction
MAX_RETRY_AFTER: Final = 60.0  # a longer Retry-After is not waited for: the error stands
# Modal answers a call that runs past 150 s with a 303 to poll, again and again.
MAX_REDIRECTS: Final = 1000
# Redirects the clients follow themselves (never httpx's ``follow_redirects``),
# so that a failed poll retries the poll and never sends the call again.
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


# ``origin`` and ``next_hop`` are rendered verbatim into the generated client's
# ``_base_client.py`` (it is standalone) and imported by the MCP bridge: one
# source for how every scopegen client follows a redirect.
def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL: credentials go only to the configured one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def next_hop(method: str, url: str, status: int, location: str | None) -> tuple[str, str]:
    """``(method, url)`` of the request that follows a redirect, or ``ValueError`` saying why not.

    303 (Modal: "still running, poll here") becomes a GET; 307 and 308 repeat
    the request as it was. 301 and 302 turn a POST into a GET in httpx and
    browsers, which would drop the call's arguments: that is refused (a GET
    may follow them).
    """
    if not location:
        raise ValueError(f"{url} answered a {status} redirect without a Location header")
    target = urljoin(url, location)
    if status == 303:
        return "GET", target
    if status in (307, 308) or method == "GET":
        return method, target
    raise ValueError(
        f"{url} answered {status} (moved to {target}) to a {method}; following it would "
        f"turn the call into a GET and lose its arguments. Use the URL it moved to "
        f"(often https:// instead of http://) as the base URL"
    )


def retry_delay(retries: int, retry_after: str | None, jitter: float) -> float | None:
    """Seconds to wait before retry number ``retries + 1``, or ``None``: do not retry.

    ``jitter`` is in [0, 1). A server's ``Retry-After`` (seconds, or an HTTP
    date) wins up to ``MAX_RETRY_AFTER``; past it the answer stands, since a
    client that waits an hour is worse than an error saying when to come back.
    Otherwise the delay doubles from ``INITIAL_RETRY_DELAY`` up to
    ``MAX_RETRY_DELAY``, shortened by up to ``RETRY_JITTER``. Rendered
    verbatim into the generated client's ``_base_client.py``.
    """
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            from email.utils import parsedate_to_datetime  # only for a date: rare

            try:
                seconds = parsedate_to_datetime(retry_after).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                seconds = -1.0
            else:
                seconds = max(seconds, 0.0)
        if seconds > MAX_RETRY_AFTER:
            return None
        if seconds >= 0.0:
            return seconds
    delay = min(MAX_RETRY_DELAY, INITIAL_RETRY_DELAY * 2.0**retries)
    return delay * (1.0 - RETRY_JITTER * jitter)


# --------------------------------------------------------------------------- error codes


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One row of the error table: every error body is ``{"error": {"code", "message", ...}}``.

    ``ran``: whether the function ran (or started) before this answer; ``retry``:
    the clients retry it (only answers where it certainly did not run).
    ``fields``: what the error object carries besides ``code`` and ``message``.
    ``on_call``: a POST to an exposed function can get it (OpenAPI documents it
    there). ``for_status``: the client class for a bare answer of this status
    (no scopegen error body: a proxy in between, an old server).
    """

    code: str
    status: int
    client_class: str
    summary: str  # a few words, for the client's exception tree
    description: str  # one sentence, for OpenAPI and the docs
    ran: bool = False
    retry: bool = False
    fields: tuple[str, ...] = ()
    on_call: bool = True
    for_status: bool = True


ERRORS: Final[tuple[ErrorCode, ...]] = (
    ErrorCode(
        "bad_request",
        400,
        "BadRequest",
        "the body was not a JSON object",
        "The body is not valid JSON, or not a JSON object.",
    ),
    ErrorCode(
        "unauthorized",
        401,
        "Unauthorized",
        "token missing or wrong",
        "A token is configured and the bearer token is missing or wrong.",
    ),
    ErrorCode(
        "unknown_function",
        404,
        "UnknownFunction",
        "the server does not expose that function",
        "No exposed function of that name.",
        on_call=False,
        for_status=False,
    ),
    ErrorCode(
        "unknown_job",
        404,
        "UnknownJob",
        "no such job (finished jobs expire)",
        "No job of that id: never submitted, or finished and expired.",
        on_call=False,
        for_status=False,
    ),
    ErrorCode(
        "not_found",
        404,
        "NotFound",
        "no such route (check base_url)",
        "No such route.",
        on_call=False,
    ),
    ErrorCode(
        "method_not_allowed",
        405,
        "MethodNotAllowed",
        "wrong HTTP method for the route",
        "Wrong method on a known route; the Allow header names the right one.",
        on_call=False,
    ),
    ErrorCode(
        "payload_too_large",
        413,
        "PayloadTooLarge",
        "the arguments are too big",
        "The body is over the server's limit.",
    ),
    ErrorCode(
        "invalid_arguments",
        422,
        "InvalidArguments",
        ".details lists each bad argument",
        "Missing, unexpected or wrongly typed arguments.",
        fields=("details",),
    ),
    ErrorCode(
        "function_error",
        500,
        "FunctionError",
        "the function raised (.remote_type, .remote_traceback)",
        "The function raised.",
        ran=True,
        fields=("type", "traceback"),
        for_status=False,
    ),
    ErrorCode(
        "unserializable_result",
        500,
        "UnserializableResult",
        "the function returned something not JSON",
        "The function returned something that is not JSON.",
        ran=True,
        for_status=False,
    ),
    ErrorCode(
        "too_many_jobs",
        429,
        "TooManyJobs",
        "the job table is full of unfinished jobs; retry later",
        "Every kept job is still queued or running; the job was not queued.",
        retry=True,
        on_call=False,
        for_status=False,
    ),
    ErrorCode(
        "unavailable",
        503,
        "ServiceUnavailable",
        "the server could not take the call, after retries",
        "Every worker is still running a call that ran past its timeout; this call did not run.",
        retry=True,
    ),
    ErrorCode(
        "timeout",
        504,
        "CallTimeout",
        "the call ran past the server's per-call timeout",
        "The call ran past the server's per-call timeout (it may still be running).",
        ran=True,
    ),
)

# Answers a scopegen server never sends but what is in front of it may (Modal's
# proxy, a gateway, a rate limiter): they come without a scopegen error body,
# so the clients know them by status alone. 408 and 429 mean the call did not
# run; the clients retry them, honouring Retry-After up to MAX_RETRY_AFTER.
PROXY_ERRORS: Final[tuple[ErrorCode, ...]] = (
    ErrorCode(
        "forbidden",
        403,
        "Forbidden",
        "refused by what is in front of the server (Modal proxy auth?)",
        "Refused by a proxy in front of the server, e.g. Modal's proxy auth.",
        on_call=False,
    ),
    ErrorCode(
        "request_timeout",
        408,
        "RequestTimeout",
        "a proxy gave up waiting for the request; it did not run",
        "A proxy gave up waiting for the request; the call did not run.",
        retry=True,
        on_call=False,
    ),
    ErrorCode(
        "conflict",
        409,
        "Conflict",
        "refused by a proxy as conflicting",
        "A proxy refused the request as conflicting with another.",
        on_call=False,
    ),
    ErrorCode(
        "rate_limited",
        429,
        "RateLimited",
        "too many requests; it did not run",
        "Too many requests; the call did not run.",
        retry=True,
        on_call=False,
    ),
)

ERROR_BY_CODE: Final = {e.code: e for e in ERRORS}
# The client's classes: the server's table, then the proxies' (by status only).
CLIENT_ERROR_ROWS: Final = ERRORS + PROXY_ERRORS
RETRY_STATUSES: Final = frozenset(e.status for e in CLIENT_ERROR_ROWS if e.retry)

# The generated client's exceptions outside the table (``_exceptions.py`` draws the tree).
CLIENT_BASE_ERRORS: Final = (
    "ScopegenError",
    "RemoteError",
    "InvalidResponse",
    "TransportError",
    "ConnectionFailed",
    "ConnectionLost",
    "ResponseTimeout",
    "UnexpectedRedirect",
    "ArgumentNotSerializable",
    "ClientClosed",
    "JobCancelled",
    "InterfaceMismatchWarning",
)
CLIENT_ERROR_CLASSES: Final = frozenset(CLIENT_BASE_ERRORS) | {
    e.client_class for e in CLIENT_ERROR_ROWS
}

# --------------------------------------------------------------------------- reserved names

# Names the generated package binds where an exposed function's name would go
# (the package's ``__init__`` and the methods of ``Client`` / ``AsyncClient``).
CLIENT_RESERVED_FUNCTION_NAMES: Final = CLIENT_ERROR_CLASSES | frozenset(
    {
        # Public names of the package's ``__init__``.
        "AsyncClient",
        "AsyncClientWithRawResponse",
        "Client",
        "ClientWithRawResponse",
        "NOT_GIVEN",
        "NotGiven",
        "RawResponse",
        "types",
        # Jobs and streams: the ``jobs`` namespace, its ``attach``, the classes they return.
        "AsyncJob",
        "AsyncJobs",
        "AsyncStream",
        "Callable",
        "Job",
        "Jobs",
        "Stream",
        "attach",
        # Helpers its modules import, and builtins its annotations use.
        "Any",
        "ArrayLike",
        "INTERFACE_HASH",
        "Literal",
        "annotations",
        "bool",
        "dict",
        "float",
        "int",
        "list",
        "str",
        "tuple",
        # Attributes of Client / AsyncClient (methods share their namespace).
        "base_url",
        "close",
        "copy",
        "jobs",
        "max_retries",
        "timeout",
        "token",
        "with_options",
        "with_raw_response",
    }
)

# Names ``types.py`` binds where a named type of the interface would go: its
# imports, and the builtins its annotations use.
CLIENT_RESERVED_TYPE_NAMES: Final = frozenset(
    {
        "Any",
        "BaseModel",
        "ConfigDict",
        "Enum",
        "Field",
        "Literal",
        "annotations",
        "bool",
        "dict",
        "float",
        "int",
        "list",
        "str",
        "tuple",
    }
)


def reserved_function_name(name: str) -> bool:
    """The generated client cannot name a function ``name`` (private, or a name it binds)."""
    return name.startswith("_") or name in CLIENT_RESERVED_FUNCTION_NAMES


def reserved_type_name(name: str) -> bool:
    """The generated client cannot name a type ``name`` (private, or a name ``types.py`` binds)."""
    return name.startswith("_") or name in CLIENT_RESERVED_TYPE_NAMES


# --------------------------------------------------------------------------- tensors

# A tensor on the wire (docs/protocol.md, "Tensors"). The JSON form is the object
# ``{"$tensor": {"dtype": ..., "shape": [...], "data": "<base64>"}}``: C-order,
# little-endian bytes. The binary form (``TENSOR_MEDIA_TYPE``) is a JSON envelope
# where each tensor is ``{"$tensor": {"dtype", "shape", "offset", "nbytes"}}``
# followed by the raw buffers; see ``TENSOR_MAGIC``.
TENSOR_KEY: Final = "$tensor"
# The schema annotation the manifest and OpenAPI put on a tensor's JSON form.
TENSOR_SCHEMA_KEY: Final = "x-scopegen-tensor"
# Wire dtype names and their item sizes in bytes, in the order docs list them.
TENSOR_DTYPES: Final[dict[str, int]] = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
}
# The binary framing's media type: the server answers in it only when ``Accept``
# names it explicitly; requests send it as ``Content-Type``.
TENSOR_MEDIA_TYPE: Final = "application/x-scopegen-tensors"
# Binary framing: MAGIC (4 bytes), the envelope's length (u32 little-endian), the
# envelope (UTF-8 JSON), zero padding up to a multiple of TENSOR_ALIGN from the start
# of the body, then the buffer section; a tensor's ``offset`` counts from there.
TENSOR_MAGIC: Final = b"SGT1"
TENSOR_ALIGN: Final = 64
# The most dimensions a tensor may have (numpy's own limit).
TENSOR_MAX_NDIM: Final = 64
# Standard (padded) base64, as the JSON form's ``data`` must be.
TENSOR_BASE64_PATTERN: Final = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def tensor_schema(dtype: str | None) -> dict[str, object]:
    """The JSON Schema of a tensor's JSON form, with ``x-scopegen-tensor`` (its dtype if declared).

    A schema cannot say that ``data`` holds exactly ``prod(shape) * itemsize``
    bytes; the server checks that and answers 422 when it does not hold.
    """
    dtypes = [dtype] if dtype is not None else list(TENSOR_DTYPES)
    header: dict[str, object] = {
        "type": "object",
        "properties": {
            "dtype": {"enum": dtypes},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "maxItems": TENSOR_MAX_NDIM,
            },
            "data": {
                "type": "string",
                "contentEncoding": "base64",
                "pattern": TENSOR_BASE64_PATTERN,
            },
        },
        "required": ["dtype", "shape", "data"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {TENSOR_KEY: header},
        "required": [TENSOR_KEY],
        "additionalProperties": False,
        TENSOR_SCHEMA_KEY: {"dtype": dtype} if dtype is not None else {},
    }
