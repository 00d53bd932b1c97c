"""Every rule's own VALID and INVALID examples, run through the whole analyzer."""

from __future__ import annotations

import pytest

from scopegen.analyze import analyze_source
from scopegen.analyze.rules import RULES, Rule

VALID = [(r.CODE, i, src) for r in RULES for i, src in enumerate(r.VALID)]
INVALID = [(r.CODE, i, src) for r in RULES for i, src in enumerate(r.INVALID)]


@pytest.mark.parametrize(
    ("code", "index", "source"), VALID, ids=[f"{c}-valid-{i}" for c, i, _ in VALID]
)
def test_valid_example_is_not_flagged(code: str, index: int, source: str) -> None:
    codes = {d.code for d in analyze_source(source).diagnostics}
    assert code not in codes


@pytest.mark.parametrize(
    ("code", "index", "source"), INVALID, ids=[f"{c}-invalid-{i}" for c, i, _ in INVALID]
)
def test_invalid_example_is_flagged(code: str, index: int, source: str) -> None:
    diags = [d for d in analyze_source(source).diagnostics if d.code == code]
    assert diags, f"{code} not reported for:\n{source}"
    rule = next(r for r in RULES if r.CODE == code)
    assert all(d.severity == rule.SEVERITY for d in diags)
    assert all(d.message for d in diags)


def test_catalog_has_the_fourteen_stable_codes() -> None:
    assert [r.CODE for r in RULES] == [f"SG{i:03d}" for i in range(14)]
    severities = {r.CODE: r.SEVERITY for r in RULES}
    assert {c for c, s in severities.items() if s == "warning"} == {
        "SG007",
        "SG010",
        "SG011",
        "SG013",
    }


@pytest.mark.parametrize("rule", RULES, ids=[r.CODE for r in RULES])
def test_every_rule_documents_itself(rule: Rule) -> None:
    assert rule.__doc__ and rule.NAME and rule.VALID and rule.INVALID
