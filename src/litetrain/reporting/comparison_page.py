"""The report of a twin comparison (``check``, ``compare``, ``demo``): does TFLite train like TensorFlow?"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any

from litetrain.reporting import plots
from litetrain.reporting.page import (
    Cell,
    Figure,
    Page,
    Section,
    Source,
    Table,
    census_section,
    environment_section,
    settings_table,
    timings_table,
)

QUESTION = "Does TFLite train like TensorFlow?"

# verdict -> (the answer to the question, tone of the header)
ANSWERS = {
    "consistent": ("Yes", "good"),
    "consistent-sensitive": ("Yes, within the noise floor", "good"),
    "drift": ("Nearly", "warn"),
    "inconsistent": ("No", "bad"),
    "unhealthy": ("Cannot tell, training is broken", "bad"),
}


def runner_names(src: Source) -> tuple[str, str]:
    """(reference, candidate) runner names as the result names them (``tensorflow``, ``tflite``)."""
    names = list(src.mapping("train", "loss"))
    return (names[0] if names else "tensorflow", names[1] if len(names) > 1 else "tflite")


def comparison_page(result: dict[str, Any]) -> Page:
    src = Source(result)
    ref, cand = runner_names(src)
    verdict = str(src.get("verdict", default=""))
    answer, tone = ANSWERS.get(verdict, ("", "info"))
    kind = str(src.get("kind", default="check"))
    page = Page(
        title=f"litetrain {kind}: {verdict or 'result'}",
        question=QUESTION,
        badge=src.cell("verdict", fmt="text"),
        tone=tone,
        answer=[f"{answer}: " if answer else "", src.cell("cause", fmt="text"), "."],
        explanation=[src.cell("explanation", fmt="text")] if src.has("explanation") else [],
        subtitle=_subtitle(src),
    )
    page.highlights = _highlights(src, ref, cand)
    for section in (_training(src, ref, cand), _inference(src, ref, cand), _per_layer(src),
                    _floor(src), _float64(src, ref, cand), _repeats(src), _runtimes(src, ref), _checks(src),
                    census_section(src), environment_section(src), _settings(src)):
        if section is not None:
            page.sections.append(section)
    return page


def _subtitle(src: Source) -> str:
    parts = [str(src.get("model", "source", default="") or src.get("model", "candidate", default="") or "")]
    data = src.get("data", "name") or src.get("settings", "data")
    if data:
        parts.append(f"data {data}")
    return " · ".join(p for p in parts if p)


def _classification(src: Source) -> bool:
    """Whether an accuracy was measured: argmax agreement means nothing for a regression."""
    return any(v is not None for v in src.mapping("inference", "after", "accuracy").values())


def _highlights(src: Source, ref: str, cand: str) -> list[tuple[str, Cell]]:
    out = [
        ("steps", src.cell("train", "steps", fmt="int")),
        ("largest loss difference", src.cell("train", "max_abs_loss_diff")),
        ("largest weight difference", src.cell("train", "max_abs_weight_diff")),
    ]
    if _classification(src):
        out += [
            ("argmax agreement after training", src.cell("inference", "after", "argmax_agreement", fmt="pct")),
            (f"test accuracy, {ref}", src.cell("inference", "after", "accuracy", ref, fmt="pct")),
            (f"test accuracy, {cand}", src.cell("inference", "after", "accuracy", cand, fmt="pct")),
        ]
    if src.has("divergence", "weight_max_ratio"):
        out.append(("weights vs noise floor", src.cell("divergence", "weight_max_ratio", fmt="ratio")))
    return [(label, c) for label, c in out if c.key is not None]


def _training(src: Source, ref: str, cand: str) -> Section | None:
    losses = src.mapping("train", "loss")
    if not losses:
        return None
    section = Section("training", "Training, step by step")
    series = dict(losses)
    styles: dict[str, dict[str, Any]] = {}
    if src.sequence("float64", "loss"):
        series["float64"] = src.sequence("float64", "loss")
        styles["float64"] = {"linestyle": "--", "linewidth": 1.0}
    styles[cand] = {"linestyle": (0, (4, 2)), "linewidth": 1.6}
    section.figures.append(Figure(
        "fig-loss", "Loss per step of every twin",
        plots.lines("fig-loss", series, ylabel="loss (before each update)", styles=styles),
        ["The twins see identical batches in identical order; the curves lie on top of each other when TFLite "
         "trains like TensorFlow. Largest per-step difference ", src.cell("train", "max_abs_loss_diff"), "."],
    ))
    a = [_num(v) for v in losses.get(ref, [])]
    b = [_num(v) for v in losses.get(cand, [])]
    diffs = {f"|{cand} - {ref}|": [abs(x - y) for x, y in zip(a, b, strict=False)]}
    f64 = [_num(v) for v in src.sequence("float64", "loss")]
    if f64:
        diffs[f"|{ref} - float64|"] = [abs(x - y) for x, y in zip(a, f64, strict=False)]
    floor = src.sequence("divergence", "loss_floor")
    factor = src.number("divergence", "floor_factor")
    caption: list[str | Cell] = []
    if floor:
        caption = ["Shaded: the float32 noise floor at each step (the largest difference any no-op perturbation "
                   "produced); dashed: the limit, ", src.cell("divergence", "floor_factor", fmt="ratio"),
                   " the floor. Largest difference / floor: ", src.cell("divergence", "loss_diff_max_ratio",
                                                                       fmt="ratio"), "."]
    elif src.has("settings", "tolerances", "atol"):
        atol, rtol = src.number("settings", "tolerances", "atol") or 0.0, src.number("settings", "tolerances",
                                                                                     "rtol") or 0.0
        floor = [atol + rtol * abs(x) for x in a]
        factor = None
        caption = ["No noise floor was measured; shaded: the fixed tolerance atol ",
                   src.cell("settings", "tolerances", "atol"), " + rtol ", src.cell("settings", "tolerances", "rtol"),
                   " x |loss|."]
    caption.append(" Steps where the losses are bit-identical have no point on the log scale.")
    section.figures.append(Figure(
        "fig-loss-diff", "Loss difference against the noise floor",
        plots.difference_vs_floor("fig-loss-diff", diffs, floor or None, factor=factor,
                                  floor_label="noise floor" if src.has("divergence", "loss_floor") else "tolerance"),
        caption,
    ))
    steps = src.sequence("divergence", "steps")
    if steps:
        growth_caption: list[str | Cell] = [
            "Largest difference over all float variables at log-spaced steps, with exponential fits. Growth: ",
            src.cell("divergence", "growth", "rate_per_step"), " per step (floor ",
            src.cell("divergence", "floor_growth", "rate_per_step"), "); equal growth means chaotic amplification "
            "of rounding, not a defect. Largest distance / floor: ", src.cell("divergence", "weight_max_ratio",
                                                                             fmt="ratio"), "."]
        if src.get("divergence", "first_step_beyond_floor") is not None:
            growth_caption += [" First step beyond the floor: ",
                               src.cell("divergence", "first_step_beyond_floor", fmt="int"), "."]
        if src.get("divergence", "comparable_until") is not None:
            growth_caption += [" Single trajectories stop being comparable after step ",
                               src.cell("divergence", "comparable_until", fmt="int"), "."]
        section.figures.append(Figure(
            "fig-weights", "Weight distance between the twins over steps",
            plots.growth("fig-weights", steps, src.sequence("divergence", "distance"),
                         src.sequence("divergence", "floor"), fit=src.mapping("divergence", "growth"),
                         floor_fit=src.mapping("divergence", "floor_growth"), factor=factor),
            growth_caption,
        ))
    elif src.mapping("train", "weights"):
        recorded = src.mapping("train", "weights")
        xs = [int(s) for s in recorded]
        worst = [max((_num(v.get("max_abs")) for v in recorded[s].values()), default=math.nan) for s in recorded]
        section.figures.append(Figure(
            "fig-weights", "Weight distance between the twins over steps",
            plots.growth("fig-weights", xs, worst, None),
            ["Largest difference over all variables at the recorded steps (no noise floor was measured)."],
        ))
    section.tables += _summary_tables(src, ref, cand)
    return section


def _summary_tables(src: Source, ref: str, cand: str) -> list[Table]:
    steps = int(src.number("train", "steps") or 0)
    rows: list[list[str | Cell]] = []
    for s in sorted({1, 10, 100, steps} & set(range(1, steps + 1))):
        rows.append([f"loss at step {s}", src.cell("train", "loss", ref, s - 1),
                     src.cell("train", "loss", cand, s - 1)])
    rows.append(["test accuracy before training", src.cell("inference", "before", "accuracy", ref, fmt="pct"),
                 src.cell("inference", "before", "accuracy", cand, fmt="pct")])
    rows.append(["test accuracy after training", src.cell("inference", "after", "accuracy", ref, fmt="pct"),
                 src.cell("inference", "after", "accuracy", cand, fmt="pct")])
    rows.append(["train steps per second", src.cell("train", "steps_per_second", ref, fmt="rate"),
                 src.cell("train", "steps_per_second", cand, fmt="rate")])
    both: list[tuple[str, Cell]] = [
        ("largest loss difference", src.cell("train", "max_abs_loss_diff")),
        ("largest relative loss difference", src.cell("train", "max_rel_loss_diff")),
        ("largest weight difference", src.cell("train", "max_abs_weight_diff")),
        ("largest relative weight difference", src.cell("train", "max_rel_weight_diff")),
        ("initial weights", src.cell("initial_weights", "detail", fmt="text")),
        ("checkpoint round trip exact", src.cell("checkpoint", "roundtrip_exact", fmt="bool")),
    ]
    return [Table("summary-table", ["", ref, cand], rows, title="Each twin"),
            Table("differences-table", ["between the twins", ""], [[label, c] for label, c in both
                                                                   if c.key is not None], title="Differences")]


def _inference(src: Source, ref: str, cand: str) -> Section | None:
    if not src.mapping("inference", "after"):
        return None
    section = Section("inference", "Inference on the held-out data")
    hists = {when: src.mapping("inference", when, "error_histogram") for when in ("after", "before")}
    hists = {f"{when} training": h for when, h in hists.items() if h}
    if hists:
        section.figures.append(Figure(
            "fig-inference-hist", "Inference error histogram",
            plots.histogram("fig-inference-hist", hists, xlabel=f"|{cand} - {ref}| per output element"),
            ["Every output element on the held-out data; bit-identical elements after training: ",
             src.cell("inference", "after", "error_histogram", "exact", fmt="int"), " of ",
             src.cell("inference", "after", "error_histogram", "elements", fmt="int"), "."],
        ))
    rows: list[list[str | Cell]] = []
    for label, key, fmt in (("samples", "samples", "int"), ("largest output difference", "max_abs_error", "num"),
                            ("largest relative output difference", "max_rel_error", "num"),
                            ("mean output difference", "mean_abs_error", "num"),
                            ("argmax agreement", "argmax_agreement", "pct"),
                            ("within tolerance", "within_tolerance", "bool")):
        if key == "argmax_agreement" and not _classification(src):
            continue
        rows.append([label, src.cell("inference", "before", key, fmt=fmt), src.cell("inference", "after", key,
                                                                                     fmt=fmt)])
    section.tables.append(Table("inference-table", ["", "before training", "after training"], rows))
    return section


def _per_layer(src: Source) -> Section | None:
    """Per-variable weight differences at the last recorded step, and where the twins part if they do."""
    figures: list[Figure] = []
    recorded = src.mapping("train", "weights")
    layer_of = {v.get("name"): v.get("path", "").split("/")[-2] if "/" in v.get("path", "") else ""
                for v in src.sequence("model", "variables") if isinstance(v, dict) and v.get("role") == "weight"}
    if recorded:
        last = max(recorded, key=lambda s: int(s))
        values = {_label(name, layer_of): d.get("max_rel") for name, d in recorded[last].items()
                  if isinstance(d, dict) and _num(d.get("max_rel")) > 0}
        if values:
            figures.append(Figure(
                "fig-layers", "Per-variable weight difference after training",
                plots.bars("fig-layers", values, xlabel="largest |difference| / variable's largest |value|"),
                [f"At step {last}, relative to each variable's scale; variables that are bit-identical are not shown."],
            ))
    location = src.mapping("location")
    per_var = location.get("per_variable") if location else None
    if per_var:
        worst = _label(location.get("variable") or "", layer_of)
        figures.append(Figure(
            "fig-location", "Where the twins part: single-step update difference per variable",
            plots.bars("fig-location", {_label(k, layer_of): v for k, v in per_var.items()},
                       xlabel="relative difference of the update", highlight=worst, reference=1e-2,
                       reference_label="1%: different dynamics"),
            ["From identical weights, step ", src.cell("location", "step", fmt="int"),
             ": both twins re-synchronized before each step and their updates compared variable by variable. "
             "Worst: ", src.cell("location", "variable", fmt="text"), " (layer ", src.cell("location", "layer",
                                                                                         fmt="text"), ")."],
        ))
    forward = location.get("forward") if location else None
    if isinstance(forward, dict) and forward.get("per_layer"):
        figures.append(Figure(
            "fig-forward", "Where the forward pass parts: per-layer output difference",
            plots.bars("fig-forward", forward["per_layer"], xlabel="smallest |difference| to a TFLite tensor",
                       highlight=forward.get("layer")),
            ["Each Keras layer's output matched against the TFLite intermediate tensors of the same shape. First "
             "layer that differs: ", src.cell("location", "forward", "layer", fmt="text"), "."],
        ))
    if not figures:
        return None
    return Section("layers", "Per layer", figures=figures)


def _label(name: str, layer_of: dict[Any, str]) -> str:
    layer = layer_of.get(name)
    return f"{name} ({layer})" if layer and layer not in name else name


def _floor(src: Source) -> Section | None:
    runs = src.sequence("noise_floor", "perturbations")
    if not runs:
        return None
    rows: list[list[str | Cell]] = [
        [src.cell("noise_floor", "perturbations", i, "name", fmt="text"),
         src.cell("noise_floor", "perturbations", i, "description", fmt="text"),
         src.cell("noise_floor", "perturbations", i, "max_loss_diff"),
         src.cell("noise_floor", "perturbations", i, "weight_distance_last"),
         src.cell("noise_floor", "perturbations", i, "output_diff_after")] for i in range(len(runs))]
    tables = [Table("floor-table", ["perturbation", "what changes", "loss", "weights (last)", "outputs"], rows,
                    title="No-op perturbations and how far each moved its own twin")]
    skipped = src.sequence("noise_floor", "skipped")
    if skipped:
        tables.append(Table("floor-skipped-table", ["skipped", "why"], [
            [src.cell("noise_floor", "skipped", i, "name", fmt="text"),
             src.cell("noise_floor", "skipped", i, "reason", fmt="text")] for i in range(len(skipped))],
            numeric=False))
    return Section("noise-floor", "The float32 noise floor", intro=[
        "The same training re-run with changes that alter nothing mathematically. The floor is the largest "
        "difference any of them produced: loss ", src.cell("noise_floor", "loss_floor_max"), ", outputs after "
        "training ", src.cell("noise_floor", "output_floor_after"), "."], tables=tables)


def _float64(src: Source, ref: str, cand: str) -> Section | None:
    dist = src.mapping("float64", "distance")
    if not dist:
        return None
    names = list(dist)
    rows: list[list[str | Cell]] = []
    for label, key in (("largest loss difference", "max_loss_diff"), ("weights at the last step",
                                                                       "weight_distance_last"),
                       ("outputs after training", "output_diff_after")):
        rows.append([label, *[src.cell("float64", "distance", n, key) for n in names]])
    return Section("float64", "Distance to the float64 truth", intro=[
        "A third twin: the same Keras model in float64, from the same initial weights on the same batches. When "
        f"{cand} is no further from it than {ref} float32 is, their difference is rounding."],
        tables=[Table("float64-table", ["distance to float64", *names], rows)])


def _repeats(src: Source) -> Section | None:
    rep = src.mapping("repeats")
    if not rep:
        return None
    fmt = "pct" if rep.get("metric") == "accuracy" else "num"
    names = list(src.mapping("repeats", "mean"))
    rows: list[list[str | Cell]] = [[n, src.cell("repeats", "mean", n, fmt=fmt), src.cell("repeats", "std", n,
                                                                                          fmt=fmt),
                                     src.cell("repeats", "min", n, fmt=fmt), src.cell("repeats", "max", n, fmt=fmt)]
                                    for n in names]
    rows.append([f"difference ({rep.get('difference', {}).get('of', '')})",
                 src.cell("repeats", "difference", "mean", fmt=fmt), src.cell("repeats", "difference", "std",
                                                                              fmt=fmt),
                 src.cell("repeats", "difference", "ci95", 0, fmt=fmt),
                 src.cell("repeats", "difference", "ci95", 1, fmt=fmt)])
    figures = []
    values = src.mapping("repeats", "values")
    if values:
        seeds = src.sequence("repeats", "seeds")
        figures.append(Figure("fig-repeats", "Final metric per seed",
                              plots.lines("fig-repeats", values, x=seeds or None, xlabel="seed",
                                          ylabel=str(rep.get("metric", "")), markers=True),
                              ["Each repeat re-draws ", src.cell("repeats", "varies", fmt="text"), "."]))
    return Section("repeats", "Repeats over more seeds", intro=[
        "Final ", src.cell("repeats", "metric", fmt="text"), " over ", src.cell("repeats", "k", fmt="int"),
        " more seeds. Last two columns of the difference row: its 95% interval; significant: ",
        src.cell("repeats", "difference", "significant", fmt="bool"), "."],
        figures=figures, tables=[Table("repeats-table", ["", "mean", "std", "min", "max"], rows)])


def _runtimes(src: Source, ref: str) -> Section | None:
    """``--runtimes``: a row per LiteRT runtime and one curve per runtime of its loss difference to TensorFlow."""
    rows_by_name = src.mapping("runtimes")
    if not rows_by_name:
        return None
    columns = [("largest loss diff", "max_abs_loss_diff", "num"), ("largest weight diff", "max_abs_weight_diff", "num"),
               ("vs floor", "floor_ratio", "num"), ("steps/s", "steps_per_second", "num"),
               ("= interpreter", "identical_to_interpreter", "bool"), ("checkpoint exact", "checkpoint_exact", "bool"),
               ("verdict", "verdict", "text")]
    rows: list[list[str | Cell]] = [[name, *[src.cell("runtimes", name, key, fmt=fmt) for _, key, fmt in columns]]
                                    for name in rows_by_name]
    reference = [_num(v) for v in src.sequence("train", "loss", ref)]
    series = {name: [abs(_num(a) - b) for a, b in zip(row.get("loss") or [], reference, strict=False)]
              for name, row in rows_by_name.items()}
    figures = [Figure("fig-runtimes", "Loss difference to TensorFlow per step, one curve per runtime",
                      plots.lines("fig-runtimes", series, ylabel=f"|loss - {ref} loss|", logy=True),
                      ["Steps where a runtime's loss equals TensorFlow's exactly are not drawn (log scale)."])]
    return Section("runtimes", "Every LiteRT runtime", intro=[
        "Each runtime trained a fresh copy of the same model.tflite from TensorFlow's initial weights on the same "
        "batches; differences are to TensorFlow, judged against the noise floor measured above."],
        figures=figures, tables=[Table("runtimes-table", ["runtime", *[c[0] for c in columns]], rows)])


def _checks(src: Source) -> Section | None:
    checks = src.sequence("checks")
    health = src.sequence("health")
    if not checks and not health:
        return None
    tables = []
    if checks:
        tables.append(Table("checks-table", ["check", "passed", "detail"], [
            [src.cell("checks", i, "name", fmt="text"), src.cell("checks", i, "passed", fmt="bool"),
             src.cell("checks", i, "detail", fmt="text")] for i in range(len(checks))],
            title="Fixed-tolerance checks", numeric=False))
    if health:
        tables.append(Table("health-table", ["runner", "healthy", "flags"], [
            [src.cell("health", i, "runner", fmt="text"), src.cell("health", i, "healthy", fmt="bool"),
             src.cell("health", i, "details", fmt="json")] for i in range(len(health))],
            title="Trajectory health", numeric=False))
    return Section("checks", "Checks and health", tables=tables)


def _settings(src: Source) -> Section:
    tables = [settings_table(src)]
    t = timings_table(src)
    if t is not None:
        tables.append(t)
    return Section("settings", "Settings: how to reproduce this report", intro=[
        "Run this command with the versions under Environment to reproduce the result:"],
        tables=tables, code=reproduce_command(src.result))


def model_flags(s: Mapping[str, Any]) -> list[str]:
    """The loss, optimizer, --trainable and --select-tf-ops flags of a run's settings (the model options that
    check, quantize and federate share)."""
    args: list[str] = []
    loss = s.get("loss") or {}
    if isinstance(loss, Mapping) and loss.get("name"):
        args += ["--loss", str(loss["name"])]
        if loss.get("from_logits") is not None:
            args.append("--from-logits" if loss["from_logits"] else "--from-probabilities")
    opt = dict(s.get("optimizer") or {}) if isinstance(s.get("optimizer"), Mapping) else {}
    if opt.get("name"):
        args += ["--optimizer", str(opt.pop("name"))]
        flags = {"learning_rate": "--lr", "beta_1": "--beta1", "beta_2": "--beta2"}
        for key, value in opt.items():
            flag = flags.get(key, "--" + key.replace("_", "-"))
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if s.get("trainable") not in (None, "all"):
        args += ["--trainable", str(s["trainable"])]
    if s.get("select_tf_ops"):
        args.append("--select-tf-ops")
    return args


def reproduce_command(result: dict[str, Any]) -> str:
    """The ``litetrain`` command line that reproduces a comparison result, from its settings."""
    src = Source(result)
    s = src.mapping("settings")
    if isinstance(s.get("command"), str):
        return s["command"]
    kind = str(src.get("kind", default="check"))
    args: list[str] = ["litetrain", kind]
    if kind == "check":
        args.append(str(src.get("model", "source", default="MODEL")))
    elif kind == "compare":
        args += ["--reference", str(src.get("model", "reference", default="SAVED_MODEL_DIR")),
                 "--candidate", str(src.get("model", "candidate", default="MODEL.tflite"))]
    if kind == "check":
        args += model_flags(s)
    if kind in ("check", "compare"):
        if s.get("data"):
            args += ["--data", str(s["data"])]
        if s.get("batch_size") is not None:
            args += ["--batch-size", str(s["batch_size"])]
    if s.get("epochs") is not None and kind != "demo":
        args += ["--epochs", str(s["epochs"])]
    elif s.get("steps") is not None:
        args += ["--steps", str(s["steps"])]
    if s.get("seed") is not None:
        args += ["--seed", str(s["seed"])]
    tol = s.get("tolerances") or {}
    for flag, key in (("--atol", "atol"), ("--rtol", "rtol")):
        if isinstance(tol.get(key), int | float):
            args += [flag, f"{tol[key]:g}"]
    if s.get("noise_floor") is False:
        args.append("--no-noise-floor")
    if s.get("float64_reference") is False and kind != "compare":
        args.append("--no-float64")
    fail_on = src.get("fail_on")
    if isinstance(fail_on, list) and sorted(fail_on) != ["inconsistent", "unhealthy"]:
        args += ["--fail-on", ",".join(fail_on) or "none"]
    if src.get("repeats", "k") is not None:
        args += ["--repeats", str(src.get("repeats", "k"))]
    runtimes = s.get("runtimes")
    if isinstance(runtimes, list) and runtimes != ["interpreter"]:
        args += ["--runtimes", ",".join(str(r) for r in runtimes)]
    return shlex.join(args)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)
