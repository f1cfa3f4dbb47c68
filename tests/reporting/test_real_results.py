"""Reports of real quantize, train and federate results (tests/reporting/data), and the schema they follow."""

from __future__ import annotations

import copy
import json
import re
import shlex

import pytest

from litetrain.reporting.html import render_html
from tests.reporting.conftest import REAL_KINDS, data_keyed
from tests.reporting.schema_doc import assert_documented, mismatches
from tests.reporting.test_html import assert_json_and_html_agree, assert_self_contained, figures_of

REAL_FIGURES = {
    "quantize": {"fig-quant-matrix", "fig-quant-error", "fig-quant-training", "fig-quant-layers-deploy-int8"},
    "train": {"fig-train-curves", "fig-train-time"},
    "federate": {"fig-federated-accuracy", "fig-federated-agreement"},
}


@pytest.fixture(scope="module")
def real_html(real) -> dict[str, str]:
    """Each real result rendered once for the module (a quantize page draws a dozen plots)."""

    class Rendered(dict):
        def __missing__(self, kind: str) -> str:
            self[kind] = render_html(real[kind])
            return self[kind]

    return Rendered()


def _command(html: str) -> list[str]:
    import html as html_lib

    m = re.search(r'<pre class="command" id="settings-command"><code>(.*?)</code>', html, re.S)
    assert m, "no reproduce command"
    return shlex.split(html_lib.unescape(m.group(1)))


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_real_results_render_every_plot_and_agree_with_their_json(real, real_html, kind):
    result = real[kind]
    html = real_html[kind]
    figs = figures_of(html)
    assert REAL_FIGURES[kind] <= set(figs), sorted(figs)
    for body in figs.values():
        assert "<svg" in body and len(re.findall(r"<path", body)) > 5
    assert_self_contained(html)
    assert assert_json_and_html_agree(result, html) > 60
    assert "from a result of schema 1.0." in html


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_real_results_have_the_documented_keys(real, kind):
    assert real[kind]["schema_version"] == "1.0"
    assert_documented(real[kind])


def test_the_schema_check_catches_a_missing_or_undocumented_field(real):
    broken = copy.deepcopy(real["train"])
    del broken["epochs"][2]["seconds_per_step"]
    broken["epochs"][0]["joules"] = 1.0
    assert mismatches(broken, "train") == ["epochs[0].joules: in the result, not documented",
                                          "epochs[2].seconds_per_step: documented, missing"]


def test_comparison_results_have_their_documented_top_level_keys(demo_run):
    assert_documented(demo_run.result, closed=False)


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_the_reproduce_command_is_the_run_that_wrote_the_result(real, real_html, kind):
    from litetrain.cli.app import make_parser

    argv = _command(real_html[kind])
    assert argv[:2] == ["litetrain", kind]
    args = make_parser().parse_args(argv[1:])
    s = real[kind]["settings"]
    if kind == "quantize":
        assert (args.model, args.steps, args.lr, args.batch_size, args.allow_untrainable, args.data) == (
            "tests.models:mlp", 100, 0.1, 16, True, "digits")
    elif kind == "train":
        assert (args.model, args.epochs, args.lr_schedule, args.isolated, args.project_samples) == (
            s["model"], 5, "cosine", True, 60000)
    else:
        assert (args.model, args.clients, args.rounds, args.partition, args.client_failure_rate,
                args.straggler_rate, args.lr, args.from_logits) == (
            "tests.models:mlp", 6, 3, "dirichlet:0.5", 0.2, 0.2, 0.2, True)


def test_train_page_plots_time_per_step_of_the_call_and_the_interpreter(real, real_html):
    result = real["train"]
    html = real_html["train"]
    fig = figures_of(html)["fig-train-time"]
    # Both per-step series (the worker's pipe included, and inside its interpreter) and the epoch's wall time.
    for text in ("train call (with the pipe)", "inside the worker&#39;s interpreter", "time per step (µs)",
                 "time per epoch (ms)"):
        assert text in fig.replace("'", "&#39;"), text
    keys = {k for k, _, _ in data_keyed(html)}
    for i in range(len(result["epochs"])):
        for key in ("seconds", "seconds_per_step", "interpreter_seconds_per_step"):
            assert f"/epochs/{i}/{key}" in keys
    answer = re.search(r'<p class="answer" id="answer">(.*?)</p>', html, re.S).group(1)
    assert 'data-key="/seconds_per_step"' in answer and 'data-key="/budget/interpreter_seconds_per_step"' in answer
    # In-process sessions have no interpreter series; a session that resumed says which epochs it timed.
    inproc = copy.deepcopy(result)
    for e in inproc["epochs"]:
        e["interpreter_seconds_per_step"] = None
    inproc["budget"]["interpreter_seconds_per_step"] = None
    inproc["rss_source"] = "in-process"
    svg = figures_of(render_html(inproc))["fig-train-time"].split("<figcaption>")[0]
    assert "<svg" in svg and "interpreter" not in svg and "train call" not in svg  # one series: no legend
    resumed = copy.deepcopy(result)
    resumed["epochs"][0].update(seconds=None, seconds_per_step=None, interpreter_seconds_per_step=None,
                                steps_this_session=0)
    resumed["epochs"][1]["steps_this_session"] = 30
    html = render_html(resumed)
    assert "epoch 2&#39;s covers only the steps run after the resume" in figures_of(html)["fig-train-time"]
    assert_json_and_html_agree(resumed, html)


def test_a_train_result_without_epoch_timings_still_renders(real):
    """Results written before epochs carried their timing: no time figure, no error, every figure agrees."""
    from litetrain.training.result import UNTIMED

    older = copy.deepcopy(real["train"])
    older["epochs"] = [{k: v for k, v in e.items() if k not in UNTIMED} for e in older["epochs"]]
    html = render_html(older)
    assert "fig-train-curves" in figures_of(html) and "fig-train-time" not in figures_of(html)
    assert_json_and_html_agree(older, html)


def test_federate_page_of_a_real_federation(real, real_html):
    result = real["federate"]
    html = real_html["federate"]
    table = re.search(r'<table id="rounds-table".*?</table>', html, re.S).group(0)
    # Round 0 is the initial model; lost clients are named by id.
    assert "0 (initial)" in table and 'data-key="/initial/tflite/accuracy"' in table
    failed = next(i for i, r in enumerate(result["rounds"]) if len(r["failed"]) > 1)
    shown = json.dumps(result["rounds"][failed]["failed"], separators=(", ", ": "))
    assert f'data-key="/rounds/{failed}/failed" data-format="json" class="nowrap">{shown}<' in table
    assert 'data-key="/rounds/0/stragglers"' in table and "past the deadline" in table
    agreement = figures_of(html)["fig-federated-agreement"]
    assert "tolerance (atol)" in agreement and 'data-key="/settings/atol"' in agreement
    assert 'id="fleet-table"' in html and 'data-key="/model/exchanged_bytes"' in html
    assert "Does federated training on TFLite devices work like it does in TensorFlow?" in html


@pytest.mark.parametrize(("version", "shown"), [(1, "1.0"), ("1.0", "1.0"), ("1", "1.0")])
def test_report_reads_both_forms_of_schema_version(real, tmp_path, capsys, version, shown):
    from litetrain.cli.app import main

    older = {**real["train"], "schema_version": version}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(older))
    assert main(["report", str(path), "-o", str(tmp_path / "train.html")]) == 0
    html = (tmp_path / "train.html").read_text()
    assert f"from a result of schema {shown}." in html
    assert_json_and_html_agree(older, html)  # the embedded result is the file as it was


@pytest.mark.parametrize(("version", "message"), [
    ("2.0", "is a result of schema 2.0; this litetrain"), (2, "is a result of schema 2.0"),
    ("one", "neither a version string"), (1.5, "neither a version string"), (True, "neither a version string"),
])
def test_report_refuses_a_newer_or_malformed_schema_version(real, tmp_path, capsys, version, message):
    from litetrain.cli.app import main

    path = tmp_path / "train.json"
    path.write_text(json.dumps({**real["train"], "schema_version": version}))
    assert main(["report", str(path), "-o", str(tmp_path / "train.html")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "train.html").exists()


def _table(html: str, table_id: str) -> str:
    return re.search(rf'<table id="{table_id}".*?</table>', html, re.S).group(0)


def _first_column(table: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"<tr><td>([^<]*)</td>", table)]


def test_train_budget_rows_have_human_labels(real, real_html):
    result = real["train"]
    html = real_html["train"]
    budget, projection = _table(html, "budget-table"), _table(html, "projection-table")
    for table, values in ((budget, result["budget"]), (projection, result["budget"]["projection"])):
        labels = _first_column(table)
        shown = {k for k, v in values.items() if not isinstance(v, dict | list)}
        assert len(labels) == len(shown)
        for label in labels:
            assert "_" not in label and label not in {k.replace("_", " ") for k in shown if "_" in k}, label
        assert "seconds" not in labels and "steps" not in labels  # a bare unit is no label
    assert "time per checkpoint write (mean)" in budget and "peak memory measured in" in budget
    assert "rss source" not in html and "checkpoint seconds mean" not in html
    # An unknown key still reads as words with its unit's format.
    from litetrain.reporting.train_page import humanized

    assert humanized("swap_peak_bytes") == ("swap peak", "bytes") and humanized("upload_seconds")[1] == "sec"
    # Both tables, and the worker's time per signature, in one section of their own.
    section = re.search(r'<section id="budget">.*?</section>', html, re.S).group(0)
    assert all(f'id="{t}"' in section for t in ("budget-table", "projection-table", "worker-table"))
    assert 'data-key="/budget/worker_timings/signatures/train/mean_interpreter_us"' in section


def test_the_train_command_runs_as_it_is_shown(real, real_html, demo_tflite, tmp_path, monkeypatch):
    """The shown command trains into a new folder, so it runs; the session's own folder is refused (exit 2)."""
    from litetrain.cli.app import main

    argv = _command(real_html["train"])
    at = argv.index("--checkpoint-dir")
    assert argv[at + 1] == "ckpt-rerun" != real["train"]["settings"]["checkpoint_dir"] and "--resume" not in argv
    monkeypatch.chdir(tmp_path)
    model = str(demo_tflite)
    assert main(["train", model, "--data", "digits:28x28", "--epochs", "1", "--checkpoint-dir", "ckpt",
                 "--json", "first.json", "-q"]) == 0
    first = json.loads((tmp_path / "first.json").read_text())
    html = render_html(first)
    assert "It writes its checkpoints to a new folder, ckpt-rerun" in html
    argv = _command(html)
    assert main([*argv[1:], "--json", "again.json", "-q"]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["epochs"][0]["loss"] == first["epochs"][0]["loss"] and again["final_loss"] == first["final_loss"]
    # The session's own checkpoints are untouched; the new ones are in the new folder.
    assert [p.name for p in sorted((tmp_path / "ckpt").glob("ckpt-*"))] == [p.rsplit("/", 1)[-1]
                                                                           for p in first["checkpoints"]]
    assert [p.rsplit("/", 1)[-1] for p in again["checkpoints"]] == [p.name for p in
                                                                    sorted((tmp_path / "ckpt-rerun").glob("ckpt-*"))]
    at = argv.index("--checkpoint-dir")
    assert main([*argv[1:at + 1], "ckpt", *argv[at + 2:], "-q"]) == 2  # what the command used to say


def test_quantize_training_curves_that_coincide_are_told_apart(real, real_html):
    from litetrain.reporting.page import Source
    from litetrain.reporting.quantize_page import REFERENCE, _quant_training, coinciding

    result = real["quantize"]
    html = real_html["quantize"]
    fig = figures_of(html)["fig-quant-training"]
    caption = fig.split("<figcaption>")[1]
    assert "Curves coincide: float32 (TensorFlow), none, dynamic and float16 agree within float32 rounding" in caption
    for mode in ("none", "dynamic", "float16"):
        assert f'data-key="/modes/{mode}/training/max_abs_loss_diff"' in caption
    # Each mode has its own dash pattern and marker shape (matplotlib writes them as stroke-dasharray / <defs>).
    svg = fig.split("<figcaption>")[0]
    assert len(set(re.findall(r"stroke-dasharray: ([\d.,\s]+)", svg))) >= 3
    assert len(re.findall(r'<path id="[^"]*m[0-9a-f]{10}"', svg)) >= 4  # marker definitions
    series = {REFERENCE: [2.0, 1.0], "a": [2.0, 1.0 + 1e-7], "b": [2.0, 1.1], "c": [2.0, 1.1], "d": [2.0]}
    assert coinciding(series) == [[REFERENCE, "a"], ["b", "c"], ["d"]]
    apart = copy.deepcopy(result)
    for i, mode in enumerate(("none", "dynamic", "float16")):
        apart["modes"][mode]["training"]["loss"]["tflite"] = [
            v + 0.01 * (i + 1) for v in apart["modes"][mode]["training"]["loss"]["tflite"]]
    figure = _quant_training(Source(apart), apart["modes"]).figures[0]
    assert figure.id == "fig-quant-training" and "coincide" not in "".join(map(str, figure.caption))


def test_quantize_matrix_names_its_points_and_keeps_a_short_legend(real, real_html):
    result = real["quantize"]
    svg = figures_of(real_html["quantize"])["fig-quant-matrix"].split("<figcaption>")[0]
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    legend = svg[svg.index('id="fig-quant-matrix-legend_1"'):]
    assert re.findall(r"<text[^>]*>([^<]*)</text>", legend) == ["trainable model", "inference-only (deploy)",
                                                                 "recommended"]
    labels = " ".join(texts).replace("\xa0", " ").replace(",", " ").split()
    for mode in [*result["modes"], *result["deploy"]["modes"]]:
        if isinstance(result["modes"].get(mode, {}).get("size_bytes"), int) or mode in result["deploy"]["modes"]:
            assert mode in labels, mode
    assert "(recommended)" in labels


def test_quantize_ops_with_zero_error_are_shown_as_exact(real, real_html):
    from tests.reporting.test_html import plotted_range

    result = real["quantize"]
    zero = [t["op"] for t in result["deploy"]["modes"]["float16"]["layers"] if t["nsr"] == 0]
    assert zero == ["RESHAPE"]
    svg = figures_of(real_html["quantize"])["fig-quant-layers-deploy-float16"].split("<figcaption>")[0]
    assert "flatten RESHAPE" in svg and "0 (exact)" in svg
    low, high, scale = plotted_range(svg, "x")
    assert scale == "log" and low > 0 and high / low >= 10  # whole decades: at least two labelled ticks
    from litetrain.reporting import plots

    assert "0 (exact)" in plots.bars("f", {"none": 0.0, "int8": 0.5}, xlabel="error")
    assert "0 (exact)" not in plots.bars("f", {"none": 1e-6, "int8": 0.5}, xlabel="error")


def test_federate_page_plots_the_data_split_loss_and_traffic(real, real_html):
    from tests.reporting.test_html import plotted_range

    result = real["federate"]
    html = real_html["federate"]
    figs = figures_of(html)
    split = figs["fig-federated-partition"]
    counts = result["data"]["partition"]["class_counts"]
    # One stacked bar per client and class, as tall as the client's largest share.
    assert len(re.findall(r'<g id="fig-federated-partition-patch_\d+"', split)) >= len(counts) * len(counts[0])
    assert plotted_range(split)[1] >= max(map(sum, counts))
    section = re.search(r'<section id="data-split">.*?</section>', html, re.S).group(0)
    assert 'data-key="/settings/partition"' in section and 'data-key="/data/partition/sizes/5"' in section
    assert 'data-key="/data/partition/classes_per_client/0"' in section
    assert "fig-federated-loss" in figs
    cost = _table(html, "round-cost-table")
    for i in range(len(result["rounds"])):
        for key in ("loss/tflite", "loss/tensorflow", "bytes/tflite/down", "bytes/tflite/up", "seconds/tensorflow"):
            assert f'data-key="/rounds/{i}/{key}"' in cost
    note = re.search(r'<table id="round-cost-table".*?</table>\s*<p class="note">(.*?)</p>', html, re.S).group(1)
    assert "(the same in every runtime)" in note and "bytes/tensorflow" not in cost
    # Many clients: a heatmap across the page, one column per client.
    many = copy.deepcopy(result)
    many["data"]["partition"]["class_counts"] = [[(c * 7 + k) % 5 for k in range(10)] for c in range(100)]
    html = render_html(many)
    heat = figures_of(html)["fig-federated-partition"]
    assert "<image" in heat and 'class="wide"' in re.search(r'<figure id="fig-federated-partition"[^>]*>',
                                                            html).group(0)
    assert plotted_range(heat, "x")[:2] == (-0.5, 99.5)
    assert_json_and_html_agree(many, html)
