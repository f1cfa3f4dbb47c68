"""Training speed of the demo model: TensorFlow vs a bare LiteRT loop vs litetrain's own loop.

For each batch size the demo model (litetrain.models.tutorial_2021: Flatten 28x28 -> Dense 128 ReLU -> Dense 10,
SGD, categorical cross-entropy from logits, digits resized to 28x28) is built once with
litetrain.trainable.builder.build and trained three ways on the same batches (one plan_batches plan):

  TF         TensorflowModuleRunner (a tf.function train step) through compare.twin.train_trajectory
  bare       ai_edge_litert Interpreter(model_content=...).get_signature_runner("train") called in a plain
             Python for-loop over pre-sliced batches: the floor for any Python training loop
  litetrain  LiteRTRunner(result.tflite) through compare.twin.train_trajectory (what demo/check run)

Noise control: work is cut into blocks of --block-seconds. In every round (--rounds, each starting from the same
initial weights) bare and litetrain run equally many blocks (at least --min-seconds each) in alternating pairs,
bare first in one pair and litetrain first in the next; TF runs its blocks (at least --min-seconds) in a phase of
its own before or after the pairs (alternating by round), so that TF's thread pool never sits right before one of
the two LiteRT loops more than the other. The best block of each (--stat best) or the median block
(--stat median) is reported; "paired" is the median over the pairs of litetrain/bare, which cancels slow changes
of load from other processes.

What "litetrain" counts: the time train_trajectory measures around each train_step (its own steps/s figure,
everything in LiteRTRunner.train_step included). train_trajectory also slices all its batches out of the data up
front, which the bare loop gets for free; "lt wall" is the wall time of the whole train_trajectory call, slicing
included. The TF figure is train_trajectory's own, like litetrain's. Weight snapshots are off in both
(record_weights=False; the demo takes 4 per run, each one save signature call).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

TARGET = 0.90  # litetrain loop / bare loop
METHODS = ("TF", "bare", "litetrain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/train_speed.py",
        description="Train steps/s of the demo model: TF tf.function vs a bare LiteRT signature-runner loop vs "
        f"litetrain's loop (LiteRTRunner + train_trajectory); target litetrain/bare >= {TARGET:.2f}.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batch-sizes", default="1,32,256", help="comma-separated batch sizes (default 1,32,256)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per batch size (default 3)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="least work per method per round, in seconds (default 1.0)")
    p.add_argument("--block-seconds", type=float, default=0.05,
                   help="length of one interleaved block of the LiteRT loops (default 0.05)")
    p.add_argument("--stat", choices=("best", "median"), default="best",
                   help="which block to report (default best: the least disturbed by other processes)")
    p.add_argument("--max-batch-mb", type=float, default=64.0,
                   help="memory for the pre-sliced batches of one block (default 64)")
    p.add_argument("--learning-rate", type=float, default=0.05, help="SGD learning rate (default 0.05, the demo's)")
    p.add_argument("--seed", type=int, default=0, help="initialization and batch order (default 0)")
    return p.parse_args(argv)


def _padded(x: Any, y: Any, indices: Any, batch: int) -> tuple[Any, Any, Any]:
    """The plan's batches at the signature's fixed size (a partial one's rows repeated) and their counts ``n``."""
    import numpy as np

    rows = np.stack([r[np.arange(batch) % len(r)] for r in indices])
    return x[rows], y[rows], np.array([[len(r)] for r in indices], np.int32)


class Case:
    """One batch size: the built model, the three trainers on one shared block of batches, and their timings."""

    def __init__(self, batch: int, args: argparse.Namespace, dataset: Any) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from litetrain.api import seed_everything
        from litetrain.config import LossConfig, Optimizer, OptimizerConfig
        from litetrain.data.batching import plan_batches
        from litetrain.data.fit import fit_to_model
        from litetrain.models import tutorial_2021
        from litetrain.runtime.base import TensorInfo
        from litetrain.runtime.litert import LiteRTRunner
        from litetrain.runtime.tensorflow import TensorflowModuleRunner
        from litetrain.trainable.builder import build

        t0 = time.perf_counter()
        self.batch = batch
        seed_everything(args.seed)
        result = build(
            tutorial_2021(),
            loss=LossConfig.parse("categorical_crossentropy", from_logits=True),
            optimizer=OptimizerConfig(Optimizer.SGD, learning_rate=args.learning_rate),
            batch_size=batch,
        )
        self.build_s = time.perf_counter() - t0
        module = result.module
        self.tf_runner = TensorflowModuleRunner(module)
        self.lite_runner = LiteRTRunner(result.tflite)
        self.interp = Interpreter(model_content=result.tflite)
        self.bare_train = self.interp.get_signature_runner("train")
        self.bare_restore = self.interp.get_signature_runner("restore")
        self.initial = self.tf_runner.get_weights()
        if set(self.interp.get_signature_runner("save")()) != set(self.initial):
            raise SystemExit("train_speed: the .tflite save signature and the TensorFlow module disagree")

        y_info = TensorInfo("y", tuple(module.y_spec.shape.as_list()), module.y_dtype)
        self.data = fit_to_model(dataset, self.lite_runner.train_inputs[0], y_info, module.output_shape,
                                 module.loss_config)
        x, y = self.data.x, self.data.y
        # Block length: about --block-seconds of the bare loop, within --max-batch-mb of pre-sliced batches.
        probe = plan_batches(len(x), batch, steps=50, seed=args.seed)
        px, py, pn = _padded(x, y, probe.indices, batch)
        for i in range(10):  # warm-up
            self.bare_train(x=px[i], y=py[i], n=pn[i])
        start = time.perf_counter()
        for i in range(10, 50):
            self.bare_train(x=px[i], y=py[i], n=pn[i])
        per_step = (time.perf_counter() - start) / 40
        cap = max(1, int(args.max_batch_mb * 2**20 // (x[:batch].nbytes + y[:batch].nbytes)))
        self.steps = max(10, min(cap, math.ceil(args.block_seconds / per_step)))
        self.plan = plan_batches(len(x), batch, steps=self.steps, seed=args.seed)
        self.xb, self.yb, self.nb = _padded(x, y, self.plan.indices, batch)  # the bare loop's batches, sliced once
        self.loop: dict[str, list[float]] = {m: [] for m in METHODS}  # seconds per step, one per block
        self.wall: list[float] = []  # litetrain: whole train_trajectory call per step (slicing included)
        self.blocks = dict.fromkeys(METHODS, 1)

    def reset(self) -> None:
        """Every measurement starts from the same weights (outside the timed region)."""
        self.tf_runner.set_weights(self.initial)
        self.lite_runner.set_weights(self.initial)
        self.bare_restore(**self.initial)

    def run_bare(self) -> float:
        train, xb, yb, nb = self.bare_train, self.xb, self.yb, self.nb
        start = time.perf_counter()
        for i in range(self.steps):
            train(x=xb[i], y=yb[i], n=nb[i])
        return time.perf_counter() - start

    def run_trajectory(self, runner: Any) -> tuple[float, float]:
        from litetrain.comparison.twin import train_trajectory

        start = time.perf_counter()
        traj = train_trajectory(runner, self.data.x, self.data.y, self.plan, (), record_weights=False)
        return traj.seconds, time.perf_counter() - start

    def block(self, method: str) -> None:
        """Runs one block of ``method`` and records its seconds per step."""
        if method == "bare":
            self.loop[method].append(self.run_bare() / self.steps)
            return
        loop, wall = self.run_trajectory(self.tf_runner if method == "TF" else self.lite_runner)
        self.loop[method].append(loop / self.steps)
        if method == "litetrain":
            self.wall.append(wall / self.steps)

    def measure(self, args: argparse.Namespace) -> None:
        self.reset()
        for method in METHODS:  # warm-up (traces the tf.function) and calibration of blocks per round
            self.block(method)
            self.block(method)
            self.blocks[method] = max(1, math.ceil(args.min_seconds / (min(self.loop[method]) * self.steps)))
        # bare and litetrain run the same number of blocks, alternating, so that block i of each forms a pair.
        self.blocks["bare"] = self.blocks["litetrain"] = max(self.blocks["bare"], self.blocks["litetrain"])
        self.loop = {m: [] for m in METHODS}
        self.wall = []
        for r in range(args.rounds):
            self.reset()
            if r % 2 == 0:
                self.tf_phase()
            for i in range(self.blocks["bare"]):  # pairs; which of the two goes first alternates
                for method in ("bare", "litetrain") if (i + r) % 2 == 0 else ("litetrain", "bare"):
                    self.block(method)
            if r % 2 == 1:
                self.tf_phase()

    def tf_phase(self) -> None:
        # TF runs in a phase of its own: its thread pool can stay busy for a moment after a step, which would
        # slow whichever LiteRT loop always came next if TF blocks were interleaved with them.
        for _ in range(self.blocks["TF"]):
            self.block("TF")

    def close(self) -> None:
        self.lite_runner.close()
        del self.interp, self.bare_train, self.bare_restore


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        batch_sizes = []
    if args.rounds < 1 or args.min_seconds <= 0 or args.block_seconds <= 0 or not batch_sizes \
            or min(batch_sizes) < 1:
        print("train_speed: needs --rounds >= 1, positive --min-seconds/--block-seconds and positive batch sizes",
              file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_start = time.perf_counter()
    from litetrain.data.dataset import load_digits

    dataset = load_digits((28, 28))
    print(f"train_speed: tutorial_2021 (784-128-10), SGD lr {args.learning_rate:g}, digits:28x28 "
          f"({len(dataset.x)} training samples); {args.rounds} round(s) of >= {args.min_seconds:g} s per method, "
          f"interleaved in ~{args.block_seconds:g} s blocks; {args.stat} block reported", flush=True)

    pick: Callable[[list[float]], float] = min if args.stat == "best" else statistics.median
    rows = []
    for batch in batch_sizes:
        t0 = time.perf_counter()
        case = Case(batch, args, dataset)
        case.measure(args)
        case.close()
        sps = {m: 1.0 / pick(v) for m, v in case.loop.items()}
        sps["lt wall"] = 1.0 / pick(case.wall)
        spread = {m: (1.0 / max(v), 1.0 / min(v)) for m, v in case.loop.items()}
        paired = statistics.median(b / lt for b, lt in zip(case.loop["bare"], case.loop["litetrain"], strict=True))
        rows.append((batch, sps, spread, paired))
        print(f"  batch {batch:>4}: build {case.build_s:.1f} s, total {time.perf_counter() - t0:.1f} s; block of "
              f"{case.steps} steps; blocks per round TF {case.blocks['TF']}, bare {case.blocks['bare']}, "
              f"litetrain {case.blocks['litetrain']}", flush=True)

    print()
    head = (f"{'batch':>5} {'TF':>8} {'bare':>8} {'litetrain':>9} {'lt wall':>8} {'TFLite/TF':>9} "
            f"{'lt/TF':>6} {'overhead':>9} {'paired':>7} {'litetrain/bare':>14}  target >= {TARGET:.2f}")
    print(f"{'':5} {'steps/s':>8} {'steps/s':>8} {'steps/s':>9} {'steps/s':>8} {'(bare)':>9} {'':>6} "
          f"{'us/step':>9} {'lt/bare':>7}")
    print(head)
    print("-" * len(head))
    for batch, sps, _, paired in rows:
        ratio = sps["litetrain"] / sps["bare"]
        overhead_us = 1e6 * (1 / sps["litetrain"] - 1 / sps["bare"])
        print(f"{batch:>5} {sps['TF']:>8,.0f} {sps['bare']:>8,.0f} {sps['litetrain']:>9,.0f} "
              f"{sps['lt wall']:>8,.0f} {sps['bare'] / sps['TF']:>8.1f}x {sps['litetrain'] / sps['TF']:>5.1f}x "
              f"{overhead_us:>9.1f} {paired:>7.3f} {ratio:>14.3f}  {'PASS' if ratio >= TARGET else 'BELOW TARGET'}")
    print("\nspread over blocks (slowest-fastest steps/s):")
    for batch, _, spread, _ in rows:
        print(f"  batch {batch:>4}: " + ", ".join(f"{m} {lo:,.0f}-{hi:,.0f}" for m, (lo, hi) in spread.items()))
    try:
        load = "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "load average unavailable"
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s; {os.cpu_count()} CPU(s); {load} "
          "(others' work on the machine shows up as spread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
