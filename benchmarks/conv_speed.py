"""Training speed of convolutional models: TFLite (LiteRT Interpreter) vs TensorFlow, side by side in one run.

Models: MobileNetV2 alpha 0.35 at 96x96, every layer training, batch 8 (target TFLite >= 3x TensorFlow), and the
conv models of the zoo (tests/zoo.py) at their own settings (target >= 1.5x). Each model is built once with
litetrain's ``build`` (as ``check`` builds it); TensorFlow trains through ``TensorflowModuleRunner`` (the traced
``tf.function`` train step) and TFLite through ``LiteRTRunner`` (the .tflite's ``train`` signature), on one fixed
batch of the entry's own data.

Method: both engines are warmed first (TensorFlow traces its step on the first call), then ``--rounds`` rounds
each run one block of both engines of about ``--block-seconds``, the order alternating by round, every round from
the same initial weights. The median block is reported (``--stat best`` for the best). TensorFlow runs with its
default thread pools (2 intra-op threads on 2 cores); TFLite with ``--threads`` (default 1, LiteRT's default).

Roofline: the best float32 GFLOP/s of numpy's matmul (BLAS, all cores) on 512x512x512 products, measured in the
same run; a step's FLOPs are those of the convolutions and matrix products in the .tflite's train subgraph
(2 per multiply-accumulate, op_profile.TrainGraph.step_flops), counted the same for both engines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

FLAGSHIP = "mobilenet_v2-finetune"
FLAGSHIP_SIZE = 96
FLAGSHIP_TARGET, ZOO_TARGET = 3.0, 1.5
ZOO_CONV = (
    "resnet_small-finetune", "resnet_small-transfer", "mini_xception-separable", "cnn-group_norm",
    "cnn-dilated-strided", "cnn-crop-pad", "conv-autoencoder", "audio-conv1d", "text-conv1d",
    "mobilenet_v2-finetune", "mobilenet_v2-transfer", "mobilenet_v3_small-finetune", "mobilenet_v3_small-transfer",
    "efficientnet_b0-finetune", "efficientnet_b0-transfer", "tf_keras-mobilenet_v2-transfer",
)
QUICK = ("resnet_small-finetune", "mini_xception-separable", "cnn-dilated-strided")


def sgemm_gflops(seconds: float = 1.0) -> float:
    """Best GFLOP/s of numpy's float32 matmul on 512x512x512 products within ``seconds``."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 512, 512), dtype=np.float32)
    a @ b
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 512**3 / best / 1e9


class Case:
    """One model: built once, both runners warmed, blocks of steps timed per engine."""

    def __init__(self, name: str, image_size: int | None, target: float, args: argparse.Namespace) -> None:
        from _models import build_model, zoo
        from op_profile import TrainGraph

        from litetrain.runtime.litert import LiteRTRunner

        self.label = name if image_size is None else f"{name}@{image_size}"
        self.target = target
        if image_size is None:
            zoo().IMAGE = 32
        self.built = build_model(name, image_size=image_size)
        self.tf, _ = self.built.runners()
        self.lite = LiteRTRunner(self.built.result.tflite, num_threads=args.threads)
        self.flops = TrainGraph(self.built.result.tflite, self.built.feed(self.lite)).step_flops()
        self.initial = self.tf.get_weights()
        self.seconds: dict[str, list[float]] = {"TF": [], "TFLite": []}
        self.steps = {"TF": 1, "TFLite": 1}
        for engine in self.seconds:  # warm-up: TF traces here; then a block length of about --block-seconds
            self.run(engine, 2)
            per_step = self.run(engine, 2)
            self.steps[engine] = max(2, round(args.block_seconds / per_step))

    def runner(self, engine: str) -> Any:
        return self.tf if engine == "TF" else self.lite

    def run(self, engine: str, steps: int) -> float:
        runner, x, y = self.runner(engine), self.built.x, self.built.y
        start = time.perf_counter()
        for _ in range(steps):
            runner.train_step(x, y)
        return (time.perf_counter() - start) / steps

    def measure(self, rounds: int) -> None:
        for r in range(rounds):
            for engine in ("TF", "TFLite") if r % 2 == 0 else ("TFLite", "TF"):
                self.runner(engine).set_weights(self.initial)
                self.seconds[engine].append(self.run(engine, self.steps[engine]))

    def close(self) -> None:
        self.lite.close()


def report(cases: list[Case], stat: str, roofline: float) -> int:
    pick = min if stat == "best" else statistics.median
    head = (f"{'model':<36}{'batch':>6}{'GFLOP':>7}{'TF st/s':>9}{'TFLite':>9}{'ratio':>7}{'target':>8}  "
            f"{'verdict':<13}{'TF roof':>8}{'TFLite roof':>12}")
    print(f"\n{head}\n{'-' * len(head)}")
    below = 0
    for c in cases:
        sps = {e: 1.0 / pick(v) for e, v in c.seconds.items()}
        ratio = sps["TFLite"] / sps["TF"]
        verdict = "PASS" if ratio >= c.target else "BELOW TARGET"
        below += verdict != "PASS"
        gflop = c.flops / 1e9
        print(f"{c.label:<36}{c.built.batch:>6}{gflop:>7.3f}{sps['TF']:>9.2f}{sps['TFLite']:>9.2f}{ratio:>6.2f}x"
              f"{c.target:>7.1f}x  {verdict:<13}{sps['TF'] * gflop / roofline:>8.1%}"
              f"{sps['TFLite'] * gflop / roofline:>12.1%}")
    print("\nspread (slowest-fastest block, steps/s): " + "; ".join(
        f"{c.label} TF {1 / max(c.seconds['TF']):.2f}-{1 / min(c.seconds['TF']):.2f}, TFLite "
        f"{1 / max(c.seconds['TFLite']):.2f}-{1 / min(c.seconds['TFLite']):.2f}" for c in cases))
    return below


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/conv_speed.py", description=__doc__.splitlines()[0],
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"MobileNetV2@{FLAGSHIP_SIZE} and {', '.join(QUICK)} only, 3 rounds of ~1 s blocks")
    p.add_argument("--models", help="comma-separated zoo entries instead of the zoo's conv models")
    p.add_argument("--no-flagship", action="store_true", help=f"leave out {FLAGSHIP}@{FLAGSHIP_SIZE}")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per model (5)")
    p.add_argument("--block-seconds", type=float, default=2.0, help="length of one block of steps (2.0 s)")
    p.add_argument("--stat", choices=("median", "best"), default="median", help="block reported (median)")
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads (1, LiteRT's default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.quick:
        args.rounds, args.block_seconds = min(args.rounds, 3), min(args.block_seconds, 1.0)
    names = args.models.split(",") if args.models else list(QUICK if args.quick else ZOO_CONV)
    plan = [] if args.no_flagship else [(FLAGSHIP, FLAGSHIP_SIZE, FLAGSHIP_TARGET)]
    plan += [(n, None, ZOO_TARGET) for n in names if n]
    start = time.perf_counter()
    roofline = sgemm_gflops()
    print(f"conv_speed: {len(plan)} model(s), {args.rounds} interleaved rounds of ~{args.block_seconds:g} s blocks "
          f"per engine, {args.stat} block; TFLite {args.threads} thread(s); roofline: numpy sgemm 512^3 "
          f"{roofline:.1f} GFLOP/s", flush=True)
    cases = []
    for name, size, target in plan:
        t0 = time.perf_counter()
        try:
            case = Case(name, size, target, args)
        except Exception as exc:  # one model that fails to build must not lose the others' figures
            print(f"  {name}: not measured, build failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                  flush=True)
            continue
        case.measure(args.rounds)
        case.close()
        cases.append(case)
        print(f"  {case.label}: built in {case.built.build_s:.0f} s, measured in "
              f"{time.perf_counter() - t0 - case.built.build_s:.0f} s", flush=True)
    roofline = max(roofline, sgemm_gflops())
    below = report(cases, args.stat, roofline)
    print(f"\nroofline {roofline:.1f} GFLOP/s (best of the two sgemm measurements); total "
          f"{time.perf_counter() - start:.0f} s; {os.cpu_count()} CPU(s); load average "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"{len(cases) - below} of {len(cases)} at target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
