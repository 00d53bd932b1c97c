"""``scopegen.serve`` and ``scopegen.install``: real ``scopegen serve`` processes and real venvs.

Also the seed's whole ``main.py`` flow from Python: serve, build, install
into a workspace venv made for it, the MCP config driving a real MCP
session, and a call from the workspace through the client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import scopegen
from tests._venvs import Venv, shared_venv

ROOT = Path(__file__).resolve().parents[2]
IFACES = ROOT / "tests" / "interfaces"
BASIC = IFACES / "server_basic.py"


def _port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# --------------------------------------------------------------------------- serve


def test_serve_starts_a_healthy_server_with_a_fresh_token_and_stops_it() -> None:
    with scopegen.serve(BASIC) as server:
        assert server.name == "server_basic"
        assert server.url.startswith("http://127.0.0.1:")
        assert server.token and len(server.token) >= 24
        assert server.process.poll() is None
        r = httpx.post(f"{server.url}/v1/call/add", json={"a": 2, "b": 3}, headers=server.headers)
        assert r.json() == {"result": 5}
        denied = httpx.post(f"{server.url}/v1/call/add", json={"a": 2, "b": 3})
        assert denied.status_code == 401
        assert " call add 200 " in server.wait_for_log(" call add 200 ")
        with scopegen.serve(BASIC) as other:
            assert other.token != server.token and other.url != server.url
    assert server.process.poll() is not None  # stopped and reaped
    assert _port_is_closed(server.url)
    assert "scopegen: serving server_basic on" in server.logs  # still readable
    assert "Shutting down" in server.logs
    assert not server.log_path.exists()
    assert server.stop() == server.process.returncode  # stopping again is harmless


def test_serve_options_reach_the_server(tmp_path: Path) -> None:
    (tmp_path / "acme--tiny-model").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_hf = {"HF_HUB_CACHE": str(tmp_path / "no-hf-cache")}
    with scopegen.serve(
        IFACES / "server_models.py", models_dir=tmp_path, token="given", env=no_hf
    ) as server:
        assert server.token == "given"
        r = httpx.post(f"{server.url}/v1/call/model_dir", headers={"Authorization": "Bearer given"})
        assert r.json() == {"result": str(tmp_path / "acme--tiny-model")}
    models = {"acme/tiny-model": elsewhere}
    with scopegen.serve(
        IFACES / "server_models.py", models=models, token=False, env=no_hf
    ) as server:
        assert server.token is None and server.headers == {}
        assert httpx.post(f"{server.url}/v1/call/model_dir").json() == {"result": str(elsewhere)}
    with scopegen.serve(BASIC, call_timeout=0.3, access_log=False) as server:
        r = httpx.post(
            f"{server.url}/v1/call/sleepy", json={"seconds": 1.0}, headers=server.headers
        )
        assert r.status_code == 504
        assert " call sleepy " not in server.logs


def test_a_broken_interface_raises_its_traceback_within_seconds() -> None:
    t0 = time.monotonic()
    with pytest.raises(scopegen.ServerStartError) as info:
        scopegen.serve(IFACES / "server_import_error.py")
    assert time.monotonic() - t0 < 15
    err = info.value
    assert err.returncode == 1
    assert "Traceback (most recent call last)" in str(err)
    assert "RuntimeError: model weights are corrupt (raised at import)" in str(err)
    assert "_load_model()" in err.logs
    with pytest.raises(scopegen.ServerStartError, match="SG001"):
        scopegen.serve(IFACES / "server_lint_error.py")


def test_a_server_that_never_gets_healthy_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    slow = tmp_path / "slow.py"
    slow.write_text(
        textwrap.dedent(
            f"""
            import os, time
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(60)

            @expose
            def f() -> int:
                return 1
            """
        )
    )
    t0 = time.monotonic()
    with pytest.raises(scopegen.ServerStartError, match="did not answer /healthz within 2s"):
        scopegen.serve(slow, startup_timeout=2)
    assert time.monotonic() - t0 < 15
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(int(pid_file.read_text()), 0)


# --------------------------------------------------------------------------- MCP


def test_mcp_config_starts_a_bridge_an_mcp_client_can_use() -> None:
    pytest.importorskip("mcp")
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    with scopegen.serve(IFACES / "mcp_tools.py") as server:
        config = server.mcp_config()
        assert list(config["mcpServers"]) == ["mcp_tools"]
        assert list(server.mcp_config(name="tools")["mcpServers"]) == ["tools"]
        entry = config["mcpServers"]["mcp_tools"]
        assert server.token not in entry["args"]  # the token travels in the environment

        async def session() -> tuple[list[str], Any]:
            params = StdioServerParameters(
                command=entry["command"], args=entry["args"], env=entry["env"]
            )
            with anyio.fail_after(60):
                async with (
                    stdio_client(params) as (read, write),
                    ClientSession(read, write) as s,
                ):
                    await s.initialize()
                    tools = [t.name for t in (await s.list_tools()).tools]
                    return tools, await s.call_tool("add", {"a": 2, "b": 40})

        tools, added = anyio.run(session)
        manifest = httpx.get(f"{server.url}/v1/functions", headers=server.headers).json()
        assert tools == [f["name"] for f in manifest["functions"]]
        # The wire names, whichever SDK major is installed (2.x renamed the attributes).
        wire = added.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert wire["structuredContent"] == {"result": 42}


# --------------------------------------------------------------------------- install


def test_install_makes_the_workspace_venv_and_a_rebuild_replaces_the_client(
    tmp_path: Path,
) -> None:
    interface = tmp_path / "iface" / "interface.py"
    interface.parent.mkdir()
    interface.write_text("@expose\ndef ping() -> str:\n    return 'pong'\n")
    build = scopegen.build(interface, out=tmp_path / "build", name="ping_tools")
    workspace = scopegen.install(build, into=tmp_path / "workspace")
    assert workspace.python.is_file() and workspace.package == "ping_tools"
    with scopegen.serve(interface) as server:
        code = "import ping_tools; print(ping_tools.ping(), ping_tools.__interface_hash__)"
        out = _run_in(workspace, code, server.client_env(build))
        manifest = httpx.get(f"{server.url}/v1/functions", headers=server.headers).json()
        assert out.split() == ["pong", build.interface_hash]
        assert manifest["hash"] == build.interface_hash
    # Edit, rebuild, install again into the same venv: the new function is there.
    interface.write_text(
        interface.read_text() + "\n\n@expose\ndef echo(x: int) -> int:\n    return x\n"
    )
    rebuilt = scopegen.build(interface, out=tmp_path / "build", name="ping_tools")
    assert rebuilt.interface_hash != build.interface_hash
    again = scopegen.install(rebuilt.package_dir, into=tmp_path / "workspace")
    assert again == workspace
    with scopegen.serve(interface) as server:
        out = _run_in(
            workspace, "import ping_tools; print(ping_tools.echo(7))", server.client_env(rebuilt)
        )
        assert out.strip() == "7"


def test_install_failures_say_why(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(scopegen.InstallError, match="not a client project"):
        scopegen.install(tmp_path, into=tmp_path / "venv")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n'
        '[project]\nname = "broken"\nversion = "0"\n'
    )
    venv = shared_venv(tmp_path_factory)
    with pytest.raises(scopegen.InstallError, match=r"installing .*broken failed") as info:
        scopegen.install(broken, into=venv.root, pip_args=["--no-build-isolation"])
    assert "no_such_backend" in info.value.output  # pip's own report


def _run_in(workspace: scopegen.Workspace, code: str, env: dict[str, str]) -> str:
    clean = Venv(workspace.root).env(env)
    proc = subprocess.run(
        [str(workspace.python), "-c", code],
        capture_output=True,
        text=True,
        env=clean,
        cwd=workspace.root,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
