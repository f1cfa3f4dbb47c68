"""Result records of a comparison and the verdict (frozen dataclasses; truthy when the verdict passed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._io import json_safe, save_json
from litetrain.comparison import metrics
from litetrain.comparison.verdict import Verdict
from litetrain.reporting.renderers import render_notebook, render_text

SCHEMA_VERSION = "1.0"




@dataclasses.dataclass(frozen=True)
class CheckItem:
    """One pass/fail check that feeds the verdict."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class InferenceComparison:
    """Outputs of both twins on the held-out data."""

    samples: int
    max_abs_error: float
    max_rel_error: float
    mean_abs_error: float
    argmax_agreement: float
    accuracy: dict[str, float | None]
    within_tolerance: bool
    error_histogram: dict[str, Any] | None = None
    """|candidate - reference| of every output element: log-spaced ``edges``, ``counts``, ``exact`` (zero)."""

    @property
    def classification(self) -> bool:
        """Whether the outputs are class scores (an accuracy was measured); argmax agreement means nothing else."""
        return any(v is not None for v in self.accuracy.values())

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CheckpointCheck:
    """Save from the trained interpreter, restore into a fresh one: are outputs and weights bit-identical?

    NaN and Inf weights are reported apart (``non_finite_weights``): a round trip that reproduces them where they
    were is exact, since NaN never equals NaN but is still what was saved.
    """

    roundtrip_exact: bool
    variables: int
    size_bytes: int
    max_abs_output_diff: float
    non_finite_weights: tuple[str, ...] = ()

    @classmethod
    def from_round_trip(
        cls,
        saved: Mapping[str, np.ndarray],
        restored: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        restored_outputs: Mapping[str, np.ndarray],
    ) -> CheckpointCheck:
        """Judges a round trip: the weights ``saved`` and read back after restoring, and ``infer``'s outputs of the
        trained and the restored model on the same inputs (NaN where NaN was counts as reproduced)."""
        same = all(k in restored and metrics.same_values(saved[k], restored[k]) for k in saved)
        same = same and all(metrics.same_values(outputs[k], restored_outputs[k]) for k in outputs)
        diffs = [_finite_max_abs(restored_outputs[k], outputs[k]) for k in outputs]
        return cls(
            roundtrip_exact=bool(same),
            variables=len(saved),
            size_bytes=int(sum(np.asarray(v).nbytes for v in saved.values())),
            max_abs_output_diff=max(diffs, default=0.0),
            non_finite_weights=tuple(sorted(k for k, v in saved.items() if not metrics.all_finite(v))),
        )

    def describe(self) -> str:
        """The check's line: exact, or how far the outputs moved; NaN/Inf weights named apart."""
        if self.roundtrip_exact:
            text = "save -> restore into a fresh interpreter reproduces outputs and weights bit for bit"
        else:
            text = (f"restoring the saved weights into a fresh interpreter changed outputs by up to "
                    f"{self.max_abs_output_diff:.3g}")
        if self.non_finite_weights:
            names = ", ".join(self.non_finite_weights[:3]) + (", ..." if len(self.non_finite_weights) > 3 else "")
            text += (f"; the weights are NaN/Inf after training ({len(self.non_finite_weights)} of "
                     f"{self.variables} arrays: {names})")
        return text

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["non_finite_weights"] = list(self.non_finite_weights)
        return out


def _finite_max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference where both are finite and differ; NaN against a number counts as Inf."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return float("inf")
    both = np.isfinite(a64) & np.isfinite(b64)
    if not np.array_equal(a64[~both], b64[~both], equal_nan=True):
        return float("inf")
    return float(np.max(np.abs(a64[both] - b64[both]), initial=0.0))


@dataclasses.dataclass(frozen=True)
class TrainComparison:
    """Per-step losses of both twins and the weight differences at the recorded steps."""

    steps: int
    batch_size: int
    epochs: float
    seed: int
    loss: dict[str, list[float]]
    max_abs_loss_diff: float
    max_rel_loss_diff: float
    first_step_beyond_tolerance: int | None
    max_abs_weight_diff: float | None
    max_rel_weight_diff: float | None
    weights: dict[str, dict[str, Any]]
    steps_per_second: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """Everything a check or compare measured, and the verdict. ``bool(result)`` is True when it passed."""

    kind: str
    verdict: Verdict
    passed: bool
    explanation: str
    checks: tuple[CheckItem, ...]
    model: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    initial_weights: dict[str, Any]
    train: TrainComparison
    inference: dict[str, InferenceComparison]
    checkpoint: CheckpointCheck | None
    environment: dict[str, Any]
    timings: dict[str, float]
    cause: str = ""
    fail_on: tuple[str, ...] = ()
    noise_floor: dict[str, Any] | None = None
    float64: dict[str, Any] | None = None
    divergence: dict[str, Any] | None = None
    health: tuple[dict[str, Any], ...] = ()
    location: dict[str, Any] | None = None
    repeats: dict[str, Any] | None = None
    runtimes: dict[str, Any] | None = None
    """With ``--runtimes``: one row per LiteRT runtime (:mod:`litetrain.comparison.runtimes`)."""

    def __bool__(self) -> bool:
        return self.passed

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        """The versioned, machine-readable form (documented in docs/report-schema.md)."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "fail_on": list(self.fail_on),
            "cause": self.cause,
            "explanation": self.explanation,
            "reasons": self.reasons,
            "checks": [c.to_json() for c in self.checks],
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "initial_weights": self.initial_weights,
            "train": self.train.to_json(),
            "inference": {k: v.to_json() for k, v in self.inference.items()},
            "checkpoint": self.checkpoint.to_json() if self.checkpoint else None,
            "noise_floor": self.noise_floor,
            "float64": self.float64,
            "divergence": self.divergence,
            "health": list(self.health),
            "location": self.location,
            "repeats": self.repeats,
            "runtimes": self.runtimes,
            "environment": self.environment,
            "timings_s": self.timings,
        })

    def save(self, path: str | Path) -> Path:
        """Writes the JSON form atomically."""
        return save_json(path, self.to_json())

    def __str__(self) -> str:
        return render_text(self)

    def _repr_html_(self) -> str:
        return render_notebook(self)
