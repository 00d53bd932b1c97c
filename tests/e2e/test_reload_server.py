"""`scopegen serve --reload` on a real server: edits go live in a second, the model stays.

The interface (written to ``tmp_path``) "loads a model" through a slow
``from_pretrained`` that appends to a counter file, so the tests can tell a
kept model from a reloaded one. Files are replaced the way editors save them
(write a temporary file, rename it over the old one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests._serving import RunningServer, running_server

IFACE = '''\
"""A stand-in model interface for the reload tests."""
import os
import time
from pathlib import Path

COUNTER = Path(os.environ["RELOAD_COUNTER"])


class FakeModel:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    @classmethod
    def from_pretrained(cls, model_id: str, seconds: float) -> "FakeModel":
        time.sleep(seconds)  # A model load is slow.
        with COUNTER.open("a") as f:
            f.write(model_id + "\\n")
        return cls(model_id)


model = FakeModel.from_pretrained("org/model-a", seconds=0.3)
VERSION = 1


@expose
def greet(name: str) -> str:
    return f"hello {name}"


@expose
def which_model() -> str:
    return model.model_id


@expose
def slow(seconds: float) -> int:
    time.sleep(seconds)
    return VERSION
'''


def _save(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _serve(tmp_path: Path, *extra: str) -> tuple[Path, Path, Any]:
    iface = tmp_path / "reload_iface.py"
    counter = tmp_path / "loads.txt"
    _save(iface, IFACE)
    server = running_server(
        iface,
        args=("--reload", "--max-concurrency", "4", *extra),
        env={"RELOAD_COUNTER": str(counter)},
    )
    return iface, counter, server


def _call(srv: RunningServer, fn: str, **kwargs: Any) -> Any:
    r = httpx.post(f"{srv.url}/v1/call/{fn}", json=kwargs, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def _loads(counter: Path) -> list[str]:
    return counter.read_text().splitlines()


def _wait_for(check: Any, timeout: float) -> float:
    """Poll ``check()`` until true; return the seconds it took."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - t0


def test_an_edited_function_is_live_within_a_second_and_the_model_stays_loaded(
    tmp_path: Path,
) -> None:
    iface, counter, server = _serve(tmp_path)
    with server as srv:
        assert _call(srv, "greet", name="x") == "hello x"
        assert _loads(counter) == ["org/model-a"]
        # A call in flight across the reload finishes on the version it started on.
        in_flight: dict[str, Any] = {}

        def slow_call() -> None:
            in_flight["result"] = _call(srv, "slow", seconds=1.0)

        thread = threading.Thread(target=slow_call)
        thread.start()
        time.sleep(0.2)
        edited = IFACE.replace('f"hello {name}"', 'f"hi {name}"').replace(
            "VERSION = 1", "VERSION = 2"
        )
        _save(iface, edited)
        took = _wait_for(lambda: _call(srv, "greet", name="x") == "hi x", timeout=5)
        assert took < 1.0, f"the edit went live after {took:.2f} s"
        thread.join(timeout=10)
        assert in_flight["result"] == 1
        assert _call(srv, "slow", seconds=0) == 2
        assert _loads(counter) == ["org/model-a"]
        log = srv.wait_for_log("reloaded reload_iface.py in")
        assert "kept: model; re-ran:" in log


def test_editing_the_load_runs_it_again_while_the_old_version_answers(
    tmp_path: Path,
) -> None:
    iface, counter, server = _serve(tmp_path)
    with server as srv:
        assert _call(srv, "which_model") == "org/model-a"
        _save(
            iface,
            IFACE.replace('"org/model-a", seconds=0.3', '"org/model-b", seconds=1.5'),
        )
        answers: list[tuple[float, str]] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            answers.append((time.monotonic() - t0, _call(srv, "which_model")))
            if answers[-1][1] == "org/model-b":
                break
            time.sleep(0.05)
        assert answers[-1][1] == "org/model-b"
        # Calls made while the new model loaded (1.5 s) were answered by the old one.
        during = [a for t, a in answers if 0.4 < t < 1.4]
        assert during and set(during) == {"org/model-a"}
        assert _loads(counter) == ["org/model-a", "org/model-b"]
        log = srv.wait_for_log("loaded again: model")
        assert "kept: nothing" in log


def test_a_syntax_error_keeps_the_old_version_and_the_manifest_follows_the_new_one(
    tmp_path: Path,
) -> None:
    iface, counter, server = _serve(tmp_path)
    out = tmp_path / "client"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "scopegen",
            "build",
            str(iface),
            "-o",
            str(out),
            "--name",
            "reloadtools",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    with server as srv:
        manifest = httpx.get(f"{srv.url}/v1/functions").json()
        _save(iface, IFACE.replace("def greet(name: str)", "def greet(name: str"))
        srv.wait_for_log("SG000")
        assert "not reloading reload_iface.py: 1 lint error" in srv.wait_for_log("not reloading")
        assert _call(srv, "greet", name="x") == "hello x"

        shout = "\n\n@expose\ndef shout(text: str, times: int = 1) -> str:\n"
        _save(iface, IFACE + shout + "    return text.upper() * times\n")
        shout_url = f"{srv.url}/v1/call/shout"
        _wait_for(lambda: httpx.post(shout_url, json={"text": "a"}).status_code == 200, 5)
        assert _call(srv, "shout", text="a", times=2) == "AA"
        new = httpx.get(f"{srv.url}/v1/functions").json()
        assert [f["name"] for f in new["functions"]] == ["greet", "which_model", "slow", "shout"]
        assert new["hash"] != manifest["hash"]
        spec = httpx.get(f"{srv.url}/openapi.json").json()
        assert "/v1/call/shout" in spec["paths"]
        log = srv.wait_for_log("interface hash")
        assert f"interface hash {manifest['hash']} -> {new['hash']}" in log
        assert "functions: +shout" in log
        assert _loads(counter) == ["org/model-a"]

        # A client generated from the first version warns once about the drift.
        script = textwrap.dedent(
            f"""
            import warnings
            warnings.simplefilter("always")
            import reloadtools
            with reloadtools.Client(base_url={srv.url!r}) as c:
                with warnings.catch_warnings(record=True) as caught:
                    print(c.greet("x"))
                for w in caught:
                    print(type(w.message).__name__, w.message)
            """
        )
        env = dict(os.environ, PYTHONPATH=str(out / "reloadtools" / "src"))
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("hello x\n")
        assert "InterfaceMismatchWarning" in run.stdout
        assert new["hash"] in run.stdout
