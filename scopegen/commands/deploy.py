"""``scopegen deploy``: build, download the models on CPU, ``modal deploy``.

Three steps, each shown as it runs:

1. ``scopegen build`` writes ``OUT/`` (the client package and ``OUT/modal_app.py``);
2. ``modal run OUT/modal_app.py::download_models`` fills the models volume on a
   CPU container (skipped when the interface uses no model);
3. ``modal deploy OUT/modal_app.py`` creates or updates the GPU web endpoint.

Then it prints the endpoint URL and the environment variables the generated
client reads. ``--dry-run`` does step 1 and prints the exact commands of steps
2 and 3 without contacting Modal.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from scopegen.commands.build import MODAL_APP, BuildError, BuildResult, generate, write_build
from scopegen.extras import MODAL_REQUIREMENT, install_hint
from scopegen.protocol import env_prefix

__all__ = ["DeployError", "DeployPlan", "deploy", "modal_command", "plan_deploy", "run_deploy"]

MODAL_MISSING = f"modal is not installed: {install_hint(MODAL_REQUIREMENT)}"

# What `modal deploy` prints for a web endpoint: "... => https://ws--app-server-web.modal.run".
_URL = re.compile(r"https://[A-Za-z0-9.-]+\.modal\.run\S*")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy runs, worked out before anything runs."""

    app_file: Path
    app_name: str
    model_ids: tuple[str, ...]
    download: list[str]
    deploy: list[str]
    env_prefix: str
    proxy_auth: bool


def modal_command() -> list[str] | None:
    """How to run the ``modal`` CLI of this environment; ``None`` if modal is not installed."""
    import importlib.util

    if importlib.util.find_spec("modal") is None:
        return None
    # Prefer the script beside this interpreter (an unactivated venv), then PATH.
    beside = Path(sys.executable).with_name("modal.exe" if os.name == "nt" else "modal")
    on_path = shutil.which("modal")
    if on_path and (not beside.is_file() or Path(on_path).resolve() == beside.resolve()):
        return ["modal"]
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "modal"]


def plan_deploy(out: Path, result: BuildResult, *, modal: Sequence[str]) -> DeployPlan:
    """The commands that deploy ``result``, built into ``out``."""
    app_file = out / MODAL_APP
    package = result.package
    return DeployPlan(
        app_file=app_file,
        app_name=result.app_name,
        model_ids=result.model_ids,
        download=[*modal, "run", f"{app_file}::download_models"],
        deploy=[*modal, "deploy", str(app_file)],
        env_prefix=env_prefix(package),
        proxy_auth=result.config.proxy_auth,
    )


class DeployError(Exception):
    """A deploy step failed; it was reported on stderr. ``exit_code`` is the command's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_deploy(path: Path, out: Path | None, *, name: str | None, dry_run: bool) -> int:
    """The ``scopegen deploy`` command; returns the exit code."""
    try:
        deploy(path, out, name=name, dry_run=dry_run)
    except DeployError as exc:
        return exc.exit_code
    return 0


def deploy(path: Path, out: Path | None, *, name: str | None, dry_run: bool) -> str | None:
    """Build, download the models, deploy, showing each step; return the endpoint URL.

    ``out`` defaults to ``build/<package>``. The URL is None for a dry run, or
    when ``modal deploy`` printed none. A failure is reported on stderr, then
    raised as ``DeployError``.
    """
    # soft_wrap: commands and URLs stay on one line, whatever the terminal width.
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def fail(exit_code: int, *lines: str) -> DeployError:
        for line in lines:
            errors.print(f"scopegen deploy: {escape(line)}")
        return DeployError(lines[0], exit_code)

    if not path.is_file():
        raise fail(2, f"{path}: no such file")
    modal = modal_command()
    if modal is None and not dry_run:
        raise fail(1, MODAL_MISSING)

    try:
        result = generate(path, out, name=name)
    except BuildError as exc:
        raise fail(exc.exit_code, str(exc), "the build failed; nothing was sent to Modal") from None
    out = result.out
    console.print(f"[bold]1/3[/] build {escape(str(path))} -> {escape(str(out))}")
    write_build(out, result)
    plan = plan_deploy(out, result, modal=modal or ["modal"])

    if dry_run:
        if modal is None:
            console.print(f"[yellow]note:[/] {escape(MODAL_MISSING)} (needed to run these)")
        console.print("[bold]dry run:[/] the files are written; these commands would run next:")
        if plan.model_ids:
            console.print(f"  {escape(shlex.join(plan.download))}")
        console.print(f"  {escape(shlex.join(plan.deploy))}")
        _print_client_env(console, plan, url=None)
        return None

    if plan.model_ids:
        console.print(
            f"[bold]2/3[/] download {len(plan.model_ids)} model(s) into the volume "
            f"{escape(plan.app_name)}-models (CPU): {escape(shlex.join(plan.download))}"
        )
        code, _ = _run(plan.download)
        if code != 0:
            raise fail(code, f"the model download failed (exit {code}); nothing was deployed")
    else:
        console.print("[bold]2/3[/] no models to download")

    console.print(f"[bold]3/3[/] deploy the GPU app: {escape(shlex.join(plan.deploy))}")
    code, output = _run(plan.deploy)
    if code != 0:
        raise fail(code, f"modal deploy failed (exit {code})")
    urls = _URL.findall(_ANSI.sub("", output))
    url = urls[-1] if urls else None
    _print_client_env(console, plan, url=url)
    return url


def _run(command: Sequence[str]) -> tuple[int, str]:
    """Run ``command``, passing its output through as it comes; return (code, output)."""
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        seen.append(line)
    return proc.wait(), "".join(seen)


def _print_client_env(console: Console, plan: DeployPlan, *, url: str | None) -> None:
    shown = url or "<the URL `modal deploy` prints for Server.web>"
    if url:
        console.print(f"[bold green]endpoint:[/] {escape(url)}")
    console.print("The client reads:")
    console.print(f"  export {plan.env_prefix}_URL={escape(shown)}")
    if plan.proxy_auth:
        console.print(
            "  export MODAL_KEY=... MODAL_SECRET=...   "
            "# a proxy auth token: Modal dashboard > Settings > Proxy Auth Tokens"
        )
    console.print(
        f"  export {plan.env_prefix}_TOKEN=...   "
        "# only if a Modal secret sets SCOPEGEN_TOKEN on the server"
    )
