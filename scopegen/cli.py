"""The ``scopegen`` command line (typer).

Each command is a thin shell over a function of the package; heavy modules
(uvicorn, modal, the server) are imported inside the command that needs them.
``scopegen lint`` does not come through here at all (``scopegen/__main__.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

app = typer.Typer(
    name="scopegen",
    help="Typed RPC for GPU functions: lint, build, serve and deploy interface files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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


class _Command(TyperCommand):
    """Usage lines as click writes them (``scopegen serve [OPTIONS] PATH``), not ``{PATH}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):  # listed even when hidden from help
                pieces.append(param.metavar or (param.name or "ARG").upper())
        return pieces


# Every argument and valued option names its metavar: typer's own (``{path}``,
# ``<list[str]>``) say nothing to a reader. Arguments are described in the
# command's docstring (the usage line names them); flags are one name each.
_PATH = typer.Argument(metavar="PATH", hidden=True, show_default=False)


@app.command(cls=_Command)
def schema(path: Annotated[Path, _PATH]) -> None:
    """Print PATH's manifest: the JSON Schema of every exposed function."""
    from scopegen.commands.schema import run_schema

    raise typer.Exit(run_schema(path))


@app.command(cls=_Command)
def build(
    path: Annotated[Path, _PATH],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="OUT",
            help="Output folder (default: build/<package>, one per interface).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Client package name (default: the configuration's name, else the interface's).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if OUT differs from what would be generated.")
    ] = False,
) -> None:
    """Generate the typed client package and the Modal app of PATH."""
    from scopegen.commands.build import run_build

    raise typer.Exit(run_build(path, out, name=name, check=check))


@app.command(cls=_Command)
def serve(
    path: Annotated[Path, _PATH],
    host: Annotated[str, typer.Option(metavar="HOST", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port; 0 picks a free one.")] = 8000,
    # Options left unset (None) take ServerSettings' defaults: they are declared there once.
    call_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Per-call timeout (504 past it; default: none). It cannot stop an async def"
            " that blocks the event loop.",
        ),
    ] = None,
    item_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Longest wait for each item of a streaming result (default: none).",
        ),
    ] = None,
    job_ttl: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="How long finished jobs are kept (default: 3600)."),
    ] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Jobs kept at most (default: 1000); past it the oldest finished one goes.",
        ),
    ] = None,
    block_warning: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Warn when a call blocks the event loop this long (default: 0.5; 0: never).",
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(metavar="N", help="Sync calls that may run at once (default: one at a time)."),
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option(metavar="BYTES", help="Largest request body (413 past it; default: 64 MiB)."),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder of <org>--<name> model folders (default: $SCOPEGEN_MODELS_DIR).",
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ID=PATH",
            help="Where one model's files are; repeat it for more models. Checked first.",
        ),
    ] = None,
    no_access_log: Annotated[
        bool, typer.Option("--no-access-log", help="Do not log one line per call.")
    ] = False,
    hide_tracebacks: Annotated[
        bool,
        typer.Option("--hide-tracebacks", help="Leave remote tracebacks out of error responses."),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a non-loopback bind without SCOPEGEN_TOKEN."),
    ] = False,
    reload: Annotated[
        bool, typer.Option("--reload", help="Reload on edits, keeping loaded models.")
    ] = False,
) -> None:
    """Serve the interface file PATH over HTTP (CPU by default)."""
    from scopegen.commands.serve import parse_model_overrides, run_serve, usage_error
    from scopegen.server import ServerSettings

    given: dict[str, Any] = {
        "max_concurrency": max_concurrency,
        "max_body": max_body,
        "block_warning": block_warning,
        "item_timeout": item_timeout,
        "job_ttl": job_ttl,
        "max_jobs": max_jobs,
    }
    try:
        settings = ServerSettings(
            call_timeout=call_timeout,
            access_log=not no_access_log,
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


_OUT = typer.Option(
    "--out", "-o", metavar="OUT", help="Output folder (default: build/<package>)."
)
_NAME = typer.Option(metavar="NAME", help="Client package name.")
_ENV = typer.Option(
    "--env", "-e", metavar="ENV", help="Modal environment (default: the configuration's)."
)
_DRY_RUN = typer.Option("--dry-run", help="Write files and print the commands; contact nothing.")


@app.command(cls=_Command)
def deploy(
    path: Annotated[Path, _PATH],
    out: Annotated[Path | None, _OUT] = None,
    name: Annotated[str | None, _NAME] = None,
    env: Annotated[str | None, _ENV] = None,
    tag: Annotated[
        str | None,
        typer.Option(metavar="TAG", help="Tag the deployment with a version (modal deploy --tag)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download every model again, complete or not.")
    ] = False,
    dry_run: Annotated[bool, _DRY_RUN] = False,
) -> None:
    """Build PATH, fetch its models into a Modal volume, `modal deploy` it, record its URL."""
    from scopegen.commands.deploy import run_deploy

    raise typer.Exit(
        run_deploy(path, out, name=name, dry_run=dry_run, environment=env, tag=tag, force=force)
    )


@app.command(cls=_Command)
def dev(
    path: Annotated[Path, _PATH],
    out: Annotated[Path | None, _OUT] = None,
    name: Annotated[str | None, _NAME] = None,
    env: Annotated[str | None, _ENV] = None,
    dry_run: Annotated[bool, _DRY_RUN] = False,
) -> None:
    """Build PATH, fetch its models, then `modal serve` it (a -dev URL, redeployed on edits)."""
    from scopegen.commands.deploy import run_dev

    raise typer.Exit(run_dev(path, out, name=name, environment=env, dry_run=dry_run))


@app.command(cls=_Command)
def mcp(
    url: Annotated[str, typer.Argument(metavar="URL", hidden=True, show_default=False)],
    token_env: Annotated[
        str,
        typer.Option(metavar="VAR", help="Environment variable that holds the server's token."),
    ] = "SCOPEGEN_TOKEN",
) -> None:
    """Bridge the server at URL to MCP over stdio, one tool per function."""
    from scopegen.commands.mcp import run_mcp

    raise typer.Exit(run_mcp(url, token_env=token_env))


def main() -> None:
    app()
