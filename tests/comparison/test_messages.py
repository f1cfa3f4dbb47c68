"""What a comparison says: no argmax agreement for a regression, NaN/Inf weights named as such, not as a round trip
that differs (NaN never equals NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.comparison.explain import explain
from litetrain.comparison.health import NON_FINITE_WEIGHTS
from litetrain.comparison.result import (
    CheckpointCheck,
    ComparisonResult,
    InferenceComparison,
    TrainComparison,
)
from litetrain.comparison.verdict import Verdict
from litetrain.config import Tolerances
from litetrain.reporting.console import render_comparison, render_comparison_html

NAMES = ("tensorflow", "tflite")


def _inference(accuracy: float | None) -> InferenceComparison:
    return InferenceComparison(samples=24, max_abs_error=2e-7, max_rel_error=1e-7, mean_abs_error=5e-8,
                               argmax_agreement=1.0, accuracy=dict.fromkeys(NAMES, accuracy), within_tolerance=True)


def _train(losses: list[float]) -> TrainComparison:
    return TrainComparison(steps=len(losses), batch_size=8, epochs=1.0, seed=0, loss=dict.fromkeys(NAMES, losses),
                           max_abs_loss_diff=0.0, max_rel_loss_diff=0.0, first_step_beyond_tolerance=None,
                           max_abs_weight_diff=1e-7, max_rel_weight_diff=1e-7, weights={},
                           steps_per_second=dict.fromkeys(NAMES, 100.0))


def _result(accuracy: float | None, *, checkpoint: CheckpointCheck | None = None, health=(), losses=(0.5, 0.4),
            verdict: Verdict = Verdict.CONSISTENT) -> ComparisonResult:
    after = _inference(accuracy)
    train = _train(list(losses))
    text = explain(verdict, "", train, after, None, None, None, [], None, {}, Tolerances(), *NAMES)
    return ComparisonResult(
        kind="check", verdict=verdict, passed=True, explanation=text, checks=(), model={}, data={"name": "d"},
        settings={}, initial_weights={}, train=train, inference={"before": after, "after": after},
        checkpoint=checkpoint, environment={}, timings={}, health=tuple(health),
    )


def test_a_regression_prints_no_argmax_agreement():
    result = _result(None)
    text = render_comparison(result)
    assert "argmax" not in text and "argmax" not in render_comparison_html(result)
    assert "predictions agreeing" not in result.explanation
    assert "outputs differ by at most 2e-07." in result.explanation


def test_a_classification_still_prints_it():
    result = _result(0.9)
    assert "argmax agreement" in render_comparison(result)
    assert "100.0% of predictions agreeing" in result.explanation


def test_a_round_trip_that_reproduces_nan_weights_is_exact_and_names_them():
    saved = {"head/kernel": np.array([[np.nan, 1.0]], np.float32), "head/bias": np.array([np.inf], np.float32),
             "opt_iteration": np.array(3, np.int64)}
    restored = {k: v.copy() for k, v in saved.items()}
    out = {"output": np.array([[np.nan, np.nan]], np.float32)}
    check = CheckpointCheck.from_round_trip(saved, restored, out, {"output": out["output"].copy()})
    assert check.roundtrip_exact and check.max_abs_output_diff == 0.0
    assert check.non_finite_weights == ("head/bias", "head/kernel")
    assert "reproduces outputs and weights bit for bit" in check.describe()
    assert "weights are NaN/Inf after training (2 of 3 arrays: head/bias, head/kernel)" in check.describe()
    assert check.to_json()["non_finite_weights"] == ["head/bias", "head/kernel"]

    text = render_comparison(_result(0.1, checkpoint=check, health=[_broken("tflite")], losses=(0.5, np.nan)))
    assert "checkpoint round trip" in text and "DIFFERS" not in text
    assert _row(text, "weights after training") == "finite NaN/Inf"
    assert _row(text, "checkpoint round trip") == "exact"


def test_a_round_trip_that_loses_values_still_differs():
    saved = {"w": np.array([np.nan, 1.0], np.float32)}
    check = CheckpointCheck.from_round_trip(saved, {"w": np.array([np.nan, 2.0], np.float32)},
                                            {"o": np.array([1.0, np.nan])}, {"o": np.array([1.5, np.nan])})
    assert not check.roundtrip_exact and check.max_abs_output_diff == pytest.approx(0.5)
    assert "changed outputs by up to 0.5" in check.describe()
    lost = CheckpointCheck.from_round_trip(saved, saved, {"o": np.array([np.nan])}, {"o": np.array([0.0])})
    assert not lost.roundtrip_exact and lost.max_abs_output_diff == float("inf")


def test_nan_weights_judged_by_plain_equality_are_not_called_a_difference():
    # A round trip judged with ==, where NaN never equals NaN: the table says why instead of "DIFFERS".
    plain = CheckpointCheck(roundtrip_exact=False, variables=4, size_bytes=64, max_abs_output_diff=float("nan"))
    text = render_comparison(_result(0.1, checkpoint=plain, health=[_broken("tflite"), _broken("tensorflow")],
                                     losses=(0.5, np.nan), verdict=Verdict.UNHEALTHY))
    assert "DIFFERS" not in text
    assert _row(text, "checkpoint round trip") == "not judged (NaN/Inf weights)"
    assert _row(text, "weights after training") == "NaN/Inf NaN/Inf"


def _broken(runner: str) -> dict:
    return {"runner": runner, "healthy": False, "flags": ["non-finite"],
            "details": ["the loss became NaN or Inf at step 2", NON_FINITE_WEIGHTS]}


def _row(text: str, label: str) -> str:
    """The cells after ``label`` in the table, joined by one space."""
    line = next(line for line in text.splitlines() if line.strip().startswith(label))
    return " ".join(line.strip()[len(label):].split())


def test_a_real_regression_check_prints_no_argmax_line():
    import litetrain
    from tests import models

    result = litetrain.check(models.dense_model(6, 1), models.regression_data(), loss="mse", batch_size=8, steps=5,
                             noise_floor=False)
    assert result.float64 is not None  # the float64 twin was built and checked faithful
    assert "argmax" not in str(result) and "predictions agreeing" not in result.explanation


def test_export_check_of_a_regression_has_no_argmax_agreement(tmp_path):
    import json

    from litetrain.training.export import _compare, _trained_for_regression

    model = tmp_path / "model.tflite"
    assert not _trained_for_regression(model)  # no build.json: shown, as before
    (tmp_path / "build.json").write_text(json.dumps({"settings": {"loss": {"name": "mse", "from_logits": None}}}))
    assert _trained_for_regression(model)
    (tmp_path / "build.json").write_text(json.dumps({"settings": {"loss": {"name": "sparse_categorical_crossentropy",
                                                                           "from_logits": True}}}))
    assert not _trained_for_regression(model)
    ref = np.array([[0.5], [1.5]], np.float32)
    assert _compare(ref, ref, Tolerances(), enforced=True, classification=False)["argmax_agreement"] is None
    assert _compare(ref, ref, Tolerances(), enforced=True)["argmax_agreement"] == 1.0
