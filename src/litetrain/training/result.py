"""The result of a training session: per-epoch loss and held-out accuracy, the final checkpoint, the budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from litetrain._io import json_safe, save_json
from litetrain.reporting.renderers import render_text
from litetrain.training.budget import Budget

SCHEMA_VERSION = "1.0"


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One completed epoch (numbered from 1)."""

    epoch: int
    loss: float
    """Mean training loss of the epoch's steps (each loss as the train signature returns it, before its update)."""
    accuracy: float | None
    """Held-out accuracy through ``infer`` after the epoch (None for regression)."""
    learning_rate: float | None
    """The rate of the epoch's last step (None when the model does not exchange it)."""
    steps: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EpochRecord:
        return cls(int(d["epoch"]), float(d["loss"]), None if d["accuracy"] is None else float(d["accuracy"]),
                   None if d["learning_rate"] is None else float(d["learning_rate"]), int(d["steps"]))


@dataclasses.dataclass(frozen=True)
class EpochTiming:
    """How long one epoch took in this session.

    Kept apart from :class:`EpochRecord` because timings differ from run to run, while the records go into every
    checkpoint, which must be byte-identical whether or not the session was killed and resumed.
    """

    seconds: float
    """Wall-clock time of the epoch in this session: its train steps, learning-rate changes, checkpoint writes and
    the held-out evaluation after it."""
    seconds_per_step: float | None
    """Mean time of a ``train`` call as the session sees it (with the isolated worker: including the pipe)."""
    interpreter_seconds_per_step: float | None
    """Isolated worker only: mean time inside its interpreter per ``train`` call, what a device pays."""
    steps_this_session: int
    """Steps of the epoch run in this session (fewer than the epoch's when the session resumed inside it)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


UNTIMED: dict[str, Any] = {"seconds": None, "seconds_per_step": None, "interpreter_seconds_per_step": None,
                           "steps_this_session": 0}
"""The timing keys of an epoch completed by an earlier session that this one resumed (not measured here)."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training session did and cost. Truthy: every epoch asked for is complete."""

    model: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    environment: dict[str, Any]
    steps: int
    """Global steps trained, including those of earlier sessions this one resumed."""
    steps_per_epoch: int
    epochs: tuple[EpochRecord, ...]
    final_checkpoint: Path | None
    checkpoints: tuple[Path, ...]
    resumed_from: dict[str, Any] | None
    budget: Budget
    epoch_timings: dict[int, EpochTiming] = dataclasses.field(default_factory=dict)
    """Epoch number -> its timing, for the epochs this session ran (all of them, unless it resumed)."""
    runtimes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """``--runtimes``: a row per runtime trained this session (:mod:`litetrain.training.runtimes`); empty without."""
    kind: ClassVar[str] = "train"

    @property
    def complete(self) -> bool:
        return len(self.epochs) == int(self.settings["epochs"])

    def __bool__(self) -> bool:
        return self.complete

    @property
    def final_loss(self) -> float | None:
        return self.epochs[-1].loss if self.epochs else None

    @property
    def final_accuracy(self) -> float | None:
        return self.epochs[-1].accuracy if self.epochs else None

    def to_json(self) -> dict[str, Any]:
        """The versioned, machine-readable form (fields documented in docs/checkpoints.md)."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "complete": self.complete,
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "steps": self.steps,
            "steps_this_session": self.budget.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": [{**e.to_json(), **(self.epoch_timings[e.epoch].to_json() if e.epoch in self.epoch_timings
                                          else UNTIMED)} for e in self.epochs],
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "final_checkpoint": str(self.final_checkpoint) if self.final_checkpoint else None,
            "checkpoints": [str(p) for p in self.checkpoints],
            "resumed_from": self.resumed_from,
            "peak_rss_bytes": self.budget.peak_rss_bytes,
            "rss_source": self.budget.rss_source,
            "seconds_per_step": self.budget.seconds_per_step,
            "budget": self.budget.to_json(),
            "environment": self.environment,
            "runtimes": self.runtimes or None,
        })

    def save(self, path: str | Path) -> Path:
        """Writes the JSON form atomically."""
        return save_json(path, self.to_json())

    def __str__(self) -> str:
        return render_text(self)
