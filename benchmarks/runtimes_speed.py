"""Every LiteRT runtime on the demo's 300 steps: steps/s, differences to the Interpreter in ulps, arm64's minute.

Builds the demo model (784-128-10, SGD lr 0.05, batch 32, digits 28x28), then trains the same 300 batches from the
same initial weights on each runtime that can run here (interpreter, compiled, worker, arm64, wasm), one after the
other, and prints per runtime: steps/s as the caller sees them (a worker's pipe included), steps/s inside the
runtime where its worker reports it, the worker's CPU time, start-up time, and the largest loss and weight
differences to the Interpreter in ulps (of the loss; of each variable's largest magnitude). arm64 is emulated
(qemu-user): its figures are qemu's on this x86 machine, not a phone's. Target (issue 13): the demo's 300 steps on
arm64 within a minute, printed PASS / BELOW TARGET. The machine is shared: the load average is printed with the table.

    python benchmarks/runtimes_speed.py [--steps 300] [--runtimes all]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ARM64_TARGET_S = 60.0


def _ulps(diff: float, scale: float) -> float:
    """``diff`` in units of the float32 spacing at ``scale`` (a value's own ulp, or a tensor's largest |value|'s)."""
    return diff / float(np.spacing(np.float32(max(scale, np.finfo(np.float32).tiny))))


def _run(name: str, tflite: bytes, xs: np.ndarray, ys: np.ndarray) -> dict:
    from litetrain.runtime.registry import runner_class

    started = time.perf_counter()
    with runner_class(name)(tflite, name=name) as runner:
        ready = time.perf_counter()
        losses = np.array([runner.train_step(x, y) for x, y in zip(xs, ys, strict=True)])
        trained = time.perf_counter()
        weights = runner.get_weights()
        stats = getattr(runner, "stats", lambda: None)()  # a worker's own account: time inside its runtime, CPU
    inside = stats.calls.get("train") if stats else None
    return {"losses": losses, "weights": weights, "start_s": ready - started, "train_s": trained - ready,
            "sps": len(xs) / runner.train_seconds, "inside_sps": inside["count"] / inside["seconds"] if inside else None,
            "cpu_s": stats.cpu_s if stats else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runtimes", default="all", help="comma-separated, or all (every one that runs here)")
    args = parser.parse_args()
    import keras

    import litetrain
    from litetrain.api import DEMO_DATA, DEMO_OPTIMIZER
    from litetrain.comparison.runtimes import parse_runtimes
    from litetrain.config import LossConfig
    from litetrain.data.dataset import load_dataset
    from litetrain.models import tutorial_2021

    names = parse_runtimes(args.runtimes)
    keras.utils.set_random_seed(0)
    built = litetrain.build(tutorial_2021, loss=LossConfig.parse("categorical_crossentropy", from_logits=True),
                            optimizer=DEMO_OPTIMIZER, batch_size=32)
    data = load_dataset(DEMO_DATA)
    rows = np.random.default_rng(0).integers(0, len(data.x), (args.steps, 32))
    xs = data.x[rows].astype(np.float32)
    ys = np.eye(10, dtype=np.float32)[data.y.astype(int)][rows]
    results = {name: _run(name, built.tflite, xs, ys) for name in names}
    ref = results["interpreter"]
    print(f"demo model, {args.steps} steps of batch 32, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (shared machine)")
    print(f"  {'runtime':<12} {'steps/s':>8} {'inside':>8} {'train s':>8} {'start s':>8} {'cpu s':>7} "
          f"{'loss ulps':>9} {'weight ulps':>11}")
    for name, r in results.items():
        dl = np.abs(r["losses"] - ref["losses"])
        loss_ulps = max(_ulps(float(d), abs(float(v))) for d, v in zip(dl, ref["losses"], strict=True))
        weight_ulps = max(_ulps(float(np.max(np.abs(r["weights"][k].astype(np.float64) - w))), float(np.max(np.abs(w))))
                          for k, w in ref["weights"].items() if w.dtype.kind == "f")
        inside = "-" if r["inside_sps"] is None else f"{r['inside_sps']:.0f}"
        cpu = "-" if r["cpu_s"] is None else f"{r['cpu_s']:.1f}"
        mark = " (emulated)" if name == "arm64" else ""
        print(f"  {name:<12} {r['sps']:>8.1f} {inside:>8} {r['train_s']:>8.2f} {r['start_s']:>8.2f} {cpu:>7} "
              f"{loss_ulps:>9.1f} {weight_ulps:>11.1f}{mark}")
    if "arm64" in results:
        arm = results["arm64"]
        total = arm["start_s"] + arm["train_s"]
        verdict = "PASS" if total <= ARM64_TARGET_S else "BELOW TARGET"
        print(f"arm64: {args.steps} steps in {total:.1f} s with its start-up (target {ARM64_TARGET_S:.0f} s): {verdict}; "
              f"its worker's CPU time {arm['cpu_s']:.1f} s (start-up included) is what an idle core would take")
    return 0


if __name__ == "__main__":
    sys.exit(main())
