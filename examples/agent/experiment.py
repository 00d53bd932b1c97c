"""The scoped-sandbox document's ``main.py``, written with scopegen's Python API.

Step by step, what the document's experiment script does, here on this
machine (CPU) instead of a Modal sandbox::

    scoped.start(); scoped.serve("interface.py")  ->  scopegen.serve("interface.py")
    expose_as="library", name="model_tools"       ->  scopegen.build(..., name="model_tools")
    Workspace(libraries=[model_tools])             ->  scopegen.install(build, into=...)
    session.mcp_config                             ->  server.mcp_config()
    run_agent(prompt=task, mcp_config=...)         ->  your harness; here agent.py

The agent here is ``agent.py`` (beside this file), run with the workspace's
interpreter, which has only the generated client: no torch, no scopegen.
The MCP config is written to ``WORKDIR/mcp.json`` for a harness that takes a
file (``claude --mcp-config WORKDIR/mcp.json``); it holds the server's token.

    python examples/agent/experiment.py [--interface PATH] [--models-dir DIR] [--workdir DIR]

The defaults serve the embeddings example with the weights ``make demo``
placed in ``.demo/models``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import scopegen

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

TASK = """
Import model_tools and:
1. Call get_model_info() to see model specs
2. Call generate_text("Once upon a time") to generate text
3. Call compare_texts("hello", "hi") to compare similarity
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interface", type=Path, default=ROOT / "examples/embeddings/interface.py")
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".demo/models")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".experiment")
    parser.add_argument("--package", default="model_tools", help="the client package's name")
    parser.add_argument(
        "--workspace", type=Path, help="the agent's venv (default: WORKDIR/workspace)"
    )
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    workspace_dir: Path = args.workspace or workdir / "workspace"
    # Nothing may reach a model hub: the weights are in --models-dir.
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    # 1. The sandbox: serve interface.py (the model loads once, here).
    with scopegen.serve(args.interface, models_dir=args.models_dir, env=offline) as server:
        print(f"1. serving {server.name} on {server.url}")

        # 2. The library: a typed client package generated from the same file.
        build = scopegen.build(args.interface, out=workdir / "build", name=args.package)
        print(f"2. built {build.package_dir} (interface hash {build.interface_hash})")

        # 3. The workspace: a venv with the client pip installed, nothing else.
        workspace = scopegen.install(build, into=workspace_dir)
        print(f"3. installed {workspace.package} into {workspace.root}")

        # 4. The MCP config the agent harness takes.
        mcp_config = server.mcp_config(name=args.package)
        config_file = workdir / "mcp.json"
        config_file.write_text(json.dumps(mcp_config, indent=2) + "\n", encoding="utf-8")
        print(f"4. MCP config for the harness: {config_file}")

        # 5. The agent: run_agent(prompt=TASK, mcp_config=mcp_config) in the document.
        #    Here a script does the task through the client, in the workspace.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "SCOPEGEN_", "VIRTUAL_ENV"))
        }
        env.update(server.client_env(build))
        agent = subprocess.run(
            [str(workspace.python), str(HERE / "agent.py"), "--package", build.package],
            env=env,
            cwd=workspace.root,
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"5. the agent's task:{TASK.rstrip()}")
        print(agent.stdout.rstrip())
        if agent.returncode != 0:
            print(agent.stderr, file=sys.stderr)
            return agent.returncode
    print(f"6. stopped the server: {server!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
