"""The ``scopegen`` command line (typer).

Each command is a thin shell over a function of the package; heavy modules
(uvicorn, modal, the server) are imported inside the command that needs them.
``scopegen lint`` does not come through here at all (``scopegen/__main__.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="scopegen",
    help="Typed RPC for GPU functions: lint, build, serve and deploy interface files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from scopegen import __version__

        typer.echo(f"scopegen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Typed RPC for GPU functions: lint, build, serve and deploy interface files."""


# Declared once, in scopegen.commands.lint (argparse: `scopegen lint` skips typer
# altogether, see scopegen/__main__.py); listed here for `scopegen --help`.
@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def lint(ctx: typer.Context) -> None:
    """Check interface files statically (no import, no model load)."""
    from scopegen.commands.lint import main as run_lint

    raise typer.Exit(run_lint(ctx.args))


@app.command()
def schema(
    path: Annotated[Path, typer.Argument(help="The interface file.")],
) -> None:
    """Print the manifest (JSON Schema of every exposed function)."""
    from scopegen.commands.schema import run_schema

    raise typer.Exit(run_schema(path))


@app.command()
def build(
    path: Annotated[Path, typer.Argument(help="The interface file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("build"),
    name: Annotated[
        str | None, typer.Option(help="Client package name (default: from config or folder).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if OUT differs from what would be generated.")
    ] = False,
) -> None:
    """Generate the typed client package and the Modal app."""
    from scopegen.commands.build import run_build

    raise typer.Exit(run_build(path, out, name=name, check=check))


@app.command()
def serve(
    path: Annotated[Path, typer.Argument(help="The interface file.")],
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    # Options left unset (None) take ServerSettings' defaults: they are declared there once.
    call_timeout: Annotated[
        float | None,
        typer.Option(help="Per-call timeout in seconds (504 past it; default: none)."),
    ] = None,
    block_warning: Annotated[
        float | None,
        typer.Option(
            help="Warn when a call blocks the event loop this long, in seconds (0.5; 0: never)."
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(help="Sync calls that may run at once (default: one at a time)."),
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option(help="Largest request body in bytes (413 past it; default: 64 MiB)."),
    ] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Folder of <org>--<name> model folders.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="ID=PATH: where a model's files are.")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per call.")] = True,
    hide_tracebacks: Annotated[
        bool, typer.Option(help="Leave remote tracebacks out of error responses.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback bind without SCOPEGEN_TOKEN.")
    ] = False,
    reload: Annotated[bool, typer.Option(help="Reload on edits, keeping loaded models.")] = False,
) -> None:
    """Serve an interface file over HTTP (CPU by default)."""
    from scopegen.commands.serve import parse_model_overrides, run_serve, usage_error
    from scopegen.server import ServerSettings

    given: dict[str, Any] = {
        "max_concurrency": max_concurrency,
        "max_body": max_body,
        "block_warning": block_warning,
    }
    try:
        settings = ServerSettings(
            call_timeout=call_timeout,
            access_log=access_log,
            hide_tracebacks=hide_tracebacks,
            models_dir=str(models_dir) if models_dir is not None else None,
            models=parse_model_overrides(model or []),
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValueError as exc:
        raise typer.Exit(usage_error(exc)) from None
    raise typer.Exit(
        run_serve(path, settings, host=host, port=port, reload=reload, insecure=insecure)
    )


@app.command()
def deploy(
    path: Annotated[Path, typer.Argument(help="The interface file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("build"),
    name: Annotated[str | None, typer.Option(help="Client package name.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write files and print the commands; contact nothing.")
    ] = False,
) -> None:
    """Build, download models into the Modal volume, and `modal deploy`."""
    from scopegen.commands.deploy import run_deploy

    raise typer.Exit(run_deploy(path, out, name=name, dry_run=dry_run))


@app.command()
def mcp(
    url: Annotated[str, typer.Argument(help="Base URL of a running scopegen server.")],
    token_env: Annotated[
        str, typer.Option(help="Environment variable that holds the server's token.")
    ] = "SCOPEGEN_TOKEN",
) -> None:
    """Bridge a running server to MCP over stdio: one tool per exposed function."""
    from scopegen.commands.mcp import run_mcp

    raise typer.Exit(run_mcp(url, token_env=token_env))


def main() -> None:
    app()
