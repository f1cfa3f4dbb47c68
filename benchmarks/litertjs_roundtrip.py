"""LiteRT.js (WebAssembly, in Node) against the Python Interpreter on the demo model: every signature, ulps, steps/s.

Needs ``litetrain runtimes install wasm`` and Node 20. Builds the demo model (784-128-10, SGD, batch 32), trains 50
batches of the digits in both runtimes from the same initial weights, saves twice, restores into a fresh model and
runs ``infer_fixed``, then prints the differences in units of float32 rounding (ulps of each tensor's scale).

    python benchmarks/litertjs_roundtrip.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

STEPS = 50


def main() -> int:
    import keras

    import litetrain
    from litetrain.api import DEMO_DATA, DEMO_OPTIMIZER
    from litetrain.config import LossConfig
    from litetrain.data.dataset import load_dataset
    from litetrain.models import tutorial_2021
    from litetrain.runtime.install import wasm_package
    from litetrain.runtime.litert import LiteRTRunner

    package = wasm_package()
    if not package.exists():
        print(f"LiteRT.js is not installed ({package}); run: litetrain runtimes install wasm", file=sys.stderr)
        return 3
    keras.utils.set_random_seed(0)
    built = litetrain.build(tutorial_2021, loss=LossConfig.parse("categorical_crossentropy", from_logits=True),
                            optimizer=DEMO_OPTIMIZER, batch_size=32)
    data = load_dataset(DEMO_DATA)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(data.x), (STEPS, 32))
    xs = data.x[rows].astype(np.float32)
    ys = np.eye(10, dtype=np.float32)[data.y.astype(int)][rows]
    xt = data.x_test[:32].astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(built.tflite)
        for name, array in (("xs", xs), ("ys", ys), ("xt", xt)):
            array.tofile(folder / f"{name}.bin")
        script = Path(__file__).with_suffix(".mjs")
        subprocess.run(["node", str(script), str(package.parents[2]), str(folder / "model.tflite"), str(folder),
                        str(folder / "out.json")], check=True, capture_output=True)
        wasm = json.loads((folder / "out.json").read_text())
    with LiteRTRunner(built.tflite) as interp:
        losses = np.array([interp.train_step(x, y) for x, y in zip(xs, ys, strict=True)])
        weights = interp.get_weights()
        outputs = interp.infer(xt)["output"]
    eps = float(np.finfo(np.float32).eps)
    dl = np.abs(np.array(wasm["losses"]) - losses)
    print(f"LiteRT.js vs Interpreter, {STEPS} SGD steps: loss within {dl.max():.3g} "
          f"({(dl / (np.abs(losses) * eps)).max():.1f} ulps), {int((dl == 0).sum())}/{STEPS} steps identical")
    for name, value in weights.items():
        got = np.array(wasm["s1"][name], np.float64)
        scale = float(np.abs(value).max()) or 1.0
        diff = float(np.abs(got - value.astype(np.float64).ravel()).max())
        print(f"  {name:<22} max diff {diff:.3g} ({diff / (scale * eps):.1f} ulps of its scale); "
              f"save twice equal: {wasm['s1'][name] == wasm['s2'][name]}; restored: {wasm['s1'][name] == wasm['s3'][name]}")
    print(f"  infer_fixed after restore: max diff {np.abs(np.array(wasm['o_fixed']) - outputs.ravel()).max():.3g}")
    print(f"  infer with a dynamic batch: {wasm['dynErr'] or 'works'}")
    print(f"  steps/s: LiteRT.js (Node, 1 thread) {wasm['sps']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
