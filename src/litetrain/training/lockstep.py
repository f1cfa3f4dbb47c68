"""``LockstepRunner``: several runtimes train the same batches from the same weights; the first one leads.

``litetrain train --runtimes arm64,interpreter`` trains its session (checkpoints, evaluation, budget) on the
first runtime; every further one follows it step by step: it gets the same batch, and every weight assignment
(a restored checkpoint on ``--resume``, a learning-rate change) goes to all of them. ``get_weights`` and ``infer``
are the leader's, so checkpoints hold exactly what the leader trained. :meth:`rows` compares the followers with the
leader at the end: their losses step by step, their weights, their speed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.errors import InternalError
from litetrain.runtime.base import Runner
from litetrain.runtime.registry import EMULATED


class LockstepRunner(Runner):
    """The first runner leads (its losses, weights and outputs are the session's); the others follow.

    Args:
        runners: At least two runners of the same model, each with a distinct ``name``; closed with this one.
    """

    def __init__(self, runners: Sequence[Runner]) -> None:
        super().__init__()
        if len(runners) < 2 or len({r.name for r in runners}) != len(runners):
            raise InternalError(f"LockstepRunner needs two or more distinct runners; got {[r.name for r in runners]}.")
        self.runners = tuple(runners)
        self.leader = runners[0]
        self.name = self.leader.name
        for attr in ("train_inputs", "infer_input", "infer_outputs", "weight_infos", "has_weights", "count_input"):
            setattr(self, attr, getattr(self.leader, attr, None))
        self.losses: dict[str, list[float]] = {r.name: [] for r in runners}

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One step of every runtime on the same batch; returns the leader's loss.

        Each runner checks, pads and times its own step, so ``train_seconds`` here is the leader's alone.
        """
        for runner in self.runners:
            self.losses[runner.name].append(runner.train_step(x, y))
        self.train_seconds, self.train_calls = self.leader.train_seconds, self.leader.train_calls
        return self.losses[self.leader.name][-1]

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, *count: Any) -> float:
        return self.train_step(x, y)  # train_step is replaced above; every runner pads and counts for itself

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.leader.infer(x)

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.leader.infer(x)

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return self.leader.get_weights()

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        for runner in self.runners:
            runner.set_weights(weights)

    def close(self) -> None:
        for runner in self.runners:
            runner.close()

    def rows(self) -> dict[str, dict[str, Any]]:
        """Per runtime: steps, final loss, steps/s and (followers) the largest loss and weight difference to the
        leader, and whether they equal its bit for bit. ``emulated``: the speed is an emulator's."""
        lead = np.asarray(self.losses[self.leader.name], np.float64)
        lead_weights = self.leader.get_weights() if self.has_weights else {}
        out: dict[str, dict[str, Any]] = {}
        for runner in self.runners:
            losses = np.asarray(self.losses[runner.name], np.float64)
            row: dict[str, Any] = {
                "leader": runner is self.leader, "steps": len(losses),
                "final_loss": float(losses[-1]) if len(losses) else None,
                "steps_per_second": runner.train_calls / runner.train_seconds if runner.train_seconds else None,
                "emulated": runner.name in EMULATED,
            }
            row.update(max_abs_loss_diff=None, max_abs_weight_diff=None, identical_to_leader=None)
            if runner is not self.leader:
                weights = runner.get_weights() if self.has_weights else {}
                diffs = [float(np.max(np.abs(np.asarray(w, np.float64) - np.asarray(lead_weights[n], np.float64))))
                         for n, w in weights.items() if np.size(w) and np.issubdtype(np.asarray(w).dtype, np.floating)]
                row["max_abs_loss_diff"] = float(np.max(np.abs(losses - lead))) if len(losses) else None
                row["max_abs_weight_diff"] = max(diffs) if diffs else None
                row["identical_to_leader"] = bool(np.array_equal(losses, lead) and all(
                    np.array_equal(w, lead_weights[n]) for n, w in weights.items()))
            out[runner.name] = row
        return out
