"""``FederateResult``: per-round accuracy, loss, participation, bytes and time of each runtime, and the verdict."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from litetrain._io import json_safe, save_json
from litetrain.comparison.verdict import Verdict

SCHEMA_VERSION = "1.0"


@dataclasses.dataclass(frozen=True)
class FederateResult:
    """Everything a federation measured. ``bool(result)`` is False when the verdict is one of ``fail_on``.

    Attributes:
        verdict: TFLite vs TensorFlow federation (``--runtime both``). With one runtime: None, or ``unhealthy``
            when the federation did not learn.
        rounds: One dict per round (see ``docs/report-schema.md``): participation, ``accuracy``/``loss`` by
            runtime, ``centralized_accuracy``, ``bytes``, ``seconds``, ``client_seconds`` (mean per participant),
            ``agreement`` and the round's ``verdict`` (None with one runtime).
        initial: Held-out accuracy and loss of the initial global model, by runtime.
        centralized: The reference: TensorFlow trained on the pooled shards for the same total epochs.
        noise_floor: The noise run (TFLite, a no-op perturbation) that measured the federation's float32 noise
            floor, or None (one runtime, or ``--no-noise-floor``).
        divergence: The TFLite-vs-TensorFlow distance of the global models against that floor per round, its
            growth, and the held-out accuracy per round of both runtimes and the noise run; None without a floor.
    """

    verdict: Verdict | None
    passed: bool
    explanation: str
    fail_on: tuple[str, ...]
    settings: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    initial: dict[str, dict[str, Any]]
    rounds: tuple[dict[str, Any], ...]
    centralized: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    engine: dict[str, Any]
    environment: dict[str, Any]
    timings: dict[str, float]
    noise_floor: dict[str, Any] | None = None
    divergence: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(self.settings["runtimes"])

    @property
    def final_accuracy(self) -> dict[str, float | None]:
        return dict(self.rounds[-1]["accuracy"]) if self.rounds else {}

    @property
    def centralized_accuracy(self) -> float | None:
        return self.centralized["accuracy"] if self.centralized else None

    def to_json(self) -> dict[str, Any]:
        """The versioned, machine-readable form."""
        return json_safe({
            "schema_version": SCHEMA_VERSION,
            "kind": "federate",
            "verdict": self.verdict.value if self.verdict else None,
            "passed": self.passed,
            "fail_on": list(self.fail_on),
            "explanation": self.explanation,
            "settings": self.settings,
            "model": self.model,
            "data": self.data,
            "initial": self.initial,
            "rounds": list(self.rounds),
            "final_accuracy": self.final_accuracy,
            "centralized_accuracy": self.centralized_accuracy,
            "centralized": self.centralized,
            "noise_floor": self.noise_floor,
            "divergence": self.divergence,
            "checkpoint": self.checkpoint,
            "engine": self.engine,
            "environment": self.environment,
            "timings_s": self.timings,
        })

    def save(self, path: str | Path) -> Path:
        """Writes the JSON form atomically."""
        return save_json(path, self.to_json())

    def __str__(self) -> str:
        return render_federation(self)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: Any, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt)


def render_federation(result: FederateResult) -> str:
    """A console table: one line per round."""
    s = result.settings
    runtimes = result.runtimes
    lines = [
        f"litetrain federate: {s['clients']} clients, {s['rounds']} rounds x {s['local_epochs']} local epoch(s), "
        f"batch {s['batch_size']}, {s['partition']}, fraction {s['fraction_fit']:g}, {s['strategy']}, "
        f"seed {s['seed']}",
        f"model: {result.model['size_bytes'] / 1024:.1f} KiB; travels: {result.model['exchanged_variables']} "
        f"trainable weight tensors, {result.model['exchanged_bytes']:,} bytes per client and direction; "
        f"engine: Flower {result.engine.get('flwr')} on Ray {result.engine.get('ray')} "
        f"({_num(result.engine.get('actors'), 'd')} client actors)",
        "",
    ]
    head = f"  {'round':>5}  {'clients':>9}"
    for rt in runtimes:
        head += f"  {'acc ' + rt:>15}  {'loss ' + rt:>15}"
    head += f"  {'central':>8}"
    floor = result.divergence is not None
    if len(runtimes) == 2:
        head += f"  {'|dw| max':>9}" + (f"  {'floor':>9}  {'x floor':>7}" if floor else "") + f"  {'verdict':>20}"
    head += f"  {'s/round':>8}  {'KiB':>8}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    init = result.initial
    row0 = f"  {0:>5}  {'':>9}"
    for rt in runtimes:
        row0 += f"  {_pct(init[rt].get('accuracy')):>15}  {_num(init[rt].get('loss')):>15}"
    lines.append(row0)
    for r in result.rounds:
        who = f"{r['participants']}/{r['sampled']}"
        line = f"  {r['round']:>5}  {who:>9}"
        for rt in runtimes:
            line += f"  {_pct(r['accuracy'][rt]):>15}  {_num(r['loss'][rt]):>15}"
        line += f"  {_pct(r.get('centralized_accuracy')):>8}"
        if len(runtimes) == 2:
            a = r["agreement"]
            line += f"  {a['max_abs_weight_diff']:>9.3g}"
            if floor:
                line += f"  {_num(a.get('noise_floor'), '.3g'):>9}  {_num(a.get('floor_ratio'), '.2g'):>7}"
            line += f"  {r['verdict']:>20}"
        secs = sum(r["seconds"].values())
        kib = sum(b["down"] + b["up"] for b in r["bytes"].values()) / 1024
        line += f"  {secs:>8.2f}  {kib:>8.1f}"
        lines.append(line)
    faults = [f"round {r['round']}: {len(r['failed'])} failed, {len(r['stragglers'])} past the deadline"
              + (f", {len(r['timed_out'])} timed out" if r["timed_out"] else "")
              for r in result.rounds if r["failed"] or r["stragglers"] or r["timed_out"]]
    if faults:
        lines += ["", "faults: " + "; ".join(faults)]
    if result.centralized:
        lines.append(f"centralized TensorFlow on the pooled shards ({result.centralized['epochs']} epochs): "
                     f"{_pct(result.centralized['accuracy'])}")
    if result.noise_floor:
        lines.append(f"noise floor: {result.noise_floor['description']} "
                     f"({_num(result.noise_floor.get('seconds'), '.2f')} s of the simulation)")
    if result.checkpoint and result.checkpoint.get("resumed_from_round"):
        lines.append(f"resumed after round {result.checkpoint['resumed_from_round']} from "
                     f"{result.checkpoint['directory']}")
    lines.append("")
    if result.verdict is not None:
        lines += [f"verdict: {result.verdict.value.upper()}", result.explanation]
    else:
        lines.append(result.explanation)
    return "\n".join(lines)
