"""Feature caching for a frozen base: ``litetrain train`` epochs on cached bottlenecks vs recomputing the base.

The model is the zoo's MobileNetV2 transfer entry (tests/zoo.py ``mobilenet_v2``: TensorFlow's transfer-learning
tutorial, ``Rescaling(1/127.5, -1)``, MobileNetV2 alpha 0.35 with weights=None and BatchNorm statistics calibrated
on the data to stand in for pretrained ones (FACTS.md, "Real models"), global pooling, Dropout 0.2, Dense), at
96x96, built with ``--trainable last:1`` (only the Dense layer trains) and Adam 1e-3. The data are the zoo's tinted
images (class = colour cast), split 80/20. The same .tflite then trains in two fresh ``litetrain train`` processes
with the same seed, one after the other:

  cached      the default: every sample's bottleneck computed once (training and held-out), the head trained and
              evaluated on them (bottleneck / train_head / infer_head)
  recompute   --no-feature-cache: train(x, y) and infer(x) every epoch, the base recomputed each time

Each epoch's time is the session's own (steps, evaluation, checkpoint). Target: the mean epoch time after the first
at least 10x shorter cached than recomputed (PASS / BELOW TARGET), with the same results within float noise: the
largest per-epoch loss difference, final-weight difference and the held-out accuracies are printed. The build's own
check of the cached path (3 steps on the .tflite) is printed too. Run with --quick for a short smoke run.

Two heads are measured: the tutorial's (``dropout``: Dropout 0.2 before the Dense layer, as the zoo builds it) and the
same without the Dropout (``plain``). The Dropout stays active in ``train`` (``model.fit`` semantics) and draws its
mask from litetrain's counter-based hash (:mod:`litetrain.trainable.randomness`) over every element of the
[batch, 1280] features at every step; a cached step cannot skip that, and it is most of the cached step's time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = 10.0


def _zoo() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import zoo

    return zoo


def _model(zoo: Any, image: int, dropout: bool) -> Any:
    """The zoo's MobileNetV2 transfer model, or the same without the Dropout before its Dense layer."""
    if dropout:
        return zoo.mobilenet_v2(False)
    keras = zoo._keras()
    base = keras.applications.MobileNetV2(input_shape=(image, image, 3), alpha=0.35, include_top=False,
                                          weights=None)
    zoo.calibrate_batchnorm(base, zoo._calibration_x(zoo._images, lambda x: x / 127.5 - 1.0))
    base.trainable = False
    inputs = keras.Input((image, image, 3))
    h = base(keras.layers.Rescaling(1.0 / 127.5, offset=-1)(inputs), training=False)
    outputs = keras.layers.Dense(len(zoo.TINTS))(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _build(image: int, samples: int, batch: int, out: Path, dropout: bool) -> tuple[Path, Path, Any]:
    """The transfer model built with last:1, its .tflite and the data as an .npz."""
    from litetrain.api import seed_everything
    from litetrain.trainable.builder import build

    zoo = _zoo()
    zoo.IMAGE = image  # the Keras application entries and their calibration data read it when called
    seed_everything(0)
    data = zoo.tinted_images(image, samples=samples)
    result = build(_model(zoo, image, dropout), trainable="last:1", batch_size=batch, data=data)
    path = out / "mobilenet_v2.tflite"
    path.write_bytes(result.tflite)
    npz = out / "data.npz"
    np.savez(npz, x=data.x, y=data.y, x_test=data.x_test, y_test=data.y_test)
    return path, npz, result


def _session(model: Path, data: Path, epochs: int, out: Path, name: str, *extra: str) -> dict[str, Any]:
    report = out / f"{name}.json"
    cmd = [sys.executable, "-m", "litetrain.cli.app", "train", str(model), "--data", str(data), "--epochs",
           str(epochs), "--checkpoint-dir", str(out / name), "--json", str(report), "-q", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result = json.loads(report.read_text())
    result["process_seconds"] = time.perf_counter() - start
    return result


def _after_first(result: dict[str, Any]) -> float:
    return float(np.mean([e["seconds"] for e in result["epochs"][1:]]))


def _weights_difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """Largest |difference| of the final float weights, and the largest |weight|."""
    from litetrain.training.checkpoint import load_checkpoint

    wa, wb = load_checkpoint(a["final_checkpoint"]).arrays, load_checkpoint(b["final_checkpoint"]).arrays
    floats = [k for k in wa if wa[k].dtype.kind == "f"]
    diff = max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) for k in floats)
    return diff, max(float(np.max(np.abs(wa[k]))) for k in floats)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64x64 images, 160 samples, 3 epochs")
    p.add_argument("--image", type=int, default=None, help="image size (default 96; --quick 64)")
    p.add_argument("--samples", type=int, default=None, help="samples before the 80/20 split (default 640)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per session (default 4; --quick 3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--head", choices=("dropout", "plain", "both"), default="both",
                   help="the tutorial's head with Dropout 0.2, the same without it, or both (default)")
    args = p.parse_args()
    image = args.image or (64 if args.quick else 96)
    samples = args.samples or (160 if args.quick else 640)
    epochs = args.epochs or (3 if args.quick else 4)
    heads = ("dropout", "plain") if args.head == "both" else (args.head,)
    summary = [_variant(head, image, samples, args.batch_size, epochs) for head in heads]
    print()
    for line in summary:
        print(line)
    return 0


def _variant(head: str, image: int, samples: int, batch: int, epochs: int) -> str:
    """Builds one head, trains it both ways, prints the details; returns the verdict line."""
    print(f"\n=== head: {head} ===")
    with tempfile.TemporaryDirectory(prefix="litetrain-feature-cache-") as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        model, data, built = _build(image, samples, batch, out, dropout=head == "dropout")
        build_s = time.perf_counter() - t0
        cached = _session(model, data, epochs, out, "cached")
        plain = _session(model, data, epochs, out, "recompute", "--no-feature-cache")
        _report(built, build_s, image, samples, batch, cached, plain)
        weight_diff, scale = _weights_difference(cached, plain)
    loss_diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(cached["epochs"], plain["epochs"], strict=True))
    ratio = _after_first(plain) / _after_first(cached)
    print(f"results: largest per-epoch loss difference {loss_diff:.3g}, final weights {weight_diff:.3g} "
          f"(largest |weight| {scale:.3g}), held-out accuracy {cached['final_accuracy']:.1%} cached vs "
          f"{plain['final_accuracy']:.1%} recomputed")
    verdict = "PASS" if ratio >= TARGET else "BELOW TARGET"
    return (f"head {head:>7}: epoch time after the first, recompute {_after_first(plain):.3f} s / cached "
            f"{_after_first(cached):.3f} s = {ratio:.1f}x (target >= {TARGET:.0f}x): {verdict}; results differ by "
            f"{max(loss_diff, weight_diff):.3g}")


def _report(built: Any, build_s: float, image: int, samples: int, batch: int, cached: dict[str, Any],
            plain: dict[str, Any]) -> None:
    b = built.bottleneck.to_json()
    print(f"MobileNetV2 alpha 0.35 {image}x{image}, --trainable last:1, batch {batch}, {samples} samples "
          f"({cached['steps_per_epoch']} steps/epoch); build {build_s:.1f} s, .tflite {len(built.tflite) / 2**20:.1f} "
          f"MiB")
    print(f"bottleneck: cut after {b['cut_layer']!r}, {b['features_shape']} per sample "
          f"({b['features_bytes_per_sample']} bytes); build's check over {b['verification']['steps']} steps: loss "
          f"{b['verification']['max_loss_difference']:.3g}, weights {b['verification']['max_weight_difference']:.3g}")
    budget = cached["budget"]
    print(f"cache: {budget['feature_cache_bytes'] / 2**20:.2f} MiB, computed in {budget['feature_cache_seconds']:.2f} "
          f"s (in epoch 1); data {budget['data_bytes'] / 2**20:.1f} MiB")
    print(f"\n{'epoch':>5} {'cached s':>9} {'recompute s':>12} {'ratio':>7} {'loss cached':>12} {'loss recompute':>15}")
    for a, r in zip(cached["epochs"], plain["epochs"], strict=True):
        print(f"{a['epoch']:>5} {a['seconds']:>9.3f} {r['seconds']:>12.3f} {r['seconds'] / a['seconds']:>6.1f}x "
              f"{a['loss']:>12.6f} {r['loss']:>15.6f}")
    print(f"train step: {cached['budget']['seconds_per_step'] * 1e3:.2f} ms cached vs "
          f"{plain['budget']['seconds_per_step'] * 1e3:.2f} ms recomputed; whole process {cached['process_seconds']:.1f} "
          f"vs {plain['process_seconds']:.1f} s; peak RSS {cached['budget']['peak_rss_bytes'] / 2**20:.0f} vs "
          f"{plain['budget']['peak_rss_bytes'] / 2**20:.0f} MiB")
    print(f"per session: evaluation {cached['budget']['eval_seconds']:.3f} s cached vs "
          f"{plain['budget']['eval_seconds']:.3f} s recomputed; a checkpoint write "
          f"{cached['budget']['checkpoint_seconds_mean'] * 1e3:.1f} ms (both)")


if __name__ == "__main__":
    sys.exit(main())
