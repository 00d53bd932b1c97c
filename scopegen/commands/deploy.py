"""``scopegen deploy`` and ``scopegen dev``: build, download the models on CPU, then Modal.

``scopegen deploy`` runs four steps, each shown as it runs:

1. ``scopegen build`` writes ``OUT/`` (the client package, ``OUT/modal_app.py``
   and ``OUT/modal_download.py``);
2. ``modal run --detach OUT/modal_download.py::download_models`` fills the
   models volume on a CPU container, in an app of its own (skipped when the
   interface uses no model); ``--detach`` keeps it running if the terminal closes;
3. ``modal deploy OUT/modal_app.py`` creates or updates the GPU web endpoint;
4. it asks Modal for the endpoint's URL (``modal.Cls.from_name(app, "Server")``,
   never by reading modal's console output, which wraps and carries escape
   codes), records it in ``OUT/scopegen-deploy.json`` and builds the client
   again with that URL as its default.

``--dry-run`` does step 1 and prints the commands of steps 2 and 3 without
contacting Modal. ``scopegen dev`` does steps 1 and 2, then ``modal serve``.
Modal always runs as ``python -m modal`` with this interpreter, the one that
can import scopegen (``add_local_python_source`` needs it).
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from scopegen.commands.build import (
    DEPLOY_RECORD,
    MODAL_APP,
    MODAL_DOWNLOAD,
    BuildError,
    BuildResult,
    DeployRecord,
    deploy_record_text,
    generate,
    write_build,
)
from scopegen.extras import MODAL_REQUIREMENT, install_hint
from scopegen.protocol import env_prefix

__all__ = [
    "DeployError",
    "DeployPlan",
    "deploy",
    "modal_command",
    "modal_version_problem",
    "plan_deploy",
    "run_deploy",
    "run_dev",
    "web_url",
]

MODAL_MISSING = f"modal is not installed: {install_hint(MODAL_REQUIREMENT)}"
# Image.uv_pip_install came in modal 1.1.0, @app.cls(startup_timeout=) in 1.1.4.
MODAL_MIN_VERSION = (1, 1, 4)


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy runs, worked out before anything runs."""

    app_file: Path
    download_file: Path
    app_name: str
    # The Modal environment (None: modal's default, e.g. MODAL_ENVIRONMENT).
    environment: str | None
    model_ids: tuple[str, ...]
    download: list[str]
    deploy: list[str]
    serve: list[str]
    env_prefix: str
    proxy_auth: bool


def modal_command() -> list[str] | None:
    """How to run the ``modal`` CLI; ``None`` if modal is not installed.

    Always this interpreter's modal: a ``modal`` first on PATH may belong to
    another environment, whose Python cannot import scopegen.
    """
    if importlib.util.find_spec("modal") is None:
        return None
    return [sys.executable, "-m", "modal"]


def modal_version_problem() -> str | None:
    """Why the installed modal cannot run the generated apps, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("modal")
    except PackageNotFoundError:
        return None  # importable without metadata (a checkout): trust it
    parts = []
    for piece in installed.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) >= MODAL_MIN_VERSION:
        return None
    least = ".".join(map(str, MODAL_MIN_VERSION))
    return (
        f"modal {installed} is installed, and the generated apps need modal >= {least}: "
        f"{install_hint(MODAL_REQUIREMENT)}"
    )


def plan_deploy(
    out: Path,
    result: BuildResult,
    *,
    modal: Sequence[str],
    environment: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> DeployPlan:
    """The commands that deploy ``result``, built into ``out``.

    ``environment`` (``--env``) overrides the configuration's ``environment``.
    """
    app_file = out / MODAL_APP
    download_file = out / MODAL_DOWNLOAD
    env = environment or result.config.environment
    env_args = ["--env", env] if env else []
    tag_args = ["--tag", tag] if tag else []
    return DeployPlan(
        app_file=app_file,
        download_file=download_file,
        app_name=result.app_name,
        environment=env,
        model_ids=result.model_ids,
        download=[
            *modal,
            "run",
            "--detach",
            *env_args,
            f"{download_file}::download_models",
            *(["--force"] if force else []),
        ],
        deploy=[*modal, "deploy", *env_args, *tag_args, str(app_file)],
        serve=[*modal, "serve", *env_args, str(app_file)],
        env_prefix=env_prefix(result.package),
        proxy_auth=result.config.proxy_auth,
    )


def web_url(app_name: str, environment: str | None) -> str:
    """The URL of the deployed app's ``Server.web`` endpoint, as Modal's API gives it."""
    import modal

    server = modal.Cls.from_name(app_name, "Server", environment_name=environment)
    url = server().web.get_web_url()
    if not url:
        raise RuntimeError(f"the app {app_name!r} has no web endpoint Server.web")
    return str(url)


class DeployError(Exception):
    """A deploy step failed; it was reported on stderr. ``exit_code`` is the command's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_deploy(
    path: Path,
    out: Path | None,
    *,
    name: str | None,
    dry_run: bool,
    environment: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> int:
    """The ``scopegen deploy`` command; returns the exit code."""
    try:
        deploy(
            path, out, name=name, dry_run=dry_run, environment=environment, tag=tag, force=force
        )
    except DeployError as exc:
        return exc.exit_code
    return 0


def deploy(
    path: Path,
    out: Path | None,
    *,
    name: str | None,
    dry_run: bool,
    environment: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> str | None:
    """Build, download the models, deploy, showing each step; return the endpoint URL.

    ``out`` defaults to ``build/<package>``. The URL (from Modal's API) is None
    for a dry run. A failure is reported on stderr, then raised as ``DeployError``.
    """
    console, errors = _consoles()
    say = _Say("deploy", errors)

    def fail(code: int, message: str | None = None) -> DeployError:
        if message is not None:
            say(message)
        return DeployError(message or say.last or f"scopegen deploy failed (exit {code})", code)

    modal = _modal_or_error(path, say, needed=not dry_run)
    if isinstance(modal, int):
        raise fail(modal)

    result = _build(path, out, name, console, say, step="1/4")
    if isinstance(result, int):
        raise fail(result)
    out = result.out
    plan = plan_deploy(
        out, result, modal=modal or ["modal"], environment=environment, tag=tag, force=force
    )

    if dry_run:
        if modal is None:
            console.print(f"[yellow]note:[/] {escape(MODAL_MISSING)} (needed to run these)")
        console.print("[bold]dry run:[/] the files are written; these commands would run next:")
        if plan.model_ids:
            console.print(f"  {escape(shlex.join(plan.download))}")
        console.print(f"  {escape(shlex.join(plan.deploy))}")
        console.print(
            f"then the endpoint's URL, from Modal's API, goes to {escape(str(out / DEPLOY_RECORD))}"
            f" and becomes the default URL of the client in {escape(str(out / result.package))}/"
        )
        _print_client_env(console, plan)
        return None

    code = _download(plan, console, say, step="2/4")
    if code != 0:
        raise fail(code)

    console.print(f"[bold]3/4[/] deploy the GPU app: {escape(shlex.join(plan.deploy))}")
    code = _run(plan.deploy)
    if code != 0:
        raise fail(code, f"modal deploy failed (exit {code})")

    where = f" (environment {plan.environment})" if plan.environment else ""
    console.print(f"[bold]4/4[/] ask Modal for the endpoint of {escape(plan.app_name)}{where}")
    try:
        url = web_url(plan.app_name, plan.environment)
    except Exception as exc:  # modal's errors are many; each one means the same here
        raise fail(
            1,
            f"{plan.app_name} is deployed, but Modal did not give its endpoint URL: "
            f"{str(exc) or type(exc).__name__}. Run `scopegen deploy` again, or set "
            f"{plan.env_prefix}_URL to the URL shown above",
        ) from None
    record = DeployRecord(app=plan.app_name, environment=plan.environment, url=url)
    _write_record(out, record)
    try:
        rebuilt = generate(path, out, name=name)
    except BuildError as exc:  # the interface changed meanwhile
        raise fail(exc.exit_code, str(exc)) from None
    write_build(out, rebuilt)
    console.print(f"[bold green]endpoint:[/] {escape(url)}")
    console.print(
        f"recorded in {escape(str(out / DEPLOY_RECORD))}; the client in "
        f"{escape(str(out / rebuilt.package))}/ calls it by default "
        f"(pip install it again if an older build is installed; {plan.env_prefix}_URL "
        "still overrides it)"
    )
    _print_client_env(console, plan)
    return url


def run_dev(
    path: Path,
    out: Path | None,
    *,
    name: str | None,
    environment: str | None = None,
    dry_run: bool = False,
) -> int:
    """The ``scopegen dev`` command (``modal serve``); returns the exit code."""
    console, errors = _consoles()
    say = _Say("dev", errors)
    modal = _modal_or_error(path, say, needed=not dry_run)
    if isinstance(modal, int):
        return modal
    result = _build(path, out, name, console, say, step="1/3")
    if isinstance(result, int):
        return result
    plan = plan_deploy(result.out, result, modal=modal or ["modal"], environment=environment)
    if dry_run:
        console.print("[bold]dry run:[/] the files are written; these commands would run next:")
        if plan.model_ids:
            console.print(f"  {escape(shlex.join(plan.download))}")
        console.print(f"  {escape(shlex.join(plan.serve))}")
        return 0
    code = _download(plan, console, say, step="2/3")
    if code != 0:
        return code
    console.print(f"[bold]3/3[/] serve until Ctrl-C: {escape(shlex.join(plan.serve))}")
    console.print(
        "[yellow]note:[/] modal serve deploys again on every edit: each new container imports "
        "the interface and loads its models again. Its URL ends in -dev; give it to the "
        f"client as {plan.env_prefix}_URL (the deployed URL stays the client's default)."
    )
    return _run(plan.serve)


# --------------------------------------------------------------------------- steps


def _consoles() -> tuple[Console, Console]:
    # soft_wrap: commands and URLs stay on one line, whatever the terminal width.
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    return console, errors


class _Say:
    """Error lines on stderr, each with the command's prefix (``scopegen deploy: ...``)."""

    def __init__(self, command: str, errors: Console) -> None:
        self._prefix = f"scopegen {command}: "
        self._errors = errors
        self.last: str | None = None  # what the error a step raises says

    def __call__(self, message: str) -> None:
        self.last = message
        self._errors.print(escape(self._prefix + message))


def _modal_or_error(path: Path, say: _Say, *, needed: bool) -> list[str] | int | None:
    """The modal command (None if missing but not needed), or an exit code."""
    if not path.is_file():
        say(f"{path}: no such file")
        return 2
    modal = modal_command()
    if modal is None and needed:
        say(MODAL_MISSING)
        return 1
    if modal is not None and needed and (problem := modal_version_problem()):
        say(problem)
        return 1
    return modal


def _build(
    path: Path, out: Path | None, name: str | None, console: Console, say: _Say, *, step: str
) -> BuildResult | int:
    try:
        result = generate(path, out, name=name)
    except BuildError as exc:
        say(str(exc))
        say("the build failed; nothing was sent to Modal")
        return exc.exit_code
    console.print(f"[bold]{step}[/] build {escape(str(path))} -> {escape(str(result.out))}")
    write_build(result.out, result)
    return result


def _download(plan: DeployPlan, console: Console, say: _Say, *, step: str) -> int:
    if not plan.model_ids:
        console.print(f"[bold]{step}[/] no models to download")
        return 0
    console.print(
        f"[bold]{step}[/] download {len(plan.model_ids)} model(s) into the volume "
        f"{escape(plan.app_name)}-models (CPU): {escape(shlex.join(plan.download))}"
    )
    code = _run(plan.download)
    if code != 0:
        say(f"the model download failed (exit {code}); nothing was deployed")
    return code


def _write_record(out: Path, record: DeployRecord) -> None:
    path = out / DEPLOY_RECORD
    text = deploy_record_text(record)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _run(command: Sequence[str]) -> int:
    """Run ``command`` with the terminal as its stdout and stderr; return its exit code.

    Nothing is read from its output: the URL comes from Modal's API.
    """
    proc = subprocess.Popen(list(command))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (same process group): let it stop cleanly.
        return proc.wait()


def _print_client_env(console: Console, plan: DeployPlan) -> None:
    extra: list[str] = []
    if plan.proxy_auth:
        extra.append(
            "  export MODAL_KEY=... MODAL_SECRET=...   "
            "# a proxy auth token: Modal dashboard > Settings > Proxy Auth Tokens"
        )
    extra.append(
        f"  export {plan.env_prefix}_TOKEN=...   "
        "# only if a Modal secret sets SCOPEGEN_TOKEN on the server"
    )
    extra.append(
        f"  export {plan.env_prefix}_URL=...   "
        "# only to call another server than the deployed endpoint"
    )
    console.print("The client reads:")
    for line in extra:
        console.print(line)
