"""The labelled suite: every clean pair and every defect gets its expected verdict (zero errors)."""

from __future__ import annotations

import pytest

from tests.comparison.verdict_suite import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pair_gets_its_expected_verdict(case, tmp_path):
    result = run_case(case, tmp_path)
    assert result.verdict.value == case.expected, f"{case.description}: {result.cause}"
    if case.location:
        assert case.location in result.cause, result.cause
    for flag in case.flags:
        assert all(flag in h["flags"] for h in result.health), result.health
    # Every verdict carries its explanation and the figures behind it.
    assert len(result.explanation) > 80
    data = result.to_json()
    assert data["verdict"] == case.expected and data["cause"] == result.cause
    if case.expected in ("consistent", "consistent-sensitive"):
        assert data["divergence"]["within_floor"] is True
        assert {p["name"] for p in data["noise_floor"]["perturbations"]} >= {
            "tensorflow:summation-order", "tensorflow:last-bit-init", "tflite:no-default-delegate"}
