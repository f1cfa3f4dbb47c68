"""Runs the model zoo (tests/zoo.py) through ``litetrain.check`` and writes the README's coverage table.

Each entry runs in its own Python process (a converter or interpreter abort cannot take the others with it, and
every entry starts from a fresh TensorFlow). The raw figures go to a JSON file; the markdown table goes to stdout,
or into README.md between ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->`` with ``--write-readme``.

Usage:
    .venv/bin/python dev/zoo_table.py                      # every entry, table on stdout
    .venv/bin/python dev/zoo_table.py --only fast --write-readme --json zoo.json
    .venv/bin/python dev/zoo_table.py --entry text-lstm    # one entry in this process, its record as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"
PASSING = ("consistent", "consistent-sensitive")
RECORD_MARK = "ZOO-RECORD "


def _zoo() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import zoo

    return zoo


def _first_line(exc: BaseException) -> str:
    """The message's first line; for TensorFlow's "in user code:" tracebacks, the line that names the error."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("in user code"):
        return lines[-1]
    return lines[0]


def _where(exc: BaseException) -> str:
    """The innermost litetrain frame of the traceback (file:line function), for whoever fixes the source."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/litetrain/" in f.filename.replace("\\", "/")]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.split('/src/')[-1]}:{f.lineno} {f.name}"


def run_entry(name: str) -> dict[str, Any]:
    """Checks one zoo entry in this process and returns its record (figures, or the error that stopped it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    zoo = _zoo()
    entry = zoo.BY_NAME[name]
    record: dict[str, Any] = {"name": entry.name, "family": entry.family, "slow": entry.slow,
                              "trainable": entry.trainable, "layers": getattr(entry, "layers", None),
                              "steps": entry.steps, "batch_size": entry.batch_size}
    t0 = time.perf_counter()
    caught: list[warnings.WarningMessage] = []
    try:
        import litetrain

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            result = litetrain.check(**entry.check_kwargs())
    except Exception as exc:  # the record says what stopped the entry; the table shows it as a failure
        record.update(status="error", error_type=type(exc).__name__, error=_first_line(exc),
                      hint=str(getattr(exc, "hint", "") or ""), where=_where(exc), wall_s=time.perf_counter() - t0)
        return record
    # litetrain's own warnings (e.g. no float64 twin) point at its caller: this file or litetrain itself.
    record["warnings"] = sorted({str(w.message).splitlines()[0] for w in caught
                                 if w.filename == __file__ or "/litetrain/" in w.filename})
    data = result.to_json()
    ops = data["model"]["ops"]
    loss_diff = data["train"]["max_abs_loss_diff"]
    record.update(
        status="ok",
        wall_s=time.perf_counter() - t0,
        verdict=data["verdict"],
        explanation=data["explanation"],
        reasons=data["reasons"],
        builtin_only=bool(ops["builtin_only"] and ops["total"]["flex"] == 0 and ops["total"]["custom"] == 0),
        flex_ops=sorted(ops["flex"]),
        custom_ops=sorted(ops["custom"]),
        ops_total=ops["total"],
        max_abs_loss_diff=loss_diff,
        max_rel_loss_diff=data["train"]["max_rel_loss_diff"],
        steps_per_second=data["train"]["steps_per_second"],
        size_bytes=data["model"]["size_bytes"],
        rewritten_gradients=data["model"]["rewritten_gradients"],
        adaptations=data["model"].get("adaptations"),
        settings={k: data["settings"].get(k) for k in ("loss", "optimizer", "batch_size", "steps", "trainable")},
        timings_s=data["timings_s"],
    )
    record["passed"] = bool(record["builtin_only"] and record["verdict"] in PASSING
                            and isinstance(loss_diff, int | float) and math.isfinite(loss_diff))
    return record


def run_in_subprocess(name: str, timeout: float) -> dict[str, Any]:
    """Runs :func:`run_entry` in a fresh interpreter; a crash or timeout becomes an error record."""
    zoo = _zoo()
    entry = zoo.BY_NAME[name]
    base = {"name": name, "family": entry.family, "slow": entry.slow, "trainable": entry.trainable}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--entry", name], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {**base, "status": "error", "error_type": "Timeout", "error": f"no result within {timeout:.0f} s",
                "wall_s": time.perf_counter() - t0}
    for line in proc.stdout.splitlines():
        if line.startswith(RECORD_MARK):
            return json.loads(line[len(RECORD_MARK):])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {**base, "status": "error", "error_type": f"exit {proc.returncode}", "error": tail,
            "wall_s": time.perf_counter() - t0}


def _fmt_float(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    if not math.isfinite(value):
        return str(value)
    return "0" if value == 0 else f"{value:.1e}"


def _fmt_size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def _fmt_speed(sps: Any) -> str:
    if not isinstance(sps, dict):
        return "-"
    tfl, tf = sps.get("tflite"), sps.get("tensorflow")
    if not isinstance(tfl, int | float) or not isinstance(tf, int | float):
        return "-"
    return f"{tfl:,.0f} / {tf:,.0f}"


def markdown_table(records: list[dict[str, Any]]) -> str:
    """The README table: one row per entry, failures with the error that stopped them."""
    def trainable(r: dict[str, Any]) -> str:
        return str(r.get("trainable", "")) + (f", --layers {r['layers']}" if r.get("layers") else "")

    rows = ["| architecture | family | trainable | builtin-only | verdict | max loss diff | TFLite / TF steps/s | "
            ".tflite size |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        name = f"`{r['name']}`" + (" (slow)" if r.get("slow") else "")
        if r.get("status") != "ok":
            error = f"{r.get('error_type', 'error')}: {r.get('error', '')}".replace("|", "\\|")
            if len(error) > 140:
                error = error[:137] + "..."
            flex = r.get("error_type") == "UnsupportedModelError" and "no builtin" in r.get("error", "")
            rows.append(f"| {name} | {r['family']} | {trainable(r)} | {'no' if flex else '-'} | "
                        f"fails: {error} | - | - | - |")
            continue
        builtin = "yes" if r["builtin_only"] else "no: " + ", ".join(r["flex_ops"] + r["custom_ops"])
        rows.append(f"| {name} | {r['family']} | {trainable(r)} | {builtin} | {r['verdict']} | "
                    f"{_fmt_float(r['max_abs_loss_diff'])} | {_fmt_speed(r['steps_per_second'])} | "
                    f"{_fmt_size(r['size_bytes'])} |")
    return "\n".join(rows)


def summary_line(records: list[dict[str, Any]], env: dict[str, str]) -> str:
    passed = sum(1 for r in records if r.get("passed"))
    return (f"{passed} of {len(records)} entries pass (builtin ops only, verdict consistent or "
            f"consistent-sensitive). Generated by `dev/zoo_table.py` on {env['date']} "
            f"({env['machine']}). Steps/s come from the check's twin training: only the entry's 10-30 steps, the "
            "first call's start-up included, on a shared machine; they show the order of magnitude, not a "
            "benchmark (see benchmarks/ for those).")


def write_readme(text: str) -> None:
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {START} / {END}.")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def _environment() -> dict[str, str]:
    import platform

    return {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
            "python": platform.python_version()}


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("all", "fast", "slow"), default="all", help="which entries to run")
    parser.add_argument("--names", default=None, help="comma-separated entry names (default: per --only)")
    parser.add_argument("--entry", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=ROOT / "dev" / "zoo-results.json", help="where the raw figures go")
    parser.add_argument("--from-json", type=Path, default=None, help="render a previous run's JSON, run nothing")
    parser.add_argument("--update", action="store_true",
                        help="rerun only the chosen entries and replace their records in --json (the rest are kept)")
    parser.add_argument("--write-readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per entry")
    args = parser.parse_args(argv)

    if args.entry:
        print(RECORD_MARK + json.dumps(run_entry(args.entry), default=str), flush=True)
        return 0

    if args.from_json:
        payload = json.loads(args.from_json.read_text())
    else:
        zoo = _zoo()
        if args.names:
            names = [n.strip() for n in args.names.split(",") if n.strip()]
            unknown = [n for n in names if n not in zoo.BY_NAME]
            if unknown:
                parser.error(f"unknown zoo entries {unknown}; known: {sorted(zoo.BY_NAME)}")
        else:
            names = [m.name for m in zoo.ZOO
                     if args.only == "all" or (m.slow if args.only == "slow" else not m.slow)]
        kept: dict[str, dict[str, Any]] = {}
        if args.update and args.json.exists():
            kept = {r["name"]: r for r in json.loads(args.json.read_text())["records"]}
        records: list[dict[str, Any]] = []
        t0 = time.perf_counter()

        def merged() -> list[dict[str, Any]]:
            fresh = {r["name"]: r for r in records}
            return [fresh.get(m.name) or kept[m.name] for m in zoo.ZOO if m.name in fresh or m.name in kept]

        for name in names:
            record = run_in_subprocess(name, args.timeout)
            records.append(record)
            # Written after every entry, so a long run can be watched (and its finished entries survive a kill).
            _save(args.json, {"environment": _environment(), "total_s": time.perf_counter() - t0, "records": merged()})
            status = record.get("verdict") if record.get("status") == "ok" else f"{record['error_type']}"
            print(f"{name}: {status} ({record.get('wall_s', 0):.0f} s)", file=sys.stderr, flush=True)
        payload = {"environment": _environment(), "total_s": time.perf_counter() - t0, "records": merged()}
        _save(args.json, payload)

    text = summary_line(payload["records"], payload["environment"]) + "\n\n" + markdown_table(payload["records"])
    if args.write_readme:
        write_readme(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
