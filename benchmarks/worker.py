"""The isolated worker against the in-process LiteRT runner and TensorFlow: train steps/s and peak RSS.

The demo model (litetrain.models.tutorial_2021: Flatten 28x28 -> Dense 128 ReLU -> Dense 10, SGD lr 0.05,
categorical cross-entropy from logits, digits resized to 28x28) is built once at --batch-size and trained on the
same batches (one plan_batches plan) three ways:

  worker      WorkerRunner: the interpreter in a child process (numpy + ai_edge_litert only), one pipe round
              trip per step (the batch goes out in .npy format, the loss comes back)
  in-process  LiteRTRunner in this process (what litetrain check/demo run)
  TF          TensorflowModuleRunner on the same TrainableModule (a tf.function train step)

Speed: in each of --rounds rounds every runner trains for --seconds on the same batches, from the same initial
weights, in an order that rotates by round (so none always follows TensorFlow's thread pool); the best round of
each is reported, with the median in brackets. Every runner's time is its own Runner.train_step timer
(Runner.train_seconds), so the worker's figure includes serialization and the pipe.

Peak RSS is each runtime's own process after --rss-steps steps: the memory map's high-water mark (VmHWM; on Linux
ru_maxrss survives exec and would report at least the parent's size at fork):
  worker      the worker process itself (WorkerRunner.stats())
  in-process  a fresh Python that imports litetrain's LiteRTRunner, loads the .tflite and trains (what
              'litetrain train' without --isolated costs: it never imports TensorFlow)
  TF          a fresh Python that imports TensorFlow, builds the TrainableModule from the factory and trains
Batches for the fresh processes are read from an .npy file, so nobody pays for scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ("worker", "in-process", "TF")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/worker.py",
        description="Isolated worker vs in-process LiteRT vs TensorFlow: train steps/s and peak RSS, as ratios.",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batch-size", type=int, default=32, help="train signature batch (default 32)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--seconds", type=float, default=1.0, help="training time per runner per round (default 1.0)")
    p.add_argument("--rss-steps", type=int, default=300, help="steps before reading peak RSS (default 300)")
    p.add_argument("--seed", type=int, default=0, help="initialization and batch order (default 0)")
    p.add_argument("--child", choices=("in-process", "TF"), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_rss() -> int:
    """This process's own peak RSS (VmHWM on Linux: ru_maxrss would include the parent's size at fork)."""
    from litetrain.runtime._worker_main import peak_rss_bytes

    return peak_rss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024))


def _configs() -> tuple[Any, Any]:
    from litetrain.config import LossConfig, Optimizer, OptimizerConfig

    return LossConfig.parse("categorical_crossentropy", from_logits=True), OptimizerConfig(Optimizer.SGD,
                                                                                          learning_rate=0.05)


def _tf_module(batch: int, seed: int) -> Any:
    """The TrainableModule that build() converts, without converting (only what TF training itself needs)."""
    from litetrain.api import seed_everything
    from litetrain.config import TrainableSpec
    from litetrain.models import tutorial_2021
    from litetrain.trainable.keras_objects import resolve_loss, resolve_optimizer
    from litetrain.trainable.loaders import load_model
    from litetrain.trainable.module import TrainableModule

    seed_everything(seed)
    loss, opt = _configs()
    loaded = load_model(tutorial_2021())
    return TrainableModule(loaded, resolve_loss(loss, loaded.model), resolve_optimizer(opt, loaded.model), batch,
                           TrainableSpec.parse(None))


def child(args: argparse.Namespace) -> None:
    """A fresh process that trains --rss-steps steps with one runtime and prints its steps/s and peak RSS."""
    import numpy as np

    folder = Path(args.dir)
    xb, yb = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    if args.child == "TF":
        from litetrain.runtime.tensorflow import TensorflowModuleRunner

        runner: Any = TensorflowModuleRunner(_tf_module(args.batch_size, args.seed))
    else:
        from litetrain.runtime.litert import LiteRTRunner

        runner = LiteRTRunner(folder / "model.tflite")
    for i in range(args.rss_steps):
        runner.train_step(xb[i % len(xb)], yb[i % len(yb)])
    modules = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps({"peak_rss_bytes": _peak_rss(), "steps_per_s": runner.train_calls / runner.train_seconds,
                      "tensorflow_imported": "tensorflow" in modules}))


def _run_child(kind: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--dir", str(folder), "--batch-size", str(args.batch_size),
           "--rss-steps", str(args.rss_steps), "--seed", str(args.seed)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks/worker.py: the {kind} child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _train_for(runner: Any, xb: Any, yb: Any, seconds: float) -> float:
    """Trains for about ``seconds`` on the batches (cycling); returns steps/s by the runner's own timer."""
    before_s, before_n = runner.train_seconds, runner.train_calls
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        for _ in range(10):
            runner.train_step(xb[i % len(xb)], yb[i % len(yb)])
            i += 1
    return (runner.train_calls - before_n) / (runner.train_seconds - before_s)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from litetrain.api import seed_everything
    from litetrain.data.batching import plan_batches
    from litetrain.data.dataset import load_dataset
    from litetrain.data.fit import fit_to_model
    from litetrain.models import tutorial_2021
    from litetrain.runtime.base import TensorInfo
    from litetrain.runtime.litert import LiteRTRunner
    from litetrain.runtime.tensorflow import TensorflowModuleRunner
    from litetrain.runtime.worker import WorkerRunner
    from litetrain.trainable.builder import build

    loss, opt = _configs()
    seed_everything(args.seed)
    built = build(tutorial_2021(), loss=loss, optimizer=opt, batch_size=args.batch_size)
    module = built.module
    runners: dict[str, Any] = {
        "worker": WorkerRunner(built.tflite),
        "in-process": LiteRTRunner(built.tflite),
        "TF": TensorflowModuleRunner(module),
    }
    initial = runners["TF"].get_weights()
    y_info = TensorInfo("y", tuple(module.y_spec.shape.as_list()), module.y_dtype)
    data = fit_to_model(load_dataset("digits:28x28"), runners["in-process"].train_inputs[0], y_info,
                        module.output_shape, module.loss_config)
    plan = plan_batches(len(data.x), args.batch_size, steps=max(args.rss_steps, 200), seed=args.seed,
                        drop_remainder=True)  # full batches: the timed steps all do the same work
    rows = np.stack(plan.indices)
    xb, yb = data.x[rows], data.y[rows]

    with tempfile.TemporaryDirectory(prefix="litetrain-bench-") as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(built.tflite)
        np.save(folder / "x.npy", xb)
        np.save(folder / "y.npy", yb)

        speed: dict[str, list[float]] = {m: [] for m in METHODS}
        for r in range(args.rounds):
            order = METHODS[r % 3:] + METHODS[: r % 3]
            for name in order:
                runners[name].set_weights(initial)
                speed[name].append(_train_for(runners[name], xb, yb, args.seconds))
        worker: WorkerRunner = runners["worker"]
        worker.set_weights(initial)
        for i in range(args.rss_steps):
            worker.train_step(xb[i % len(xb)], yb[i % len(yb)])
        stats = worker.stats()
        timing = worker.timings()["signatures"]["train"]
        rss = {"worker": stats.peak_rss_bytes}
        children = {kind: _run_child(kind, folder, args) for kind in ("in-process", "TF")}
        rss.update({k: v["peak_rss_bytes"] for k, v in children.items()})
        info = worker.info
        for runner in runners.values():
            runner.close()

    best = {m: max(v) for m, v in speed.items()}
    median = {m: statistics.median(v) for m, v in speed.items()}
    print(f"benchmarks/worker.py: demo model (tutorial_2021), digits:28x28, batch {args.batch_size}, "
          f"{args.rounds} rounds of {args.seconds:g} s per runner, seed {args.seed}")
    print(f"worker: Python {info.python}, numpy {info.numpy}, {info.interpreter} {info.interpreter_version}, "
          f"start-up {info.startup_s:.2f} s; modules without tensorflow: {'tensorflow' not in stats.modules}\n")
    print(f"{'runner':<12}{'steps/s best':>14}{'(median)':>11}{'peak RSS MiB':>15}")
    for m in METHODS:
        print(f"{m:<12}{best[m]:>14,.0f}{f'({median[m]:,.0f})':>11}{rss[m] / 2**20:>15.1f}")
    print()
    print(f"{'ratio':<26}{'steps/s':>10}{'peak RSS':>10}")
    for a, b in (("worker", "in-process"), ("worker", "TF"), ("in-process", "TF")):
        print(f"{a + ' / ' + b:<26}{best[a] / best[b]:>9.2f}x{rss[a] / rss[b]:>9.2f}x")
    inside = timing["mean_interpreter_us"]
    trip = timing["mean_round_trip_us"]
    print(f"\nworker step: {trip:.1f} us round trip, of which {inside:.1f} us inside the interpreter "
          f"({trip - inside:.1f} us serialization + pipe + the child's Python)")
    print(f"fresh processes, {args.rss_steps} steps: in-process {children['in-process']['steps_per_s']:,.0f} steps/s "
          f"(tensorflow imported: {children['in-process']['tensorflow_imported']}), TF "
          f"{children['TF']['steps_per_s']:,.0f} steps/s")


if __name__ == "__main__":
    main()
