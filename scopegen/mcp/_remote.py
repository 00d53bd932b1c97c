"""The bridge's side of protocol v1: URL, token, manifest, calls, error text.

Nothing here imports the ``mcp`` SDK; ``_bridge`` turns these plain values
into MCP types.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx
import orjson

from scopegen import __version__, protocol
from scopegen.mcp._tensors import mentions_tensors, summarize_tensors

__all__ = [
    "BridgeStartError",
    "CallOutcome",
    "Remote",
    "ToolSpec",
    "error_text",
    "expand_env",
    "outcome_from_response",
    "resolve_url",
    "result_schema",
    "tool_specs",
]

# The generated client's policy (scopegen.protocol): long reads, short connects.
CALL_TIMEOUT: Final = httpx.Timeout(protocol.READ_TIMEOUT, connect=protocol.CONNECT_TIMEOUT)
MANIFEST_TIMEOUT: Final = httpx.Timeout(protocol.MANIFEST_TIMEOUT, connect=protocol.CONNECT_TIMEOUT)
# Raised before the request left this machine: safe to retry.
_CONNECT_ERRORS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_ENV_REF = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
_TRACEBACK_KEYS: Final = frozenset({"code", "message", "type", "details", "traceback"})


class BridgeStartError(Exception):
    """The bridge cannot start; the message is what the user reads on stderr."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ToolSpec:
    """One exposed function as an MCP tool, before it becomes ``mcp.types.Tool``."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None


# Called with each item of a streaming call as it arrives: (index, item).
OnItem = Callable[[int, Any], Awaitable[None]]


@dataclass(frozen=True)
class CallOutcome:
    """What a tool call returns: text for the agent, structured content on success."""

    ok: bool
    text: str
    structured: dict[str, Any] | None = None


# --------------------------------------------------------------------------- start-up


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` as a harness would.

    ``mcp.json`` writes the URL as ``${PKG_URL:-http://127.0.0.1:8000}``; some
    harnesses expand that themselves, others pass it through verbatim.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        value = environ.get(name)
        if value:
            return value
        default = m.group("default")
        if default is not None:
            return default
        raise BridgeStartError(
            f"the URL {text!r} refers to ${name}, which is not set; set {name} to the server's URL",
            exit_code=2,
        )

    return _ENV_REF.sub(sub, text)


def resolve_url(raw: str, environ: Mapping[str, str]) -> str:
    """The server's base URL: expanded, checked, without a trailing ``/`` or ``/v1/...``."""
    url = expand_env(raw.strip(), environ).strip().rstrip("/")
    if not re.match(r"https?://[^/\s]+", url):
        raise BridgeStartError(
            f"the URL must start with http:// or https://, not {url!r}", exit_code=2
        )
    # Forgive a URL copied from the manifest endpoint itself.
    for suffix in (protocol.FUNCTIONS_PATH, "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url


def read_token(token_env: str, environ: Mapping[str, str]) -> str | None:
    token = environ.get(token_env) or None
    if token is not None and _ENV_REF.fullmatch(token):
        # A harness that does not expand env blocks hands the placeholder over verbatim.
        raise BridgeStartError(
            f"{token_env} holds the placeholder {token!r}, not a token; put the server's "
            "token in your harness's config or environment",
            exit_code=2,
        )
    return token


def request_headers(token: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    headers = {
        "Accept": "application/json",
        "User-Agent": f"scopegen-mcp/{__version__}",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # Modal's proxy auth, when the web endpoint requires it (as the client sends it).
    key, secret = environ.get(protocol.MODAL_KEY_ENV), environ.get(protocol.MODAL_SECRET_ENV)
    if key and secret:
        headers[protocol.MODAL_KEY_HEADER] = key
        headers[protocol.MODAL_SECRET_HEADER] = secret
    return headers


def result_schema(returns: object) -> dict[str, Any] | None:
    """The tool's output schema: ``{"result": <returns>}``, since MCP wants an object.

    The return schema's ``$defs`` move to the top so its ``#/$defs/...`` refs
    still resolve.
    """
    if not isinstance(returns, dict) or mentions_tensors(returns):
        # A tensor result is summarised as text, which its JSON form's schema does not admit.
        return None
    inner = {k: v for k, v in returns.items() if k != "$defs"}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if "$defs" in returns:
        schema["$defs"] = returns["$defs"]
    return schema


def returns_schema(fn: Mapping[str, Any]) -> object:
    """What a tool call of ``fn`` returns: a streaming function's is the list of its items."""
    returns = fn.get("returns")
    if not fn.get("streams") or not isinstance(returns, dict):
        return returns
    items = {k: v for k, v in returns.items() if k != "$defs"}
    schema: dict[str, Any] = {"type": "array", "items": items}
    if "$defs" in returns:
        schema["$defs"] = returns["$defs"]
    return schema


def tool_specs(manifest: Mapping[str, Any]) -> list[ToolSpec]:
    """One tool per function of a manifest, in manifest order."""
    interface = manifest.get("name", "?")
    specs = []
    for fn in manifest["functions"]:
        name = fn["name"]
        doc = fn.get("doc")
        specs.append(
            ToolSpec(
                name=name,
                description=doc or f"Call {name} on the scopegen interface {interface}.",
                input_schema=fn["parameters"],
                output_schema=result_schema(returns_schema(fn)),
            )
        )
    return specs


def _check_manifest(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "scopegen" not in data:
        raise BridgeStartError(f"{where} did not answer a scopegen manifest")
    if data["scopegen"] != protocol.MANIFEST_VERSION:
        raise BridgeStartError(
            f"{where} answered manifest version {data['scopegen']!r}; this scopegen "
            f"speaks version {protocol.MANIFEST_VERSION}"
        )
    functions = data.get("functions")
    if not isinstance(functions, list):
        raise BridgeStartError(f"{where} answered a manifest without a list of functions")
    if not functions:
        raise BridgeStartError(f"{where} lists no function: there would be no tool to offer")
    for fn in functions:
        ok = (
            isinstance(fn, dict)
            and isinstance(fn.get("name"), str)
            and isinstance(fn.get("parameters"), dict)
            and fn["parameters"].get("type") == "object"
        )
        if not ok:
            raise BridgeStartError(f"{where} answered a malformed function entry: {fn!r:.200}")
    return data


def _describe_error_body(response: httpx.Response) -> str:
    try:
        err = orjson.loads(response.content)["error"]
        return f"{err['code']}: {err['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return repr(response.text[:200])


@dataclass
class Remote:
    """A scopegen server whose manifest has been read: the bridge's only state."""

    url: str
    token_env: str
    headers: dict[str, str]
    manifest: dict[str, Any]

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token_env: str = protocol.TOKEN_ENV,
        environ: Mapping[str, str] | None = None,
    ) -> Remote:
        """Read the manifest; raise ``BridgeStartError`` with a clear reason if we cannot."""
        env = os.environ if environ is None else environ
        base = resolve_url(url, env)
        token = read_token(token_env, env)
        headers = request_headers(token, env)
        where = base + protocol.FUNCTIONS_PATH
        try:
            with httpx.Client(
                headers=headers,
                timeout=MANIFEST_TIMEOUT,
                follow_redirects=True,  # a GET: nothing to lose by letting httpx follow
                event_hooks={"request": [_origin_only(base)]},
            ) as client:
                response = client.get(where)
        except _CONNECT_ERRORS as exc:
            raise BridgeStartError(
                f"cannot reach the scopegen server at {base} ({type(exc).__name__}: {exc}); "
                "is `scopegen serve` running there?"
            ) from None
        except httpx.HTTPError as exc:
            raise BridgeStartError(
                f"no usable answer from {where} ({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code == 401:
            sent = f"the token in ${token_env}" if token else f"no token (${token_env} is not set)"
            raise BridgeStartError(
                f"unauthorized: the server at {base} refused the request with {sent}; "
                f"set {token_env} to the server's {protocol.TOKEN_ENV}, or name another variable "
                "with --token-env"
            )
        if response.status_code != 200:
            not_here = response.status_code in (404, 405)
            hint = " (is this the base URL of a scopegen server?)" if not_here else ""
            raise BridgeStartError(
                f"{where} answered HTTP {response.status_code}: "
                f"{_describe_error_body(response)}{hint}"
            )
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BridgeStartError(
                f"{where} did not answer JSON: {response.text[:200]!r}"
            ) from None
        manifest = _check_manifest(data, where)
        return cls(url=base, token_env=token_env, headers=headers, manifest=manifest)

    # ------------------------------------------------------------------- calls

    @property
    def interface_name(self) -> str:
        return str(self.manifest.get("name", "scopegen"))

    def tools(self) -> list[ToolSpec]:
        return tool_specs(self.manifest)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers=self.headers | {"Content-Type": "application/json"},
            timeout=CALL_TIMEOUT,
            # Redirects are followed in ``call`` (protocol.next_hop), as the client does.
            follow_redirects=False,
        )

    async def call(
        self,
        client: httpx.AsyncClient,
        name: str,
        arguments: Mapping[str, Any] | None,
        on_item: OnItem | None = None,
    ) -> CallOutcome:
        """Forward one call; every failure becomes an error outcome, never an exception.

        Retries only what certainly did not run: a connection never made, or
        an answer in ``RETRY_STATUSES``. A redirect (Modal's 303 "poll here")
        is followed by hand: a poll that cannot connect retries the poll, never
        the call, and credentials go only to the server's own origin.

        A streaming function's items are passed to ``on_item`` (index, item) as
        they arrive, and the outcome is the list of them.
        """
        body = orjson.dumps(dict(arguments or {}))
        request = client.build_request("POST", protocol.CALL_PREFIX + name, content=body)
        home = protocol.origin(self.url)
        retries = hops = 0
        while True:
            try:
                response = await client.send(request, stream=True)
                try:
                    if response.headers.get("content-type") == protocol.NDJSON_MEDIA_TYPE:
                        return await self._stream(response, on_item)
                    await response.aread()
                finally:
                    await response.aclose()
            except _CONNECT_ERRORS as exc:
                if retries < protocol.MAX_RETRIES:
                    await anyio.sleep(protocol.retry_delay(retries, None, random.random()) or 0.0)
                    retries += 1
                    continue
                if hops:
                    return CallOutcome(
                        False,
                        f"connection_lost: could not connect to {request.url} to poll the call "
                        f"(tried {retries + 1} times): {type(exc).__name__}: {exc}; the call "
                        "was accepted and may still be running, so it was not sent again",
                    )
                return CallOutcome(
                    False,
                    f"connection_failed: could not connect to {self.url} "
                    f"(tried {retries + 1} times): {type(exc).__name__}: {exc}",
                )
            except httpx.TimeoutException:
                return CallOutcome(
                    False,
                    f"timeout: no answer from {self.url} within {CALL_TIMEOUT.read:g} s; "
                    "the call may still be running on the server",
                )
            except httpx.HTTPError as exc:
                return CallOutcome(
                    False,
                    f"connection_lost: the connection to {self.url} broke after the request "
                    f"was sent ({type(exc).__name__}: {exc}); the call may have run, so it "
                    "was not retried",
                )
            status = response.status_code
            # 503 (and a proxy's 408/429): not ready; the call did not run.
            if status in protocol.RETRY_STATUSES and retries < protocol.MAX_RETRIES:
                retry_after = response.headers.get(protocol.RETRY_AFTER_HEADER)
                delay = protocol.retry_delay(retries, retry_after, random.random())
                if delay is not None:
                    await anyio.sleep(delay)
                    retries += 1
                    continue
            if status not in protocol.REDIRECT_STATUSES or hops >= protocol.MAX_REDIRECTS:
                return outcome_from_response(status, response.content)
            try:
                method, url = protocol.next_hop(
                    request.method, str(request.url), status, response.headers.get("location")
                )
            except ValueError as exc:
                return CallOutcome(False, f"bad_response (HTTP {status}): {exc}")
            request = _hop(client, request, method, url, home)
            retries, hops = 0, hops + 1

    async def _stream(self, response: httpx.Response, on_item: OnItem | None) -> CallOutcome:
        items: list[Any] = []
        async for line in response.aiter_lines():
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                return CallOutcome(False, f"bad_response (HTTP 200): a stream line {line[:200]!r}")
            if isinstance(obj, dict) and "item" in obj:
                items.append(obj["item"])
                if on_item is not None:
                    await on_item(len(items) - 1, obj["item"])
            elif isinstance(obj, dict) and obj.get("done") is True:
                return CallOutcome(True, _json_text(items), {"result": items})
            else:
                err = obj.get("error") if isinstance(obj, dict) else None
                code = err.get("code") if isinstance(err, dict) else None
                row = protocol.ERROR_BY_CODE.get(code) if isinstance(code, str) else None
                text = error_text(row.status if row else 500, obj, line.encode())
                return CallOutcome(False, f"{text}\n\nitems before the error: {_json_text(items)}")
        return CallOutcome(
            False,
            f"connection_lost: the stream from {self.url} ended before its last line "
            f"after {len(items)} item(s); the function may have run",
        )


def _origin_only(base: str) -> Any:
    """A request hook that drops the credentials from a request to another origin."""
    home = protocol.origin(base)

    def hook(request: httpx.Request) -> None:
        if protocol.origin(str(request.url)) != home:
            for name in protocol.ORIGIN_ONLY_HEADERS:
                request.headers.pop(name, None)

    return hook


def _hop(
    client: httpx.AsyncClient,
    request: httpx.Request,
    method: str,
    url: str,
    home: tuple[str, str, int],
) -> httpx.Request:
    """The request after a redirect: a GET drops the body; another origin, the credentials."""
    headers = httpx.Headers(request.headers)
    if method == "GET":
        headers.pop("content-type", None)
        headers.pop("content-length", None)
    content = request.content if method == request.method else None
    hop = client.build_request(method, url, content=content, headers=headers)
    if protocol.origin(url) != home:
        for name in protocol.ORIGIN_ONLY_HEADERS:
            hop.headers.pop(name, None)
    return hop


# --------------------------------------------------------------------------- answers


def outcome_from_response(status: int, content: bytes) -> CallOutcome:
    """Turn a protocol v1 answer into what the agent reads."""
    try:
        payload: object = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    if status == 200:
        if isinstance(payload, dict) and "result" in payload:
            # Tensors become summaries: far under an agent's tool-result limit.
            value = summarize_tensors(payload["result"])
            text = value if isinstance(value, str) else _json_text(value)
            return CallOutcome(True, text, {"result": value})
        return CallOutcome(
            False,
            f"bad_response (HTTP 200): expected a JSON object with a 'result', got "
            f"{_snippet(content)}",
        )
    return CallOutcome(False, error_text(status, payload, content))


def error_text(status: int, payload: object, content: bytes = b"") -> str:
    """``code (HTTP n): message`` then the error's details and remote traceback."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not (isinstance(err, dict) and isinstance(err.get("code"), str)):
        proxy = _PROXY_BY_STATUS.get(status)
        if proxy is not None:
            return f"{proxy.code} (HTTP {status}): {proxy.description} {_snippet(content)}"
        return (
            f"bad_response (HTTP {status}): the server did not answer a scopegen error: "
            f"{_snippet(content)}"
        )
    lines = [f"{err['code']} (HTTP {status}): {err.get('message', '')}"]
    if "type" in err:
        lines.append(f"type: {err['type']}")
    details = err.get("details")
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict):
                loc = ".".join(str(part) for part in d.get("loc") or ()) or "(arguments)"
                lines.append(f"- {loc}: {d.get('msg', d)}")
            else:
                lines.append(f"- {d}")
    elif details is not None:
        lines.append(f"details: {_json_text(details)}")
    for key, value in err.items():
        if key not in _TRACEBACK_KEYS:
            lines.append(f"{key}: {value if isinstance(value, str) else _json_text(value)}")
    traceback = err.get("traceback")
    if isinstance(traceback, str) and traceback:
        lines += ["", "remote traceback:", traceback.rstrip()]
    return "\n".join(lines)


_PROXY_BY_STATUS: Final = {e.status: e for e in protocol.PROXY_ERRORS}


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _snippet(content: bytes) -> str:
    return repr(content[:300].decode("utf-8", errors="replace"))
