"""OpenAPI 3.1 document of the RPC server (protocol v1), built from the IR.

Every status the server can answer on a documented route is documented with
its schema, so a property-based run (schemathesis) finds no undocumented
response. Named types live in ``components.schemas``; the IR's per-schema
``$defs`` references are rewritten to point there.
"""

from __future__ import annotations

from typing import Any

from scopegen import protocol
from scopegen.emit.schema import parameters_schema, type_schema, typedef_schema
from scopegen.spec import Function, Interface

__all__ = ["ERROR_CODES", "openapi"]

OPENAPI_VERSION = "3.1.0"


def _error_codes() -> dict[int, tuple[tuple[str, ...], str]]:
    by_status: dict[int, list[protocol.ErrorCode]] = {}
    for e in protocol.ERRORS:
        by_status.setdefault(e.status, []).append(e)
    out: dict[int, tuple[tuple[str, ...], str]] = {}
    for status, rows in sorted(by_status.items()):
        if len(rows) == 1:
            description = rows[0].description
        else:
            description = " ".join(f"`{e.code}`: {e.description}" for e in rows)
        out[status] = (tuple(e.code for e in rows), description)
    return out


# status -> (code(s), description), from scopegen.protocol's error table.
ERROR_CODES: dict[int, tuple[tuple[str, ...], str]] = _error_codes()
# Statuses a POST to an exposed function can answer (401 only when a token is set).
_CALL_STATUSES = sorted({e.status for e in protocol.ERRORS if e.on_call} - {401})
# Statuses whose error object carries more than code and message.
_ERROR_SCHEMAS = {422: "InvalidArgumentsError", 500: "CallError"}

_REF_PREFIX = "#/$defs/"
_COMPONENTS = "#/components/schemas/"


def openapi(interface: Interface, *, auth: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``interface``.

    ``auth`` declares the bearer-token scheme (a server started without a
    token accepts any request, so it can leave it out).
    """
    schemas: dict[str, Any] = {t.name: _rewrite(typedef_schema(t)) for t in interface.types}
    schemas.update(_error_schemas())
    paths: dict[str, Any] = {}
    for fn in interface.functions:
        paths[protocol.CALL_PREFIX + fn.name] = {"post": _call_operation(interface, fn, auth)}
    schemas["Job"] = _JOB_SCHEMA
    for fn in interface.functions:
        paths[protocol.JOBS_PREFIX + fn.name] = {"post": _submit_operation(interface, fn, auth)}
    paths[protocol.JOBS_PREFIX + "{job_id}"] = _job_operations(auth)
    paths[protocol.FUNCTIONS_PATH] = {"get": _manifest_operation(auth)}
    paths[protocol.OPENAPI_PATH] = {"get": _openapi_operation(auth)}
    paths[protocol.HEALTH_PATH] = {"get": _health_operation()}
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": interface.name,
            "version": interface.hash,
            "description": f"scopegen RPC server (protocol v1) for {interface.source_name}.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": protocol.TOKEN_ENV}
        }
        doc["security"] = [{"bearer": []}]
    return doc


def _rewrite(schema: Any) -> Any:
    """Point ``#/$defs/X`` at components and drop the embedded ``$defs``."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for k, v in schema.items():
            if k == "$defs":
                continue
            if k == "$ref" and isinstance(v, str) and v.startswith(_REF_PREFIX):
                out[k] = _COMPONENTS + v[len(_REF_PREFIX) :]
            else:
                out[k] = _rewrite(v)
        return out
    if isinstance(schema, list):
        return [_rewrite(v) for v in schema]
    return schema


def _error_ref(name: str) -> dict[str, Any]:
    return {"$ref": _COMPONENTS + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error_response(status: int) -> dict[str, Any]:
    codes, description = ERROR_CODES[status]
    schema_name = _ERROR_SCHEMAS.get(status, "Error")
    if schema_name == "Error":
        schema: dict[str, Any] = {
            "allOf": [
                _error_ref("Error"),
                {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
            ]
        }
    else:
        schema = _error_ref(schema_name)
    return {"description": description, "headers": _REQUEST_ID, "content": _json(schema)}


_REQUEST_ID = {
    protocol.REQUEST_ID_HEADER: {
        "description": "Echoes the request's x-request-id, or a fresh id.",
        "schema": {"type": "string"},
    }
}


def _call_operation(interface: Interface, fn: Function, auth: bool) -> dict[str, Any]:
    params = _rewrite(parameters_schema(interface, fn))
    if fn.streams:
        ok: dict[str, Any] = {
            "description": "The function's items as they are produced, one JSON object a"
            ' line: `{"item": …}` each, then `{"done": true}`, or `{"error": …}` if it'
            " fails midway. The schema is that of one line.",
            "headers": _REQUEST_ID,
            "content": {protocol.NDJSON_MEDIA_TYPE: {"schema": _stream_line(fn)}},
        }
    else:
        result = {
            "type": "object",
            "properties": {"result": _rewrite(type_schema(fn.returns))},
            "required": ["result"],
        }
        ok = {
            "description": "The function's result.",
            "headers": _REQUEST_ID,
            "content": _json(result),
        }
    op: dict[str, Any] = {
        "operationId": fn.name,
        "summary": ((fn.doc or "").strip().splitlines() or [fn.name])[0],
        "requestBody": {
            "required": any(p.required for p in fn.params),
            "content": _json(params),
        },
        "responses": {
            "200": ok,
            **{str(status): _error_response(status) for status in _CALL_STATUSES},
        },
    }
    if fn.doc:
        op["description"] = fn.doc
    if auth:
        op["responses"]["401"] = _error_response(401)
    op["x-scopegen-async"] = fn.is_async
    op["x-scopegen-streams"] = fn.streams
    return op


_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A job: `result` (a streaming function's: the list of its items) once it"
    " succeeded, `error` once it failed, `items` (produced so far) while a streaming job runs.",
    "properties": {
        "id": {"type": "string"},
        "function": {"type": "string"},
        "status": {"enum": list(protocol.JOB_STATUSES)},
        "created_at": {"type": "number", "description": "Unix time, seconds."},
        "started_at": {"type": ["number", "null"]},
        "finished_at": {"type": ["number", "null"]},
        "result": {},
        # The error object a call would have answered (any code of the table).
        "error": {"$ref": _COMPONENTS + "Error/properties/error"},
        "items": {"type": "array"},
    },
    "required": ["id", "function", "status", "created_at", "started_at", "finished_at"],
}


def _job_answer(description: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"job": _error_ref("Job")},
        "required": ["job"],
    }
    return {"description": description, "headers": _REQUEST_ID, "content": _json(schema)}


def _submit_operation(interface: Interface, fn: Function, auth: bool) -> dict[str, Any]:
    call = _call_operation(interface, fn, auth)
    responses = {
        status: answer
        for status, answer in call["responses"].items()
        if int(status) < 500 and status != "200"  # answered before anything is queued
    }
    responses["202"] = _job_answer("The job, queued.")
    responses["429"] = _error_response(429)
    op: dict[str, Any] = {
        "operationId": f"scopegen_job_submit_{fn.name}",
        "summary": f"Submit {fn.name} as a job.",
        "requestBody": call["requestBody"],
        "responses": dict(sorted(responses.items())),
    }
    return op


def _job_operations(auth: bool) -> dict[str, Any]:
    param = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    out: dict[str, Any] = {}
    for method, summary, answer in (
        ("get", "A job's status, and its result once finished.", "The job."),
        ("delete", "Cancel a job.", "The job, cancelled (unless it had finished)."),
    ):
        responses = {"200": _job_answer(answer), "404": _error_response(404)}
        if auth:
            responses["401"] = _error_response(401)
        out[method] = {
            "operationId": f"scopegen_job_{method}",
            "summary": summary,
            "parameters": [param],
            "responses": dict(sorted(responses.items())),
        }
    return out


def _stream_line(fn: Function) -> dict[str, Any]:
    """One NDJSON line of a streaming answer."""
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {"item": _rewrite(type_schema(fn.returns))},
                "required": ["item"],
            },
            {
                "type": "object",
                "properties": {"done": {"const": True}},
                "required": ["done"],
            },
            # function_error, unserializable_result or timeout: any error line.
            _error_ref("Error"),
        ]
    }


def _manifest_operation(auth: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": "scopegen_functions",
        "summary": "The manifest: every exposed function with its JSON Schemas.",
        "responses": {
            "200": {
                "description": "The manifest, as `scopegen schema` prints it.",
                "headers": _REQUEST_ID,
                "content": _json({"type": "object"}),
            }
        },
    }
    if auth:
        op["responses"]["401"] = _error_response(401)
    return op


def _openapi_operation(auth: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": "scopegen_openapi",
        "summary": "This document.",
        "responses": {
            "200": {
                "description": "OpenAPI 3.1.",
                "headers": _REQUEST_ID,
                "content": _json({"type": "object"}),
            }
        },
    }
    if auth:
        op["responses"]["401"] = _error_response(401)
    return op


def _health_operation() -> dict[str, Any]:
    return {
        "operationId": "scopegen_healthz",
        "summary": "Liveness: answers once the interface is loaded; never needs a token.",
        "security": [],
        "responses": {
            "200": {
                "description": "The interface is loaded.",
                "headers": _REQUEST_ID,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {"status": {"const": "ok"}},
                        "required": ["status"],
                    }
                ),
            },
            "503": {
                "description": "Degraded: every worker is stuck in a call past its timeout.",
                "headers": _REQUEST_ID,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "status": {"const": "degraded"},
                            "stuck_calls": {"type": "integer"},
                        },
                        "required": ["status", "stuck_calls"],
                    }
                ),
            },
        },
    }


def _error_schemas() -> dict[str, Any]:
    base_error = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
        "required": ["code", "message"],
    }
    detail = {
        "type": "object",
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
        "required": ["loc", "msg", "type"],
    }
    return {
        "Error": {
            "type": "object",
            "properties": {"error": base_error},
            "required": ["error"],
        },
        "InvalidArgumentsError": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"enum": list(ERROR_CODES[422][0])},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": detail},
                    },
                    "required": ["code", "message", "details"],
                }
            },
            "required": ["error"],
        },
        "CallError": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"enum": list(ERROR_CODES[500][0])},
                        "message": {"type": "string"},
                        "type": {"type": "string", "description": "The exception's class."},
                        "traceback": {"type": "string"},
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
        },
    }
