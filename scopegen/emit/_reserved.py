"""Names the generated client package binds itself, which exposed functions must not take.

The analyzer's SG009 reads ``CLIENT_RESERVED_NAMES``; the client emitter
refuses them too, so a package can never shadow its own helpers.
"""

from __future__ import annotations

__all__ = ["CLIENT_RESERVED_NAMES", "ERROR_CLASS_NAMES", "MODEL_MODULE_NAMES"]

ERROR_CLASS_NAMES = frozenset(
    {
        "BadRequest",
        "CallTimeout",
        "ConnectionFailed",
        "ConnectionLost",
        "FunctionError",
        "InterfaceMismatchWarning",
        "InvalidArguments",
        "InvalidResponse",
        "MethodNotAllowed",
        "NotFound",
        "PayloadTooLarge",
        "RemoteError",
        "ResponseTimeout",
        "ScopegenError",
        "ServiceUnavailable",
        "TransportError",
        "Unauthorized",
        "UnknownFunction",
        "UnserializableResult",
    }
)

CLIENT_RESERVED_NAMES = ERROR_CLASS_NAMES | frozenset(
    {
        # Public names of the package's ``__init__``.
        "AsyncClient",
        "Client",
        "NOT_GIVEN",
        "NotGiven",
        "types",
        # Helpers its modules import, and builtins its annotations use.
        "Any",
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
        "max_retries",
        "timeout",
        "token",
    }
)

# Names ``types.py`` imports; a class of the interface cannot take them.
MODEL_MODULE_NAMES = frozenset(
    {"Any", "BaseModel", "ConfigDict", "Enum", "Field", "Literal", "annotations"}
)
