"""Result records of ``litetrain quantize``: one report per mode, the deploy path, the recommendation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from litetrain._io import json_safe, save_json
from litetrain.quantization.failures import ModeFailure
from litetrain.quantization.inference import InferenceFigures
from litetrain.quantization.layers import LayerError, SelectiveResult
from litetrain.quantization.modes import QuantMode
from litetrain.reporting.renderers import render_notebook, render_text

SCHEMA_VERSION = "1.0"
LAYERS_IN_JSON = 20
"""The per-layer table keeps the worst ops; the rest add nothing a reader acts on."""


class Status:
    """What happened to a mode (plain strings in the JSON)."""

    MEASURED = "measured"
    NO_OP = "no-op"
    REFUSED = "refused"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class ModeReport:
    """One quantization mode applied to one model kind, and what it measured.

    Attributes:
        kind: ``trainable`` (train/infer/save/restore quantized together) or ``inference`` (``infer`` only).
        status: ``measured``, ``no-op`` (identical to float32, figures copied) ``refused`` (not built) or ``failed``
            (the converter could not build it, or the interpreter could not run it, or it could not train;
            ``failure`` says which and why).
        inference: Outputs against float32 TensorFlow on held-out data; for a trainable model, after both were
            trained on identical batches.
        trains: Whether training the quantized model works (None for inference models; False when refused).
        training: The twin comparison's figures and verdict (trainable models).
        failure: For ``failed``: the model, the step and the one-line reason (the full error in its ``detail``).
        float32_size_bytes: None only when the float32 conversion itself failed.
    """

    mode: QuantMode
    kind: str
    status: str
    size_bytes: int | None
    float32_size_bytes: int | None
    inference: InferenceFigures | None
    latency_us: float | None
    trains: bool | None
    note: str = ""
    training: dict[str, Any] | None = None
    layers: tuple[LayerError, ...] = ()
    selective: SelectiveResult | None = None
    failure: ModeFailure | None = None

    @property
    def size_ratio(self) -> float | None:
        if self.size_bytes is None or not self.float32_size_bytes:
            return None
        return self.size_bytes / self.float32_size_bytes

    @property
    def has_figures(self) -> bool:
        """Measured (or a no-op whose figures are float32's): the mode was built and ran."""
        return self.status in (Status.MEASURED, Status.NO_OP)

    def to_json(self) -> dict[str, Any]:
        inf = self.inference.to_json() if self.inference else {}
        return {
            "mode": self.mode.value,
            "kind": self.kind,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "size_ratio": self.size_ratio,
            "max_abs_error": inf.get("max_abs_error"),
            "mean_abs_error": inf.get("mean_abs_error"),
            "max_rel_error": inf.get("max_rel_error"),
            "argmax_agreement": inf.get("argmax_agreement"),
            "accuracy": inf.get("accuracy"),
            "accuracy_float32": inf.get("accuracy_float32"),
            "accuracy_drop": inf.get("accuracy_drop"),
            "samples": inf.get("samples"),
            "latency_us": self.latency_us,
            "trains": self.trains,
            "note": self.note,
            "training": self.training,
            "layers": [r.to_json() for r in self.layers[:LAYERS_IN_JSON]],
            "selective": self.selective.to_json() if self.selective else None,
            "failure": self.failure.to_json() if self.failure else None,
        }


@dataclasses.dataclass(frozen=True)
class QuantizeResult:
    """Everything ``litetrain quantize`` measured. Always truthy: it informs, the recommendation decides."""

    model: dict[str, Any]
    data: dict[str, Any]
    representative: dict[str, Any]
    settings: dict[str, Any]
    modes: dict[str, ModeReport]
    recommendation: dict[str, Any] | None
    deploy: dict[str, ModeReport] | None
    deploy_recommendation: dict[str, Any] | None
    notes: tuple[str, ...]
    environment: dict[str, Any]
    timings: dict[str, float]
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    kind: str = "quantize"

    @property
    def model_kind(self) -> str:
        return str(self.model.get("kind"))

    def rows(self) -> list[tuple[str, ModeReport]]:
        """Every mode's report with the model it belongs to: ``trainable``/``inference``, then ``deploy``."""
        rows = [(self.model_kind, r) for r in self.modes.values()]
        return rows + [("deploy", r) for r in (self.deploy or {}).values()]

    def failures(self) -> list[str]:
        """One line per failed mode: the mode, the model, the step and the reason."""
        return [r.failure.line(r.mode.value) if r.failure else f"{r.mode.value} ({model} model) failed: {r.note}"
                for model, r in self.rows() if r.status == Status.FAILED]

    def requested_modes(self) -> tuple[str, ...]:
        """The modes asked for; ``none`` (the float32 reference, always measured) only when asked for alone."""
        asked = tuple(self.settings.get("requested_modes") or self.settings.get("modes") or ())
        return tuple(m for m in asked if m != "none") or asked

    def requested_measured(self) -> tuple[str, ...]:
        """The requested modes that were built and ran in at least one model (trainable, inference or deploy)."""
        ran = {r.mode.value for _, r in self.rows() if r.has_figures}
        return tuple(m for m in self.requested_modes() if m in ran)

    def to_json(self) -> dict[str, Any]:
        """The versioned, machine-readable form."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "model": self.model,
            "data": self.data,
            "representative_data": self.representative,
            "settings": self.settings,
            "modes": {k: v.to_json() for k, v in self.modes.items()},
            "recommendation": self.recommendation,
            "deploy": None if self.deploy is None else {
                "description": "inference-only models (infer alone, weights as constants) exported from the "
                               "weights after on-device (TFLite float32) training, quantized per mode",
                "modes": {k: v.to_json() for k, v in self.deploy.items()},
                "recommendation": self.deploy_recommendation,
            },
            "notes": list(self.notes),
            "files": self.files,
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
