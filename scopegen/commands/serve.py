"""``scopegen serve``: lint, import, bind, then run the app under uvicorn.

Start-up fails fast and loudly: lint errors stop before the interface is
imported (exit 1), an exception while importing it prints the traceback
(exit 1), a bad option exits 2. The port is bound here, before uvicorn
starts, so ``--port 0`` works and the line
``scopegen: serving NAME on http://HOST:PORT`` always names the real port.
"""

from __future__ import annotations

import gc
import ipaddress
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scopegen.server import ServerSettings

__all__ = ["is_loopback", "parse_model_overrides", "run_serve", "usage_error"]


def run_serve(
    path: Path,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    reload: bool = False,
    insecure: bool = False,
) -> int:
    """Serve ``path`` until interrupted; return the process exit code.

    ``settings`` are the server's (the CLI builds them from its options).
    ``reload`` re-executes the interface after each edit, keeping the values
    of unchanged model-loading statements (see ``scopegen.server.reload``).
    ``insecure`` allows a non-loopback ``host`` without a token.
    """
    token = settings.token
    if token is None and not is_loopback(host) and not insecure:
        _err(
            f"scopegen serve: refusing to bind {host} without a token: anyone who can reach "
            "it could run your functions. Set SCOPEGEN_TOKEN, bind 127.0.0.1, or pass "
            "--insecure."
        )
        return 2

    # Lint before importing anything heavy (the interface itself included).
    from scopegen.analyze import analyze_file

    try:
        analysis = analyze_file(path)
    except OSError as exc:
        _err(f"scopegen serve: cannot read {path}: {exc.strerror or exc}")
        return 2
    for d in analysis.diagnostics:
        _err(str(d))
    if analysis.errors:
        _err(f"scopegen serve: {len(analysis.errors)} lint error(s); not serving {path}")
        return 1

    from scopegen.runtime import ModelNotFoundError
    from scopegen.server import (
        InterfaceImportError,
        InterfaceLoadError,
        ScopegenApp,
        create_app,
    )

    try:
        if reload:
            from scopegen.server.reload import Reloader

            reloader = Reloader(path, settings)
            app = ScopegenApp(reloader.load(analysis), settings)
            reloader.attach(app)
        else:
            app = create_app(analysis, settings)
    except KeyboardInterrupt:
        _err("scopegen serve: interrupted while importing the interface")
        return 130
    except InterfaceImportError as exc:
        if isinstance(exc.error, ModelNotFoundError):
            # Where to put the weights, not a bug in the file: one line, no traceback.
            _err(f"scopegen serve: {exc.where or exc.path}: {exc.error}")
        else:
            _err(exc.traceback_text.rstrip())
            _err(f"scopegen serve: importing {exc.path} failed (traceback above); not serving")
        return 1
    except InterfaceLoadError as exc:
        _err(f"scopegen serve: {exc}")
        return 1
    del analysis  # Its parse tree is not needed while serving.

    try:
        sock = _bind(host, port)
    except OSError as exc:
        _err(f"scopegen serve: cannot listen on {host}:{port}: {exc.strerror or exc}")
        return 1
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    n = len(app.loaded.interface.functions)
    print(
        f"scopegen: serving {app.loaded.interface.name} on http://{shown_host}:{bound_port} "
        f"({n} function{'s' if n != 1 else ''}"
        f"{', token required' if token else ''})",
        flush=True,
    )

    import uvicorn

    config = uvicorn.Config(
        app,
        lifespan="on",
        access_log=False,  # The app writes its own, cheaper, access log.
        log_level="info",
        ws="none",
        server_header=False,
    )
    server = uvicorn.Server(config)
    # Everything loaded so far (analyzer, CLI, the interface and its model) lives
    # for the whole run: keep it out of the collector's scans.
    gc.collect()
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
        sock.close()
    return 0


def usage_error(exc: ValueError) -> int:
    """Report a bad option (a ``ServerSettings`` or ``--model`` complaint); exit code 2."""
    message = str(exc)
    field, sep, rest = message.partition(" ")
    if sep and field.isidentifier() and "_" in field:
        message = f"--{field.replace('_', '-')} {rest}"  # max_body -> --max-body
    _err(f"scopegen serve: {message}")
    return 2


def parse_model_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["org/name=/path", ...]`` -> ``{"org/name": "/path"}``."""
    out: dict[str, str] = {}
    for item in items:
        model_id, sep, where = item.partition("=")
        if not sep or not model_id.strip() or not where.strip():
            raise ValueError(
                f"--model expects ID=PATH (e.g. google/gemma-2-9b=./gemma), got {item!r}"
            )
        out[model_id.strip()] = where.strip()
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    if host == "localhost":
        bare = "127.0.0.1"
    # proto must say TCP: asyncio only sets TCP_NODELAY on sockets that do, and
    # without it small responses wait on delayed ACKs (~40 ms each).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
