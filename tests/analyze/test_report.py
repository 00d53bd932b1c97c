"""The one text form of diagnostics: ``str(d)``, and ``render_text`` with source and caret."""

from __future__ import annotations

from scopegen.analyze import Diagnostic
from scopegen.analyze.report import render_text, summary

D = Diagnostic("x.py", 2, 5, 2, 8, "SG009", "error", "`bad` collides")


def test_a_diagnostic_prints_as_path_line_col_code_message() -> None:
    assert str(D) == "x.py:2:5: SG009 `bad` collides"


def test_render_text_shows_the_source_line_and_a_caret_under_the_range() -> None:
    source = "@expose\ndef bad() -> int:\n    return 1\n"
    assert render_text([D], {"x.py": source}) == (
        "x.py:2:5: SG009 `bad` collides\n"
        "    2 | def bad() -> int:\n"
        "      |     ^^^\n"
    )
    # Without the file's text: the line alone, as every command prints it.
    assert render_text([D], {}) == f"{D}\n"
    assert render_text([], {}) == ""


def test_summary_counts_errors_and_warnings() -> None:
    warning = Diagnostic("x.py", 1, 1, 1, 1, "SG007", "warning", "w")
    assert summary([D, warning], 2) == "Found 1 error and 1 warning in 2 files."
    assert summary([], 1) == "All checks passed (1 file)."
