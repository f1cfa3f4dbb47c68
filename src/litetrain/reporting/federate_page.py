"""The page of a federate result: loss per round for every runtime, the partition, round costs and the fleet.

Like every page builder it reads only what it finds: a missing optional section is skipped, never an error.
"""

from __future__ import annotations

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
    number_or_nan,
    tail_sections,
)


def federate_page(result: dict[str, Any]) -> Page:
    """Federated training: accuracy per round in TFLite and TensorFlow against centralized training."""
    src = Source(result)
    rounds = [r for r in src.sequence("rounds") if isinstance(r, Mapping)]
    page = _headline(src, rounds)
    section = Section("rounds", "Rounds")
    if rounds:
        xs = [r.get("round", i + 1) for i, r in enumerate(rounds)]
        runtimes = [rt for rt in ("tflite", "tensorflow")
                    if any(isinstance(r.get("accuracy"), Mapping) and r["accuracy"].get(rt) is not None
                           for r in rounds)]
        # Round 0 is the initial global model, when the result has it for every runtime plotted.
        start = bool(runtimes) and all(src.number("initial", rt, "accuracy") is not None for rt in runtimes)
        figures = (_accuracy_figure(src, rounds, xs, runtimes, start), _floor_figure(src),
                   _agreement_figure(src, rounds, xs))
        section.figures += [f for f in figures if f is not None]
        loss = _federated_loss_figure(src, rounds, start)
        if loss is not None:
            section.figures.insert(1, loss)
        section.tables.append(_rounds_table(src, rounds, runtimes, start))
        cost = _round_cost_table(src, rounds)
        if cost is not None:
            section.tables.append(cost)
    fleet = _fleet_table(src)
    if fleet is not None:
        section.tables.append(fleet)
    if section.figures or section.tables:
        page.sections.append(section)
    split = _partition_section(src)
    if split is not None:
        page.sections.append(split)
    page.sections += tail_sections(src, command=_federate_command(src))
    return page


def _headline(src: Source, rounds: list[Mapping[str, Any]]) -> Page:
    """The page with its answer: the verdict and its cause, then the last round's accuracy in each runtime."""
    verdict = src.get("verdict")
    vpath: list[Any] = ["verdict"] if isinstance(verdict, str) else ["verdict", "verdict"]
    verdict_text = src.get(*vpath) if isinstance(src.get(*vpath), str) else None
    tone = "good" if verdict_text in ("consistent", "consistent-sensitive", "pass", "passed") else "warn"
    if verdict_text in ("inconsistent", "unhealthy", "fail", "failed") or src.get("passed") is False:
        tone = "bad"
    answer: list[str | Cell] = []
    if verdict_text is not None:
        answer += ["Verdict ", src.cell(*vpath, fmt="text")]
        cause = next((p for p in (["cause"], ["verdict", "cause"], ["verdict", "reason"])
                      if isinstance(src.get(*p), str)), None)
        if cause is not None:
            answer += [": ", src.cell(*cause, fmt="text")]
        answer.append("; ")
    if rounds:
        last = len(rounds) - 1
        answer += ["after " if answer else "After ", src.cell("rounds", last, "round", fmt="int"),
                   " rounds the federated model reaches "]
        runtimes = [rt for rt in ("tflite", "tensorflow") if src.has("rounds", last, "accuracy", rt)]
        for i, rt in enumerate(runtimes):
            answer += [" and " if i else "", src.cell("rounds", last, "accuracy", rt, fmt="pct"), f" in {rt}"]
        if src.number("centralized_accuracy") is not None:
            answer += [" (centralized training: ", src.cell("centralized_accuracy", fmt="pct"), ")"]
    answer.append(".")
    page = Page(title="litetrain federate", question="Does federated training on TFLite devices work like it does "
                "in TensorFlow?", badge=src.cell(*vpath, fmt="text") if verdict_text is not None else None,
                tone=tone, answer=answer, subtitle=str(src.get("model", "source", default="") or ""))
    if src.has("explanation"):
        page.explanation = [src.cell("explanation", fmt="text")]
    return page


def _accuracy_figure(src: Source, rounds: list[Mapping[str, Any]], xs: list[Any], runtimes: list[str],
                     start: bool) -> Figure | None:
    """Held-out accuracy of the global model per round in each runtime, with centralized training for scale."""
    series: dict[str, list[Any]] = {}
    for name in runtimes:
        vals = [r["accuracy"].get(name) if isinstance(r.get("accuracy"), Mapping) else None for r in rounds]
        series[name] = [src.get("initial", name, "accuracy")] * start + vals
    styles: dict[str, dict[str, Any]] = {"tensorflow": {"linestyle": (0, (4, 2))}}
    per_round_central = [r.get("centralized_accuracy") for r in rounds]
    central = src.number("centralized_accuracy")
    if any(v is not None for v in per_round_central):
        series["centralized"] = [None] * start + per_round_central
    elif central is not None:
        series["centralized"] = [None] * start + [central] * len(rounds)
    if "centralized" in series:
        styles["centralized"] = {"linestyle": "--", "color": plots.FLOOR_COLOR}
    if not series:
        return None
    return Figure(
        "fig-federated-accuracy", "Held-out accuracy per round",
        plots.lines("fig-federated-accuracy", series, x=[0] * start + xs, xlabel="round",
                    ylabel="held-out accuracy", styles=styles, markers=True, percent_y=True),
        ["The global model after each round" + (" (round 0: the initial model)" if start else "")
         + ", evaluated in each runtime; centralized: TensorFlow trained on the pooled data for as many "
         "epochs."])


def _agreement_figure(src: Source, rounds: list[Mapping[str, Any]], xs: list[Any]) -> Figure | None:
    """How far apart the TFLite and TensorFlow global models are after each round, against atol."""
    diffs = [(r.get("agreement") or {}).get("max_abs_weight_diff") if isinstance(r.get("agreement"), Mapping)
             else None for r in rounds]
    if not any(number_or_nan(d) > 0 for d in diffs):
        return None
    agreement: dict[str, list[Any]] = {"largest |weight difference|": diffs}
    agreement_styles: dict[str, dict[str, Any]] = {"largest |weight difference|": {}}
    caption: list[str | Cell] = ["The same federation run in both runtimes: how far apart their global "
                                 "models are after each round"]
    if number_or_nan(src.get("settings", "atol")) > 0:
        # The verdict allows atol + rtol * |weight|: atol is the least it allows.
        agreement["tolerance (atol)"] = [src.get("settings", "atol")] * len(rounds)
        agreement_styles["tolerance (atol)"] = {"color": plots.LIMIT_COLOR, "linestyle": "--", "marker": ""}
        caption += ["; dashed: the absolute tolerance, atol ", src.cell("settings", "atol"),
                    " (the verdict allows atol + rtol × |weight|, rtol ", src.cell("settings", "rtol"), ")"]
    caption.append(".")
    return Figure(
        "fig-federated-agreement", "TFLite vs TensorFlow global model per round",
        plots.lines("fig-federated-agreement", agreement, x=xs, xlabel="round",
                    ylabel="|TFLite - TensorFlow|", logy=True, markers=True, styles=agreement_styles),
        caption)


def _floor_figure(src: Source) -> Figure | None:
    """The TFLite-vs-TensorFlow distance of the global models per round over the federation's noise-floor band,
    as check's page draws a training's (the verdict's basis when a noise floor was measured)."""
    rounds = src.sequence("divergence", "steps")
    floor = src.sequence("divergence", "floor")
    if not rounds or not floor:
        return None
    caption: list[str | Cell] = [
        "Largest weight difference between the TFLite and TensorFlow global models after each round. Shaded: the "
        "float32 noise floor, how far the same federation re-run with a no-op perturbation (", src.cell(
            "noise_floor", "description", fmt="text"), ") drifts from the TFLite one; dashed: the limit, ",
        src.cell("divergence", "floor_factor", fmt="ratio"), " the floor. Largest distance / floor: ",
        src.cell("divergence", "weight_max_ratio", fmt="ratio"), "; growth per round ",
        src.cell("divergence", "growth", "rate_per_step"), " (floor ",
        src.cell("divergence", "floor_growth", "rate_per_step"), ")."]
    if src.get("divergence", "comparable_until") is not None:
        caption += [" Single federations stop being comparable after round ",
                    src.cell("divergence", "comparable_until", fmt="int"),
                    ": the held-out accuracy per round is what compares."]
    return Figure(
        "fig-federated-floor", "TFLite vs TensorFlow global model against the noise floor",
        plots.difference_vs_floor("fig-federated-floor", {"|TFLite - TensorFlow|": src.sequence("divergence",
                                                                                                 "distance")},
                                  floor, factor=src.number("divergence", "floor_factor"), x=list(rounds),
                                  xlabel="round", ylabel="largest |weight difference|"),
        caption)


def _federated_loss_figure(src: Source, rounds: list[Mapping[str, Any]], start: bool) -> Figure | None:
    """Held-out loss of the global model per round in each runtime (round 0: the initial model), with the mean
    local training loss of the participants and centralized training's loss."""
    series: dict[str, list[Any]] = {}
    styles: dict[str, dict[str, Any]] = {}
    runtimes = [rt for rt in ("tflite", "tensorflow") if any(
        isinstance(r.get("loss"), Mapping) and r["loss"].get(rt) is not None for r in rounds)]
    with_start = start and all(src.number("initial", rt, "loss") is not None for rt in runtimes)
    for rt in runtimes:
        series[f"held-out, {rt}"] = [src.get("initial", rt, "loss")] * with_start + [
            r["loss"].get(rt) if isinstance(r.get("loss"), Mapping) else None for r in rounds]
        styles[f"held-out, {rt}"] = {"color": plots.color_of(rt)} | (
            {"linestyle": (0, (4, 2))} if rt == "tensorflow" else {})
    for rt in runtimes:
        train = [r["train_loss"].get(rt) if isinstance(r.get("train_loss"), Mapping) else None for r in rounds]
        if any(v is not None for v in train):
            series[f"local training, {rt}"] = [None] * with_start + train
            styles[f"local training, {rt}"] = {"color": plots.color_of(rt), "alpha": 0.55, "marker": "s",
                                               "linestyle": ":" if rt == "tflite" else (0, (1, 3))}
    central = src.sequence("centralized", "loss_by_round")
    if len(central) == len(rounds) and any(v is not None for v in central):
        series["centralized, held-out"] = [None] * with_start + central
        styles["centralized, held-out"] = {"linestyle": "--", "color": plots.FLOOR_COLOR}
    if not runtimes:
        return None
    xs = [0] * with_start + [r.get("round", i + 1) for i, r in enumerate(rounds)]
    return Figure("fig-federated-loss", "Loss per round",
                  plots.lines("fig-federated-loss", series, x=xs, xlabel="round", ylabel="loss", styles=styles,
                              markers=True),
                  ["Held-out: the global model after each round" + (" (round 0: the initial model)" if with_start
                                                                    else "")
                   + "; local training: the mean training loss of the round's participants, on their own data."
                   + (" Centralized: TensorFlow trained on the pooled data." if "centralized, held-out" in series
                      else "")])


def _partition_section(src: Source) -> Section | None:
    """How the training data was split between the clients: samples per class per client."""
    counts = src.sequence("data", "partition", "class_counts")
    counts = [row for row in counts if isinstance(row, list)]
    sizes = src.sequence("data", "partition", "sizes")
    if not counts and not sizes:
        return None
    section = Section("data-split", "The data split", intro=[
        "Partition ", src.cell("settings", "partition", fmt="text"), ": ", src.cell("settings", "clients", fmt="int"),
        " clients hold between ", src.cell("data", "partition", "min_size", fmt="int"), " and ",
        src.cell("data", "partition", "max_size", fmt="int"), " training samples; ",
        src.cell("data", "partition", "unused_samples", fmt="int"), " samples are in no client's share."])
    if counts:
        heatmap = len(counts) > 24 or max(len(row) for row in counts) > 12
        section.figures.append(Figure(
            "fig-federated-partition", "Samples per class, per client",
            plots.class_split("fig-federated-partition", counts),
            ["Each client's share of the training data by class" + (
                ": one column per client, darker cells hold more samples; an empty cell is a class the client "
                "never sees." if heatmap else ": one bar per client, one colour per class.")
             + " An IID split gives every client the same mix; a skewed (non-IID) one gives each its own."],
            wide=heatmap))
    per_client = src.sequence("data", "partition", "classes_per_client")
    if sizes and len(sizes) <= 24:
        section.tables.append(Table("partition-table", ["client", "samples", "classes"], [
            [str(i), src.cell("data", "partition", "sizes", i, fmt="int"),
             src.cell("data", "partition", "classes_per_client", i, fmt="int") if i < len(per_client) else ""]
            for i in range(len(sizes))], title="Per client"))
    return section


def _rounds_table(src: Source, rounds: list[Mapping[str, Any]], runtimes: list[str], start: bool) -> Table:
    """One row per round (round 0: the initial model): who took part, accuracy, agreement, verdict, time."""
    faults = [key for key in ("failed", "stragglers", "timed_out") if any(r.get(key) for r in rounds)]
    labels = {"failed": "failed", "stragglers": "past the deadline", "timed_out": "timed out"}
    header = ["round", "participants", "sampled", *(labels[k] for k in faults),
              *(f"accuracy ({RUNTIME_NAMES[rt]})" for rt in runtimes),
              "centralized", "weight difference", "verdict", "time"]
    rows: list[list[str | Cell]] = []
    if start:
        rows.append([Cell("0 (initial)", cls="nowrap"), "", "", *([""] * len(faults)),
                     *(src.cell("initial", rt, "accuracy", fmt="pct") for rt in runtimes), "", "", "", ""])
    for i, r in enumerate(rounds):
        rows.append([src.cell("rounds", i, "round", fmt="int"),
                     src.cell("rounds", i, "participants", fmt="int" if isinstance(r.get("participants"), int)
                              else "json"),
                     src.cell("rounds", i, "sampled", fmt="int"),
                     *(src.cell("rounds", i, k, fmt="json", cls="nowrap") for k in faults),
                     *(src.cell("rounds", i, "accuracy", rt, fmt="pct") for rt in runtimes),
                     src.cell("rounds", i, "centralized_accuracy", fmt="pct"),
                     src.cell("rounds", i, "agreement", "max_abs_weight_diff"),
                     src.cell("rounds", i, "verdict", fmt="text", cls="nowrap"),
                     src.cell("rounds", i, "wall_seconds", fmt="sec", cls="nowrap")])
    note = f"{', '.join(labels[k] for k in faults)}: the ids of the sampled clients whose update was lost" \
        if faults else ""
    return Table("rounds-table", header, rows, note=note)


RUNTIME_NAMES = {"tflite": "TFLite", "tensorflow": "TensorFlow"}


def _round_cost_table(src: Source, rounds: list[Mapping[str, Any]]) -> Table | None:
    """Per round: held-out loss in each runtime, bytes sent to and received from the clients, time per runtime."""

    def per_runtime(key: str) -> list[str]:
        return [rt for rt in RUNTIME_NAMES if any(isinstance(r.get(key), Mapping) and r[key].get(rt) is not None
                                                  for r in rounds)]

    losses, seconds = per_runtime("loss"), per_runtime("seconds")
    sent = per_runtime("bytes")
    # The same weights travel in every runtime: the bytes are shown once when they agree, else per runtime.
    if len(sent) > 1 and all(r["bytes"].get(rt) == r["bytes"].get(sent[0]) for r in rounds
                             if isinstance(r.get("bytes"), Mapping) for rt in sent):
        sent = sent[:1]
    if not (losses or sent or seconds):
        return None
    both = len(sent) > 1
    header = ["round", *(f"loss ({RUNTIME_NAMES[rt]})" for rt in losses),
              *(f"{d}" + (f" ({RUNTIME_NAMES[rt]})" if both else "") for rt in sent for d in ("bytes down", "bytes up")),
              *(f"time ({RUNTIME_NAMES[rt]})" for rt in seconds)]
    rows: list[list[str | Cell]] = [
        [src.cell("rounds", i, "round", fmt="int"), *(src.cell("rounds", i, "loss", rt) for rt in losses),
         *(src.cell("rounds", i, "bytes", rt, d, fmt="bytes") for rt in sent for d in ("down", "up")),
         *(src.cell("rounds", i, "seconds", rt, fmt="sec") for rt in seconds)] for i in range(len(rounds))]
    return Table("round-cost-table", header, rows, title="Loss, traffic and time per round",
                 note="Loss: the global model on the held-out data. Bytes down: weights sent to the round's clients; "
                      "up: weights received back" + (" (the same in every runtime)" if len(sent) == 1 and len(
                          per_runtime("accuracy")) > 1 else "") + ". Time: the round in each runtime.")


def _fleet_table(src: Source) -> Table | None:
    """What travels per client and direction, and the engine that simulated the fleet."""
    rows: list[list[str | Cell]] = [[label, src.cell(*path, fmt=fmt)] for label, path, fmt in (
        ("weight tensors sent", ("model", "exchanged_variables"), "int"),
        ("bytes per client, each way", ("model", "exchanged_bytes"), "bytes"),
        ("model size", ("model", "size_bytes"), "bytes"),
        ("Flower", ("engine", "flwr"), "text"),
        ("Ray", ("engine", "ray"), "text"),
        ("client actors", ("engine", "actors"), "int"),
        ("Ray address", ("engine", "address"), "text"),
    ) if src.has(*path)]
    return Table("fleet-table", ["fleet", ""], rows, title="What travels, and the engine", numeric=False) \
        if rows else None


def _federate_command(src: Source) -> str | None:
    """The ``litetrain federate`` command line of a federation's settings (None when they name no model)."""

    from litetrain.reporting.comparison_page import model_flags

    s = src.mapping("settings")
    if isinstance(s.get("command"), str):
        return s["command"]
    if not isinstance(s.get("model"), str):
        return None
    args = ["litetrain", "federate", s["model"], *model_flags(s)]
    flags = (("batch_size", "--batch-size"), ("data", "--data"), ("clients", "--clients"), ("rounds", "--rounds"),
             ("local_epochs", "--local-epochs"), ("partition", "--partition"), ("fraction_fit", "--fraction-fit"),
             ("runtime", "--runtime"), ("strategy", "--strategy"), ("proximal_mu", "--proximal-mu"),
             ("server_lr", "--server-lr"), ("seed", "--seed"), ("client_failure_rate", "--client-failure-rate"),
             ("straggler_rate", "--straggler-rate"), ("round_timeout", "--round-timeout"),
             ("cpus_per_client", "--cpus-per-client"), ("atol", "--atol"), ("rtol", "--rtol"))
    for key, flag in flags:
        value = s.get(key)
        if value is not None and not isinstance(value, bool | dict | list):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    # No --checkpoint-dir: the numbers do not depend on it, and that folder already holds this run's rounds.
    if src.has("centralized") and src.get("centralized") is None:
        args.append("--no-centralized")
    fail_on = src.get("fail_on")
    if isinstance(fail_on, list) and sorted(fail_on) != ["inconsistent", "unhealthy"]:
        args += ["--fail-on", ",".join(fail_on) or "none"]
    return shlex.join(args)
