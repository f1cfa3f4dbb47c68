"""Peak memory of ``litetrain check`` against TensorFlow training the same model alone (issue 15, item 4).

For each zoo entry (tests/zoo.py) two fresh processes run one after the other, each measured by its own rusage
(``os.wait4``: peak RSS of that process only):

  tensorflow   the entry's Keras model trained by ``model.fit`` on the entry's data, batch size and trainable part,
               for the same number of steps: what the user runs without litetrain;
  check        ``litetrain.check`` on the same entry and steps with the full verdict (float64 twin + noise floor):
               the SavedModel save, the conversion, both twins, the float64 twin and every perturbation run.

Target: check's peak RSS at most 2x TensorFlow's (PASS / BELOW TARGET per entry).

    python benchmarks/check_memory.py [--zoo mobilenet_v2-finetune resnet_small-finetune] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_profile import maxrss_mib, run_child  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 2.0

PRELUDE = """
import sys
sys.path.insert(0, {root!r})
import keras, litetrain
from tests import zoo
entry = {{z.name: z for z in zoo.ZOO}}[{name!r}]
kwargs = {{**entry.check_kwargs(), "steps": {steps}}}
"""

FIT = PRELUDE + """
from litetrain.trainable.module import _apply_trainable
from litetrain.config import TrainableSpec
keras.utils.set_random_seed(0)
model = kwargs["model"]()
_apply_trainable(model, TrainableSpec.parse(entry.trainable))
model.compile(optimizer=model.optimizer, loss=model.loss)  # the trainable part changes what compile traces
data = kwargs["data"]
n = kwargs["batch_size"] * kwargs["steps"]
repeat = -(-n // len(data.y))
import numpy as np
take = lambda a: np.concatenate([a] * repeat)[:n]
model.fit(take(data.x), take(data.y), batch_size=kwargs["batch_size"], epochs=1, shuffle=False, verbose=0)
"""

CHECK = PRELUDE + """
litetrain.check(**kwargs)
"""


def measure(name: str, steps: int, folder: Path) -> dict[str, float]:
    """Peak RSS (MiB) and wall seconds of TensorFlow alone and of the check, each in a fresh process."""
    figures: dict[str, float] = {}
    for label, template in (("tensorflow", FIT), ("check", CHECK)):
        code = template.format(root=ROOT, name=name, steps=steps)
        wall, usage, status = run_child([sys.executable, "-c", code], folder / f"{name}-{label}.log")
        if status != 0:
            raise SystemExit(f"{name}: the {label} process failed (exit {status}); see {folder / (name + '-' + label + '.log')}")
        figures[f"{label}_mib"], figures[f"{label}_s"] = maxrss_mib(usage), wall
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", nargs="+", default=["cnn-dilated-strided", "resnet_small-finetune",
                                                     "mobilenet_v2-finetune"], metavar="NAME")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--keep", metavar="DIR", help="keep each process's output in DIR")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="check_memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"check_memory: {args.steps} steps, {os.cpu_count()} CPU(s); peak RSS of each process (MiB)\n")
    print(f"{'zoo entry':<28}{'TF alone':>10}{'check':>10}{'ratio':>8}  {'TF s':>7}{'check s':>9}")
    for name in args.zoo:
        f = measure(name, args.steps, folder)
        ratio = f["check_mib"] / f["tensorflow_mib"]
        verdict = "PASS" if ratio <= TARGET else "BELOW TARGET"
        print(f"{name:<28}{f['tensorflow_mib']:>10.0f}{f['check_mib']:>10.0f}{ratio:>8.2f}  "
              f"{f['tensorflow_s']:>7.1f}{f['check_s']:>9.1f}  {verdict} (target <= {TARGET:.0f}x)")


if __name__ == "__main__":
    main()
