"""The budget of a training session: what it cost in time, memory and disk, and what a larger dataset would cost.

A phone schedules background training against a time and memory budget; these are the figures to hold it to.
The projection is linear in steps: per epoch, ``samples // batch`` train steps at the measured time per step,
the held-out evaluation at the measured time per sample (the held-out set taken in the same proportion to the
training set as in the measured session), and the checkpoint writes at the measured time per write.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Any


@dataclasses.dataclass(frozen=True)
class Projection:
    """Projected cost of training on ``samples`` training samples for ``epochs`` epochs."""

    samples: int
    epochs: int
    steps_per_epoch: int
    seconds_per_epoch: float
    seconds: float
    data_bytes: int
    """Memory of the training and held-out inputs and labels as float32/int32 arrays."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Measured cost of one session (this process's share when it resumed a killed one)."""

    steps: int
    """Steps trained in this session."""
    total_steps: int
    """The global step at the end (including steps of sessions before a resume)."""
    wall_seconds: float
    """The whole session: loading the model and data, training, evaluating and checkpointing."""
    train_seconds: float
    """Time inside the train signature (as the caller sees it, so with the worker's IPC when isolated)."""
    seconds_per_step: float | None
    interpreter_seconds_per_step: float | None
    """Isolated worker only: time inside the interpreter per step, without the IPC round trip; what a device pays."""
    eval_seconds: float
    checkpoint_writes: int
    checkpoint_seconds_mean: float | None
    checkpoint_size_bytes: int | None
    peak_rss_bytes: int | None
    rss_source: str
    """``worker``: peak RSS of the isolated runtime process; ``in-process``: of this whole Python process."""
    model_size_bytes: int
    data_bytes: int
    worker_timings: dict[str, Any] | None = None
    projection: Projection | None = None
    feature_cache_bytes: int | None = None
    """Memory of the cached bottlenecks of every training sample (None: the session ran ``train`` on the inputs)."""
    feature_cache_seconds: float | None = None
    """Time spent computing the cached bottlenecks (once per session, in its first epoch)."""

    @property
    def steps_per_second(self) -> float | None:
        return 1.0 / self.seconds_per_step if self.seconds_per_step else None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["steps_per_second"] = self.steps_per_second
        out["projection"] = self.projection.to_json() if self.projection else None
        return out

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        sps = self.steps_per_second
        per_step = f"{self.seconds_per_step * 1e3:.3f} ms/step, {sps:,.1f} steps/s" if sps else "no steps"
        if self.interpreter_seconds_per_step:
            per_step += f" ({self.interpreter_seconds_per_step * 1e3:.3f} ms inside the worker's interpreter)"
        lines = [
            f"budget: {self.steps} steps this session ({self.total_steps} in all), {per_step}, "
            f"wall {self.wall_seconds:.2f} s (train {self.train_seconds:.2f} s, evaluation "
            f"{self.eval_seconds:.2f} s, {self.checkpoint_writes} checkpoint writes"
            + (f" of {self.checkpoint_seconds_mean * 1e3:.1f} ms" if self.checkpoint_seconds_mean else "") + ")",
            f"memory: peak RSS {_mib(self.peak_rss_bytes)} ({self.rss_source}); model {_kib(self.model_size_bytes)}, "
            f"checkpoint {_kib(self.checkpoint_size_bytes)}, data {_mib(self.data_bytes)}"
            + (f", feature cache {_mib(self.feature_cache_bytes)} (computed in {self.feature_cache_seconds:.2f} s)"
               if self.feature_cache_bytes is not None else ""),
        ]
        p = self.projection
        if p is not None:
            lines.append(
                f"projection for {p.samples:,} samples: {p.steps_per_epoch:,} steps/epoch, "
                f"{_duration(p.seconds_per_epoch)}/epoch, {_duration(p.seconds)} for {p.epochs} epoch(s), "
                f"data {_mib(p.data_bytes)}"
            )
        return lines


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def project(
    samples: int,
    *,
    epochs: int,
    batch_size: int,
    seconds_per_step: float,
    checkpoint_every: int | None,
    checkpoint_seconds: float | None,
    eval_seconds_per_sample: float,
    test_ratio: float,
    sample_bytes: int,
) -> Projection:
    """Projects a session over ``samples`` training samples from measured per-step, per-sample and per-write costs.

    Args:
        samples: Training samples of the projected dataset.
        epochs: Epochs of the projected session.
        batch_size: The train signature's batch (the last batch of an epoch may be partial).
        seconds_per_step: Measured time of one train step.
        checkpoint_every: Checkpoint interval in steps (None: at the end of each epoch only).
        checkpoint_seconds: Measured time of one checkpoint write (None: not measured, counted as 0).
        eval_seconds_per_sample: Measured held-out inference time per sample.
        test_ratio: Held-out samples per training sample.
        sample_bytes: Bytes of one sample's input and label.
    """
    steps_per_epoch = -(-samples // batch_size)
    writes = 1 + (max(0, (steps_per_epoch - 1) // checkpoint_every) if checkpoint_every else 0)
    test_samples = math.ceil(samples * test_ratio)
    per_epoch = (steps_per_epoch * seconds_per_step + writes * (checkpoint_seconds or 0.0)
                 + test_samples * eval_seconds_per_sample)
    return Projection(samples=samples, epochs=epochs, steps_per_epoch=steps_per_epoch, seconds_per_epoch=per_epoch,
                      seconds=per_epoch * epochs, data_bytes=(samples + test_samples) * sample_bytes)


def process_peak_rss_bytes() -> int | None:
    """Peak resident set size of this process so far, or None if unknown.

    Measured as the isolated worker measures itself (:func:`litetrain.runtime._worker_main.peak_rss_bytes`: the
    memory map's high-water mark ``VmHWM`` where it exists, since ``ru_maxrss`` survives ``exec``), so in-process and
    worker budgets report the same quantity; without ``getrusage`` (Windows) psutil's peak working set.
    """
    from litetrain.runtime._worker_main import peak_rss_bytes

    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil

            info = psutil.Process(os.getpid()).memory_info()
            return int(getattr(info, "peak_wset", info.rss))
        except Exception:
            return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak_rss_bytes(maxrss if sys.platform == "darwin" else maxrss * 1024) or None
