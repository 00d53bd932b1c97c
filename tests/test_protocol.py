"""``scopegen.protocol``: the table's invariants, and the places that must agree through it.

- Every function or type name that lint accepts builds, and every name that
  build refuses lint refuses (SG009), over the whole reserved lists and
  near-misses.
- For several package names, the environment variables the generated client
  reads are exactly those that ``mcp.json``, ``deploy --dry-run`` and the
  generated README name.
"""

from __future__ import annotations

import contextlib
import email.utils
import importlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from scopegen import protocol
from scopegen.analyze import analyze_source
from scopegen.commands.deploy import run_deploy
from scopegen.emit import EmitError, emit_client

# --------------------------------------------------------------------------- the table


def test_error_codes_are_unique_and_retries_only_where_the_call_did_not_run() -> None:
    codes = [e.code for e in protocol.CLIENT_ERROR_ROWS]
    assert len(codes) == len(set(codes))
    assert set(protocol.ERROR_BY_CODE) == {e.code for e in protocol.ERRORS}
    for e in protocol.CLIENT_ERROR_ROWS:
        assert 400 <= e.status < 600
        assert not (e.retry and e.ran), e.code
        assert e.client_class in protocol.CLIENT_ERROR_CLASSES
    # 429: a proxy's rate limit, or a full job table (too_many_jobs: the job was not queued).
    assert protocol.RETRY_STATUSES == {408, 429, 503}


def test_proxy_rows_are_bare_statuses_the_server_never_sends() -> None:
    # Known by status alone; OpenAPI does not document them on the call route.
    assert {e.status for e in protocol.PROXY_ERRORS} == {403, 408, 409, 429}
    # too_many_jobs shares 429 with the proxies' row, but only by its code (for_status=False).
    server = {e.status for e in protocol.ERRORS if e.for_status or e.on_call}
    assert not {e.status for e in protocol.PROXY_ERRORS} & server
    for e in protocol.PROXY_ERRORS:
        assert e.for_status and not e.on_call and not e.ran


def test_job_statuses_and_routes() -> None:
    assert set(protocol.JOB_FINISHED) < set(protocol.JOB_STATUSES)
    assert protocol.JOB_STATUSES[0] == "queued"
    assert protocol.JOB_ID_BYTES * 8 >= 128
    assert protocol.JOBS_PREFIX.startswith("/v1/") and protocol.JOBS_PREFIX.endswith("/")
    assert protocol.ERROR_BY_CODE["unknown_job"].status == 404
    assert protocol.ERROR_BY_CODE["too_many_jobs"].status == 429
    assert protocol.reserved_function_name("jobs")


def test_each_status_has_at_most_one_class_for_bare_answers() -> None:
    statuses = [e.status for e in protocol.ERRORS if e.for_status]
    assert len(statuses) == len(set(statuses))
    # A bare 500 could be anything; the clients keep it a plain RemoteError.
    assert 500 not in statuses


def test_values_rendered_into_templates_need_no_escaping() -> None:
    for value in (
        protocol.DEFAULT_URL,
        protocol.CALL_PREFIX,
        protocol.FUNCTIONS_PATH,
        protocol.REQUEST_ID_HEADER,
        protocol.RETRY_AFTER_HEADER,
        protocol.MODAL_KEY_HEADER,
        protocol.MODAL_SECRET_HEADER,
    ):
        assert re.fullmatch(r"[A-Za-z0-9:/._-]+", value), value


@pytest.mark.parametrize(
    ("package", "prefix"),
    [
        ("model_tools", "MODEL_TOOLS"),
        ("_probe_", "PROBE"),
        ("a1", "A1"),
        ("my__tools", "MY_TOOLS"),
        ("__", "SCOPEGEN"),
        ("_1a", "SCOPEGEN_1A"),
    ],
)
def test_env_prefix_is_a_shell_variable_name(package: str, prefix: str) -> None:
    assert protocol.env_prefix(package) == prefix
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", prefix)


def test_retry_delay_doubles_up_to_the_cap_and_honours_retry_after() -> None:
    assert [protocol.retry_delay(n, None, 0.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert protocol.retry_delay(0, None, 1.0) == pytest.approx(0.5 * 0.75)
    assert protocol.retry_delay(3, "1", 0.5) == 1.0
    assert protocol.retry_delay(0, "0", 0.5) == 0.0
    # Not a delay: the backoff applies.
    for header in ("soon", "-1", ""):
        assert protocol.retry_delay(0, header, 0.0) == 0.5
    # A date: the seconds until then (a past date: now).
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (protocol.retry_delay(0, soon, 0.0) or 0) <= 30
    assert protocol.retry_delay(0, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0) == 0.0
    # Past the cap, in seconds or as a date: not retried (the answer stands).
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert protocol.retry_delay(0, "61", 0.0) is None
    assert protocol.retry_delay(0, later, 0.0) is None


@pytest.mark.parametrize(
    ("method", "status", "location", "hop"),
    [
        ("POST", 303, "/poll/1", ("GET", "http://a.example/poll/1")),
        ("GET", 303, "poll/2", ("GET", "http://a.example/v1/call/poll/2")),
        ("POST", 307, "http://b.example/x", ("POST", "http://b.example/x")),
        ("POST", 308, "/x", ("POST", "http://a.example/x")),
        ("GET", 301, "https://a.example/v1/call/f", ("GET", "https://a.example/v1/call/f")),
    ],
)
def test_next_hop_polls_with_get_and_repeats_307_308(
    method: str, status: int, location: str, hop: tuple[str, str]
) -> None:
    assert protocol.next_hop(method, "http://a.example/v1/call/f", status, location) == hop


@pytest.mark.parametrize("status", [301, 302])
def test_next_hop_refuses_a_redirect_that_turns_the_call_into_a_get(status: int) -> None:
    with pytest.raises(
        ValueError, match=r"moved to https://a.example/v1/.*turn the call into a GET"
    ):
        protocol.next_hop("POST", "http://a.example/v1/call/f", status, "https://a.example/v1/")
    with pytest.raises(ValueError, match="without a Location"):
        protocol.next_hop("POST", "http://a.example/v1/call/f", 303, None)


def test_origin_is_scheme_host_and_port() -> None:
    assert protocol.origin("https://A.example/x") == ("https", "a.example", 443)
    assert protocol.origin("http://a.example:80/") == protocol.origin("http://a.example")
    assert protocol.origin("http://a.example:8000") != protocol.origin("http://a.example")


# --------------------------------------------------------------------------- reserved names

_FUNCTION_NEAR_MISSES = [
    "closed",
    "client",
    "aclose",
    "http_client",
    "Timeout",
    "tokens",
    "types_",
    "error_from_payload",
    "threading",
    "final",
    "ResultType",
    "embed",
]
_TYPE_NEAR_MISSES = ["Fields", "field", "Client", "types", "Model", "Enums", "Str", "Optional"]


def _function_source(name: str) -> str:
    # No annotation names a builtin: the reserved list holds int, str, ...
    return f"@expose\ndef {name}() -> None:\n    return None\n"


def _type_source(name: str) -> str:
    return (
        "from typing import TypedDict\n\n\n"
        f"class {name}(TypedDict):\n    x: None\n\n\n"
        f"@expose\ndef f() -> {name}:\n    return {{'x': None}}\n"
    )


def _lint_and_build(source: str) -> tuple[set[str], bool]:
    """(codes lint reports, whether the client builds); the build sees the IR either way."""
    analysis = analyze_source(source)
    codes = {d.code for d in analysis.diagnostics}
    try:
        files = emit_client(analysis.interface, package="pkg")
    except EmitError:
        return codes, False
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")  # what builds is valid Python
    return codes, True


@pytest.mark.parametrize(
    "name", [*sorted(protocol.CLIENT_RESERVED_FUNCTION_NAMES), "_private", "__dunder__"]
)
def test_a_reserved_function_name_fails_lint_and_build(name: str) -> None:
    assert protocol.reserved_function_name(name)
    codes, built = _lint_and_build(_function_source(name))
    assert codes == {"SG009"}
    assert not built


@pytest.mark.parametrize("name", _FUNCTION_NEAR_MISSES)
def test_a_near_miss_function_name_lints_clean_and_builds(name: str) -> None:
    assert not protocol.reserved_function_name(name)
    assert _lint_and_build(_function_source(name)) == (set(), True)


@pytest.mark.parametrize("name", [*sorted(protocol.CLIENT_RESERVED_TYPE_NAMES), "_Model", "_T"])
def test_a_reserved_type_name_fails_lint_and_build(name: str) -> None:
    assert protocol.reserved_type_name(name)
    codes, built = _lint_and_build(_type_source(name))
    assert codes == {"SG009"}
    assert not built


@pytest.mark.parametrize("name", _TYPE_NEAR_MISSES)
def test_a_near_miss_type_name_lints_clean_and_builds(name: str) -> None:
    assert not protocol.reserved_type_name(name)
    assert _lint_and_build(_type_source(name)) == (set(), True)


def test_sg009_reports_a_reserved_type_name_at_the_class() -> None:
    (diag,) = analyze_source(_type_source("Field")).diagnostics
    assert (diag.code, diag.line, diag.column) == ("SG009", 4, 7)
    assert "Field" in diag.message


# --------------------------------------------------------------------------- env variables

_INTERFACE = '@expose\ndef ping(x: int) -> int:\n    """Echo."""\n    return x\n'


class _RecordingEnviron(dict[str, str]):
    """An ``os.environ`` stand-in that remembers every name looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


@contextlib.contextmanager
def _imported(src: Path, package: str) -> Iterator[Any]:
    sys.path.insert(0, str(src))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]


def _exports(text: str) -> set[str]:
    return set(re.findall(r"export (\w+)=", text))


@pytest.mark.parametrize("package", ["_probe_", "model_tools", "a1"])
def test_the_client_reads_exactly_the_variables_mcp_json_deploy_and_readme_name(
    package: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "iface" / "interface.py"
    path.parent.mkdir()
    path.write_text(_INTERFACE, encoding="utf-8")
    out = tmp_path / "out"

    # What deploy --dry-run tells the user to export (it builds OUT as well).
    assert run_deploy(path, out, name=package, dry_run=True) == 0
    deploy_names = _exports(capsys.readouterr().out)

    readme_names = _exports((out / package / "README.md").read_text(encoding="utf-8"))
    (entry,) = orjson.loads((out / "mcp.json").read_bytes())["mcpServers"].values()
    args = entry["args"]
    url_var = re.fullmatch(r"\$\{(\w+):-(.+)\}", args[1])
    assert url_var is not None and url_var[2] == protocol.DEFAULT_URL
    mcp_names = {url_var[1], args[args.index("--token-env") + 1]}

    with _imported(out / package / "src", package) as client_package:
        environ = _RecordingEnviron()
        with httpx.Client() as http:
            monkeypatch.setattr(os, "environ", environ)
            client_package.Client(http_client=http)
            monkeypatch.undo()
    fallbacks = {"SCOPEGEN_URL", "SCOPEGEN_TOKEN", "MODAL_KEY", "MODAL_SECRET"}
    assert fallbacks <= environ.read
    client_names = environ.read - fallbacks

    prefix = protocol.env_prefix(package)
    assert client_names == {f"{prefix}_URL", f"{prefix}_TOKEN"}
    # deploy also names the Modal proxy-auth variables, which the client reads too.
    assert deploy_names - client_names <= {"MODAL_KEY"}
    assert client_names == mcp_names == deploy_names - {"MODAL_KEY"} == readme_names
