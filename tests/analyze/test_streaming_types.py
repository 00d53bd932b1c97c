"""Streaming results in the analyzer: ``Iterator[T]`` and kin as the whole return annotation."""

from __future__ import annotations

import pytest

from scopegen import spec
from scopegen.analyze import analyze_source

HEAD = (
    "import typing\nimport collections.abc as abc\nfrom typing import Any\n"
    "from scopegen import expose\n"
)


def _analyze(src: str):  # type: ignore[no-untyped-def]
    return analyze_source(HEAD + src, "interface.py")


@pytest.mark.parametrize(
    ("kw", "ann"),
    [
        ("def", "typing.Iterator[int]"),
        ("def", "abc.Iterator[int]"),
        ("def", "typing.Generator[int, None, None]"),
        ("def", "abc.Generator[int, None, None]"),
        ("def", "abc.Generator[int]"),
        ("async def", "typing.AsyncIterator[int]"),
        ("async def", "abc.AsyncGenerator[int, None]"),
        ("async def", "typing.AsyncGenerator[int]"),
    ],
)
def test_stream_annotations_stream_their_item_type(kw: str, ann: str) -> None:
    result = _analyze(f"@expose\n{kw} f() -> {ann}:\n    yield 1\n")
    assert not result.diagnostics, result.diagnostics
    fn = result.interface.functions[0]
    assert fn.streams and fn.returns == spec.INT


def test_item_type_is_validated_like_any_return_type() -> None:
    result = _analyze("@expose\ndef f() -> typing.Iterator[set[int]]:\n    yield {1}\n")
    assert [d.code for d in result.diagnostics] == ["SG003"]


@pytest.mark.parametrize(
    ("kw", "ann", "words"),
    [
        ("def", "typing.Generator[int, int, None]", "sends nothing in"),
        ("def", "typing.Generator[int, None, str]", "sends nothing in"),
        ("async def", "typing.Iterator[int]", "does not match the function"),
        ("def", "typing.AsyncIterator[int]", "does not match the function"),
        ("def", "typing.Iterator[int, int]", "exactly one type argument"),
    ],
)
def test_wrong_stream_annotations_are_errors(kw: str, ann: str, words: str) -> None:
    result = _analyze(f"@expose\n{kw} f() -> {ann}:\n    yield 1\n")
    assert [d.code for d in result.diagnostics if d.severity == "error"] == ["SG003"]
    assert words in result.diagnostics[0].message


def test_nested_iterators_are_not_wire_types() -> None:
    result = _analyze("@expose\ndef f() -> list[typing.Iterator[int]]:\n    return []\n")
    assert [d.code for d in result.diagnostics] == ["SG003"]
    assert "only the whole return annotation can stream" in result.diagnostics[0].message


def test_plain_functions_do_not_stream_and_the_manifest_says_so() -> None:
    from scopegen.emit.schema import manifest

    result = _analyze(
        "@expose\ndef f() -> int:\n    return 1\n"
        "@expose\ndef g() -> typing.Iterator[str]:\n    yield ''\n"
    )
    fns = {f["name"]: f for f in manifest(result.interface)["functions"]}
    assert fns["f"]["streams"] is False
    assert fns["g"]["streams"] is True and fns["g"]["returns"] == {"type": "string"}


def test_openapi_describes_a_stream_as_ndjson_lines() -> None:
    from scopegen.emit.openapi import openapi

    result = _analyze("@expose\ndef g() -> typing.Iterator[str]:\n    yield ''\n")
    ok = openapi(result.interface)["paths"]["/v1/call/g"]["post"]["responses"]["200"]
    schema = ok["content"]["application/x-ndjson"]["schema"]
    assert schema["oneOf"][0]["properties"]["item"] == {"type": "string"}
