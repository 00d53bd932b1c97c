"""OpenAPI 3.1 document of the RPC server (protocol v1), built from the IR.

Every status the server can answer on a documented route is documented with
its schema, so a property-based run (schemathesis) finds no undocumented
response. Named types live in ``components.schemas``; the IR's per-schema
``$defs`` references are rewritten to point there.
"""

from __future__ import annotations

from typing import Any

from scopegen.spec import Function, Interface, type_schema, typedef_schema

__all__ = ["ERROR_CODES", "openapi"]

OPENAPI_VERSION = "3.1.0"

# status -> (code(s), description); the table of DESIGN §4.
ERROR_CODES: dict[int, tuple[tuple[str, ...], str]] = {
    400: (("bad_request",), "The body is not valid JSON, or not a JSON object."),
    401: (("unauthorized",), "A token is configured and the bearer token is missing or wrong."),
    404: (("unknown_function", "not_found"), "No such exposed function, or no such route."),
    405: (("method_not_allowed",), "Wrong method on a known route."),
    413: (("payload_too_large",), "The body is over the server's limit."),
    422: (("invalid_arguments",), "Missing, unexpected or wrongly typed arguments."),
    500: (
        ("function_error", "unserializable_result"),
        "The function raised, or its result is not JSON.",
    ),
    503: (
        ("unavailable",),
        "Every worker is still running a call that ran past its timeout; this call did not run.",
    ),
    504: (("timeout",), "The call ran past the server's per-call timeout."),
}

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
        paths[f"/v1/call/{fn.name}"] = {"post": _call_operation(interface, fn, auth)}
    paths["/v1/functions"] = {"get": _manifest_operation(auth)}
    paths["/openapi.json"] = {"get": _openapi_operation(auth)}
    paths["/healthz"] = {"get": _health_operation()}
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
            "bearer": {"type": "http", "scheme": "bearer", "description": "SCOPEGEN_TOKEN"}
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


def _error_response(status: int, schema_name: str = "Error") -> dict[str, Any]:
    codes, description = ERROR_CODES[status]
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
    "x-request-id": {
        "description": "Echoes the request's x-request-id, or a fresh id.",
        "schema": {"type": "string"},
    }
}


def _call_operation(interface: Interface, fn: Function, auth: bool) -> dict[str, Any]:
    params = _rewrite(interface.parameters_schema(fn))
    result = {
        "type": "object",
        "properties": {"result": _rewrite(type_schema(fn.returns))},
        "required": ["result"],
    }
    op: dict[str, Any] = {
        "operationId": fn.name,
        "summary": ((fn.doc or "").strip().splitlines() or [fn.name])[0],
        "requestBody": {
            "required": any(p.required for p in fn.params),
            "content": _json(params),
        },
        "responses": {
            "200": {
                "description": "The function's result.",
                "headers": _REQUEST_ID,
                "content": _json(result),
            },
            "400": _error_response(400),
            "413": _error_response(413),
            "422": _error_response(422, "InvalidArgumentsError"),
            "500": _error_response(500, "CallError"),
            "503": _error_response(503),
            "504": _error_response(504),
        },
    }
    if fn.doc:
        op["description"] = fn.doc
    if auth:
        op["responses"]["401"] = _error_response(401)
    op["x-scopegen-async"] = fn.is_async
    return op


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
                        "code": {"const": "invalid_arguments"},
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
                        "code": {"enum": ["function_error", "unserializable_result"]},
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
