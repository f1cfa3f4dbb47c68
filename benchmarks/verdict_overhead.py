"""Wall time of ``litetrain demo`` with the full verdict (float64 twin + noise floor) vs the plain twin run.

Target (issues 3 and 15): the full verdict under 2x the plain twin run's wall time. Runs are interleaved, each in a
fresh process (TensorFlow import included, as users run it); the ratio of medians is printed.

    python benchmarks/verdict_overhead.py [--rounds 3] [--steps 300]
    python benchmarks/verdict_overhead.py --zoo mobilenet_v2-finetune --rounds 1 --steps 300

``--zoo NAME`` runs ``litetrain.check`` on that entry of the model zoo (tests/zoo.py) instead of the demo, with the
entry's data, batch size and trainable part; ``--steps`` replaces the entry's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = {
    "plain twin run": ["--no-noise-floor", "--no-float64"],
    "float64 twin only": ["--no-noise-floor"],
    "full verdict (float64 + noise floor)": [],
}


ZOO_CHECK = """
import json, sys
sys.path.insert(0, {root!r})
import litetrain
from tests import zoo
entry = {{z.name: z for z in zoo.ZOO}}[{name!r}]
kwargs = {{**entry.check_kwargs(), "steps": {steps}, "noise_floor": {floor}, "float64": {f64}}}
with open({out!r}, "w", encoding="utf-8") as f:
    json.dump(litetrain.check(**kwargs).to_json(), f)
"""


def _command(extra: list[str], steps: int, zoo: str | None, out: str) -> list[str]:
    if zoo is None:
        return [sys.executable, "-m", "litetrain.cli.app", "demo", "-q", "--steps", str(steps), "--json", out, *extra]
    code = ZOO_CHECK.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name=zoo, steps=steps,
                            floor="--no-noise-floor" not in extra, f64="--no-float64" not in extra, out=out)
    return [sys.executable, "-c", code]


def run(extra: list[str], steps: int, zoo: str | None = None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = _command(extra, steps, zoo, out)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t
        with open(out, encoding="utf-8") as f:
            return wall, json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--zoo", metavar="NAME", help="a zoo entry (tests/zoo.py) through litetrain.check")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {k: [] for k in VARIANTS}
    last: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, extra in VARIANTS.items():
            wall, report = run(extra, args.steps, args.zoo)
            walls[name].append(wall)
            last[name] = report
    base = statistics.median(walls["plain twin run"])
    print(f"verdict_overhead: {'litetrain demo' if args.zoo is None else 'check of ' + args.zoo}, {args.steps} steps, {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPU(s)\n")
    print(f"{'variant':<40}{'median s':>10}{'min s':>8}{'ratio':>8}  verdict")
    for name in VARIANTS:
        med = statistics.median(walls[name])
        print(f"{name:<40}{med:>10.2f}{min(walls[name]):>8.2f}{med / base:>8.2f}  {last[name]['verdict']}")
    full = last["full verdict (float64 + noise floor)"]
    t = full["timings_s"]
    print("\nfull verdict, where the extra time goes (last round, seconds):")
    for key in ("twin_training_s", "float64_s", "noise_floor_s"):
        print(f"  {key:<18}{t.get(key, 0):>8.2f}")
    for p in full["noise_floor"]["perturbations"]:
        print(f"    {p['name']:<30}{p['seconds']:>8.2f}")
    for p in full["noise_floor"].get("skipped", []):
        print(f"    {p['name']:<30}{'skipped':>8}  {p['reason']}")
    ratio = statistics.median(walls["full verdict (float64 + noise floor)"]) / base
    print(f"\nfull/plain = {ratio:.2f}  target < 2.0: {'PASS' if ratio < 2.0 else 'BELOW TARGET'}")
    print("One conversion serves every TFLite run (default kernels, reference kernels, no delegate, 1 thread).")


if __name__ == "__main__":
    main()
