"""The noise floor stops adding perturbations once more runs could not change the verdict, and never otherwise."""

from __future__ import annotations

from tests.comparison.verdict_suite import CASES, run_case

CASE = {c.name: c for c in CASES}
EVERY_RUN = {"tensorflow:summation-order", "tensorflow:last-bit-init", "tflite:no-default-delegate", "tflite:1-thread",
             "tflite:reference-kernels"}


def _floor(case_name: str, tmp_path) -> tuple[str, list[str], dict[str, str]]:
    result = run_case(CASE[case_name], tmp_path)
    floor = result.to_json()["noise_floor"]
    return (result.verdict.value, [p["name"] for p in floor["perturbations"]],
            {s["name"]: s["reason"] for s in floor["skipped"]})


def test_a_clean_pair_settles_after_one_run_per_side_and_says_why(tmp_path):
    verdict, ran, skipped = _floor("mlp-adam", tmp_path)
    assert verdict == "consistent"
    assert ran == ["tensorflow:summation-order", "tensorflow:last-bit-init", "tflite:no-default-delegate"]
    assert set(skipped) == {"tflite:1-thread", "tflite:reference-kernels"}
    assert all(r.startswith("not needed: within the floor of the 3 runs before") for r in skipped.values())


def test_a_defect_runs_every_perturbation(tmp_path):
    verdict, ran, skipped = _floor("broken-relu-gradient", tmp_path)
    assert verdict == "inconsistent"
    assert set(ran) == EVERY_RUN and not skipped
