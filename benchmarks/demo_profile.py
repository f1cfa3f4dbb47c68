"""Wall time, peak memory and a time breakdown of ``litetrain demo``.

Each run starts two fresh processes (cold Python, warm file cache), one after the other:

  plain         python -m litetrain.cli.app demo --json <tmp>/report.json
                exactly what a user runs: its wall time, CPU time and peak RSS (the child's own rusage from
                os.wait4, so nothing else this script starts is mixed in) are the headline figures.
  instrumented  the same demo through the same CLI entry point (litetrain.cli.app.main), but the process first
                times, one import at a time and in the order the demo imports them, ``import tensorflow``,
                ``import keras``, ``import ai_edge_litert.interpreter`` and litetrain's own modules, and times the
                demo's loading of the digits (resized to 28x28) by wrapping litetrain.data.dataset.load_digits.
                The demo then finds those modules imported and does the rest of its work unchanged.

The breakdown comes from the instrumented run: its imports and data load, the stages of the report's ``timings_s``
(load_s, trace_s, save_s, convert_s, verify_s, setup_s, twin_training_s split per runner with the report's steps/s,
compare_s), Python start-up plus shutdown (the process's wall time minus the time measured inside it) and the
remainder (CLI, seeding, report writing and printing). Its total is close to, but not the same process as, the
plain run's.
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
from pathlib import Path
from typing import Any

TARGET_S = 30.0

# The instrumented child: argv[1] = where to write its timings, the rest = the litetrain CLI arguments.
INSTRUMENTED = r"""
import json, os, sys, time
start = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
timings = {}
def timed(key, fn):
    t = time.perf_counter()
    fn()
    timings[key] = time.perf_counter() - t
timed("import_tensorflow", lambda: __import__("tensorflow"))
timed("import_keras", lambda: __import__("keras"))
timed("import_litert", lambda: __import__("ai_edge_litert.interpreter"))
def litetrain_modules():
    import litetrain.api, litetrain.trainable.builder, litetrain.cli.app, litetrain.comparison.session
    import litetrain.data.fit, litetrain.runtime.litert, litetrain.runtime.tensorflow
timed("import_litetrain", litetrain_modules)
import litetrain.data.dataset as dataset
original = dataset.load_digits
timings["data"] = 0.0
def load_digits(*args, **kwargs):
    t = time.perf_counter()
    try:
        return original(*args, **kwargs)
    finally:
        timings["data"] += time.perf_counter() - t
dataset.load_digits = load_digits
from litetrain.cli.app import main
t = time.perf_counter()
rc = main(sys.argv[2:])
timings["main"] = time.perf_counter() - t
timings["inside"] = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump(timings, f)
sys.stdout.flush()
sys.exit(rc)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/demo_profile.py",
        description=f"Wall time (target < {TARGET_S:g} s), peak memory and time breakdown of 'litetrain demo'.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=2,
                   help="runs, each a plain and an instrumented demo process; medians are reported (default 2)")
    p.add_argument("--steps", type=int, default=None, help="train steps passed to the demo (default: the demo's 300)")
    p.add_argument("--keep", metavar="DIR", default=None, help="keep every report.json and process output in DIR")
    return p.parse_args(argv)


def run_child(cmd: list[str], out_path: Path) -> tuple[float, Any, int]:
    """Runs ``cmd`` with stdout+stderr to ``out_path``; returns wall seconds, the child's rusage, exit status."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with out_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
    return wall, usage, proc.returncode


def maxrss_mib(usage: Any) -> float:
    return usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def run_demo(prefix: list[str], folder: Path, label: str, steps: int | None) -> dict[str, Any]:
    """One demo process: wall, CPU, peak RSS, exit status, and the report it wrote."""
    report = folder / f"{label}-report.json"
    out = folder / f"{label}-output.txt"
    cmd = [*prefix, "demo", "--json", str(report)] + ([] if steps is None else ["--steps", str(steps)])
    wall, usage, rc = run_child(cmd, out)
    text = out.read_text(errors="replace")
    if not report.is_file():
        raise SystemExit(f"demo_profile: the {label} demo wrote no report (exit {rc}):\n{text[-3000:]}")
    data = json.loads(report.read_text())
    verdict = [line for line in text.splitlines() if line.startswith("verdict:")]
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mib": maxrss_mib(usage),
        "exit": rc,
        "verdict": verdict[-1] if verdict else f"verdict: {data.get('verdict')}",
        "timings": data["timings_s"],
        "steps": data["train"]["steps"],
        "batch": data["train"]["batch_size"],
        "sps": data["train"]["steps_per_second"],
    }


def one_run(index: int, args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = work / f"run{index + 1}"
    folder.mkdir(parents=True, exist_ok=True)
    plain = run_demo([sys.executable, "-m", "litetrain.cli.app"], folder, "plain", args.steps)
    inside_path = folder / "instrumented-timings.json"
    inst = run_demo([sys.executable, "-c", INSTRUMENTED, str(inside_path)], folder, "instrumented", args.steps)
    inst["inside"] = json.loads(inside_path.read_text())
    for label, r in (("plain", plain), ("instrumented", inst)):
        print(f"  run {index + 1} {label:<12}: {r['wall']:5.1f} s wall, {r['cpu']:5.1f} s CPU, "
              f"peak RSS {r['peak_mib']:,.0f} MiB, exit {r['exit']}, {r['verdict']}", flush=True)
    return plain, inst


def breakdown(run: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(stage, seconds, how measured) rows of an instrumented run; they add up to its wall time."""
    t, inside = run["timings"], run["inside"]
    train_s = {name: run["steps"] / sps if sps else 0.0 for name, sps in run["sps"].items()}
    rows = [
        ("Python start-up and shutdown (TF teardown)", run["wall"] - inside["inside"], "process wall - time inside"),
        ("import tensorflow", inside["import_tensorflow"], "timed import"),
        ("import keras (after tensorflow)", inside["import_keras"], "timed import"),
        ("import ai_edge_litert.interpreter", inside["import_litert"], "timed import"),
        ("import litetrain modules", inside["import_litetrain"], "timed import"),
        ("load digits, resize to 28x28", inside["data"], "timed load_digits"),
        ("model load (Keras factory)", t.get("load_s", 0.0), "report load_s"),
        ("build module + trace", t.get("trace_s", 0.0), "report trace_s"),
        ("SavedModel save", t.get("save_s", 0.0), "report save_s"),
        ("conversion to .tflite", t.get("convert_s", 0.0), "report convert_s"),
        ("verification (TF vs TFLite infer)", t.get("verify_s", 0.0), "report verify_s"),
        ("setup (runners, fit data, plan)", t.get("setup_s", 0.0), "report setup_s"),
    ]
    for name, seconds in train_s.items():
        rows.append((f"twin training: {name} ({run['sps'][name]:,.0f} steps/s)", seconds, "steps / steps/s"))
    other = t.get("compare_s", 0.0) - t.get("twin_training_s", sum(train_s.values()))
    rows.append(("comparison (weights, inference, checkpoint)", other, "compare_s - twin_training_s"))
    rows.append(("remainder (CLI, seeding, report, printing)", run["wall"] - sum(r[1] for r in rows),
                 "wall - above"))
    return rows


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (of an even number, the faster middle one)."""
    return sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 1:
        print("demo_profile: --runs must be at least 1", file=sys.stderr)
        return 2
    print(f"demo_profile: {args.runs} run(s) of 'litetrain demo' "
          f"({'default steps' if args.steps is None else f'{args.steps} steps'}), each plain then instrumented; "
          f"{os.cpu_count()} CPU(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="litetrain-demo-profile-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        pairs = [one_run(i, args, work) for i in range(args.runs)]
    plains = [p for p, _ in pairs]
    insts = [i for _, i in pairs]

    run = median_run(insts)
    total = run["wall"]
    print(f"\nwhere the time goes (instrumented run {insts.index(run) + 1}, median of {len(insts)}; "
          f"{run['steps']} steps of batch {run['batch']}):")
    print(f"{'stage':<50} {'seconds':>8} {'share':>7}  measured by")
    print("-" * 94)
    for name, seconds, how in breakdown(run):
        print(f"{name:<50} {seconds:>8.2f} {100 * seconds / total:>6.1f}%  {how}")
    print("-" * 94)
    print(f"{'total (wall time of the instrumented process)':<50} {total:>8.2f} {100.0:>6.1f}%")

    inside, t = run["inside"], run["timings"]
    imports = sum(inside[k] for k in ("import_tensorflow", "import_keras", "import_litert", "import_litetrain"))
    pipeline = sum(t.get(k, 0.0) for k in ("load_s", "trace_s", "save_s", "convert_s", "verify_s"))
    walls = [r["wall"] for r in plains]
    wall = statistics.median(walls)
    print("\nsummary ('litetrain demo' as users run it, plain process):")
    print(f"  wall time      {wall:6.2f} s median of {len(walls)} (min {min(walls):.2f}, max {max(walls):.2f}) "
          f"-> {'PASS' if wall < TARGET_S else 'ABOVE TARGET'} (target < {TARGET_S:g} s)")
    print(f"  CPU time       {statistics.median(r['cpu'] for r in plains):6.2f} s user + system (median)")
    print(f"  peak memory    {max(r['peak_mib'] for r in plains):6,.0f} MiB RSS (largest run)")
    print(f"from the instrumented run ({total:.2f} s):")
    print(f"  imports        {imports:6.2f} s ({100 * imports / total:.0f}%): tensorflow, keras, ai_edge_litert, "
          "litetrain")
    print(f"  build+convert  {pipeline:6.2f} s ({100 * pipeline / total:.0f}%): load, trace, save, convert, verify")
    print(f"  twin training  {t.get('twin_training_s', 0.0):6.2f} s "
          f"({100 * t.get('twin_training_s', 0.0) / total:.0f}%): TensorFlow and TFLite, {run['steps']} steps each")
    try:
        load = "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "load average unavailable"
    print(f"\n{os.cpu_count()} CPU(s); {load} (others' work on the machine inflates wall times)")
    if args.keep:
        print(f"reports and outputs kept in {args.keep}")
    return 0 if all(r["exit"] == 0 for r in plains + insts) else 1


if __name__ == "__main__":
    sys.exit(main())
