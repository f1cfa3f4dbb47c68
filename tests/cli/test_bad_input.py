"""Bad input: one clear message on stderr, exit code 2 (3: cannot run here), no traceback, no partial output.

Every command runs in-process through ``litetrain.cli.app.main`` (TensorFlow is imported once); one test runs
the real command in a subprocess to prove that no traceback reaches a terminal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from litetrain.cli.app import main

STEPS = "3"
SPARSE = ["--loss", "sparse_categorical_crossentropy"]

FACTORIES = '''
import keras


def boom():
    raise RuntimeError("factory exploded")


def not_a_model():
    return 42


def never_built():
    class Net(keras.Model):
        def call(self, x):
            return x

    return Net()
'''


# --- inputs, built once per module ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def f(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny models, data files and broken files; every path is a string for the command line."""
    import keras

    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)

    def save(name: str, *layers: object) -> str:
        keras.Sequential([keras.Input((8, 8)), *layers]).save(d / name)
        return str(d / name)

    def npz(name: str, **arrays: np.ndarray) -> str:
        np.savez(d / name, **arrays)
        return str(d / name)

    x = rng.random((64, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    x_nan = x.copy()
    x_nan[3, 2, 1] = np.nan
    y_inf = rng.standard_normal(64).astype(np.float32)
    y_inf[5] = np.inf
    (d / "corrupt.keras").write_bytes(rng.bytes(256))
    (d / "corrupt.h5").write_bytes(rng.bytes(256))
    (d / "model.onnx").write_bytes(rng.bytes(16))
    (d / "corrupt.npz").write_bytes(rng.bytes(256))
    (d / "corrupt.tflite").write_bytes(rng.bytes(256))
    (d / "not_a_saved_model").mkdir()
    (d / "litetrain_bad_factories.py").write_text(textwrap.dedent(FACTORIES))
    flat = keras.layers.Flatten()
    return SimpleNamespace(
        dir=d,
        classifier=save("classifier.keras", flat, keras.layers.Dense(10, name="head")),
        regressor=save("regressor.keras", keras.layers.Flatten(), keras.layers.Dense(1, name="head")),
        per_row=save("per_row.keras", keras.layers.Dense(4, name="head")),  # output (8, 4): not a classifier
        # Conv3D's filter gradient (Conv3DBackpropFilterV2) has no TFLite builtin and litetrain has no rewrite
        # for it.
        conv3d=save("conv3d.keras", keras.layers.Reshape((2, 4, 8, 1)), keras.layers.Conv3D(2, 2, name="vol"),
                    keras.layers.Flatten(), keras.layers.Dense(10, name="head")),
        corrupt_keras=str(d / "corrupt.keras"),
        corrupt_h5=str(d / "corrupt.h5"),
        onnx=str(d / "model.onnx"),
        not_saved_model=str(d / "not_a_saved_model"),
        corrupt_npz=str(d / "corrupt.npz"),
        corrupt_tflite=str(d / "corrupt.tflite"),
        data=npz("data.npz", x=x, y=y),
        no_y=npz("no_y.npz", x=x),
        above=npz("above.npz", x=x, y=y + 5),
        negative=npz("negative.npz", x=x, y=y - 3),
        fractional=npz("fractional.npz", x=x, y=y + 0.5),
        not_one_hot=npz("not_one_hot.npz", x=x, y=2.0 * np.eye(10)[y]),
        x_5x5=npz("x_5x5.npz", x=x[:, :5, :5], y=y),
        short_y=npz("short_y.npz", x=x, y=y[:50]),
        nan_x=npz("nan_x.npz", x=x_nan, y=y),
        inf_y=npz("inf_y.npz", x=x, y=y_inf),
        text_x=npz("text_x.npz", x=np.full((64, 8, 8), "a"), y=y),
        complex_x=npz("complex_x.npz", x=x.astype(np.complex64), y=y),
    )


@pytest.fixture
def factories(f: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(f.dir))


def run(argv: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Runs the command in-process; argparse's own errors exit through SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_error(code: int, err: str, expected: int, words: Sequence[str]) -> None:
    assert code == expected, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    # One message: "litetrain: error: ..." and at most one "  what to do: ..." line, nothing else.
    assert lines and lines[0].startswith("litetrain: error: "), err
    assert len(lines) <= 2 and all(line.startswith("  what to do: ") for line in lines[1:]), err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"


# --- check: every bad input, with --json OUT that must not appear ---------------------------------------
Case = tuple[Callable[[SimpleNamespace], list[str]], int, Callable[[SimpleNamespace], list[str]]]

CHECK_CASES: dict[str, Case] = {
    # model files
    "missing-model": (lambda f: [f.dir / "nope.keras", *SPARSE], 2,
                      lambda f: ["nope.keras", "does not exist", "module:function"]),
    "corrupt-keras": (lambda f: [f.corrupt_keras, *SPARSE], 2,
                      lambda f: ["corrupt.keras", "Could not load the Keras model", "model.save"]),
    "corrupt-h5": (lambda f: [f.corrupt_h5, *SPARSE], 2, lambda f: ["corrupt.h5", "HDF5"]),
    "unknown-suffix": (lambda f: [f.onnx, *SPARSE], 2, lambda f: ["model.onnx", "'.onnx'", ".keras"]),
    "folder-not-saved-model": (lambda f: [f.not_saved_model, *SPARSE], 2,
                               lambda f: ["not_a_saved_model", "saved_model.pb"]),
    # factories
    "factory-raises": (lambda f: ["litetrain_bad_factories:boom", *SPARSE], 2,
                       lambda f: ["litetrain_bad_factories:boom", "RuntimeError", "factory exploded", "Fix the factory"]),
    "factory-not-a-model": (lambda f: ["litetrain_bad_factories:not_a_model", *SPARSE], 2,
                            lambda f: ["must be a Keras model", "builtins.int"]),
    "factory-missing-function": (lambda f: ["litetrain_bad_factories:nope", *SPARSE], 2,
                                 lambda f: ["no function 'nope'", "litetrain_bad_factories.py"]),
    "factory-missing-module": (lambda f: ["litetrain_no_such_module:make", *SPARSE], 2,
                               lambda f: ["'litetrain_no_such_module'", "ModuleNotFoundError", "install its package"]),
    "factory-never-built": (lambda f: ["litetrain_bad_factories:never_built", *SPARSE], 2,
                            lambda f: ["no defined inputs/outputs", "keras.Input"]),
    # data files
    "missing-data": (lambda f: [f.classifier, *SPARSE, "--data", f.dir / "nope.npz"], 2,
                     lambda f: ["nope.npz", "does not exist", "--data"]),
    "corrupt-npz": (lambda f: [f.classifier, *SPARSE, "--data", f.corrupt_npz], 2,
                    lambda f: ["corrupt.npz", "not a readable .npz", "numpy.savez"]),
    "unknown-data": (lambda f: [f.classifier, *SPARSE, "--data", "table.csv"], 2,
                     lambda f: ["'table.csv'", "digits:28x28", ".npz"]),
    "npz-without-y": (lambda f: [f.classifier, *SPARSE, "--data", f.no_y], 2, lambda f: ["lacks ['y']", "labels"]),
    "digits-of-another-size": (lambda f: [f.classifier, *SPARSE, "--data", "digits:28x28"], 2,
                               lambda f: ["(28, 28)", "(8, 8)", "--data digits:8x8"]),
    # labels that do not fit the model or the loss
    "labels-above-range": (lambda f: [f.classifier, *SPARSE, "--data", f.above], 2,
                           lambda f: ["range from 5 to 14", "10 outputs", "classes 0..9"]),
    "labels-negative": (lambda f: [f.classifier, *SPARSE, "--data", f.negative], 2,
                        lambda f: ["range from -3 to 6", "10 outputs"]),
    "labels-fractional": (lambda f: [f.classifier, *SPARSE, "--data", f.fractional], 2,
                          lambda f: ["non-integer", "whole numbers"]),
    "labels-not-one-hot": (lambda f: [f.classifier, "--loss", "categorical_crossentropy", "--data", f.not_one_hot],
                           2, lambda f: ["10 columns", "not one-hot"]),
    "regressor-with-class-loss": (lambda f: [f.regressor, *SPARSE, "--data", f.data], 2,
                                  lambda f: ["sparse_categorical_crossentropy", "(1,)", "--loss mse"]),
    "output-per-row-with-class-loss": (lambda f: [f.per_row, *SPARSE, "--data", f.data], 2,
                                       lambda f: ["one output per class", "(8, 4)", "Dense(num_classes)"]),
    "classifier-with-mse-and-class-labels": (lambda f: [f.classifier, "--loss", "mse", "--data", f.data], 2,
                                             lambda f: ["shape ()", "(10,)", "choose a loss"]),
    # shapes, dtypes and values of the data
    "x-shape-mismatch": (lambda f: [f.classifier, *SPARSE, "--data", f.x_5x5], 2,
                         lambda f: ["(5, 5)", "(8, 8)", "Reshape"]),
    "x-y-length-mismatch": (lambda f: [f.classifier, *SPARSE, "--data", f.short_y], 2,
                            lambda f: ["x has 64 samples but y has 50"]),
    "nan-in-x": (lambda f: [f.classifier, *SPARSE, "--data", f.nan_x], 2, lambda f: ["x contains 1 NaN or Inf"]),
    "inf-in-y": (lambda f: [f.regressor, "--loss", "mse", "--data", f.inf_y], 2,
                 lambda f: ["y contains 1 NaN or Inf", "Clean"]),
    "text-x": (lambda f: [f.classifier, *SPARSE, "--data", f.text_x], 2, lambda f: ["dtype <U1", "astype"]),
    "complex-x": (lambda f: [f.classifier, *SPARSE, "--data", f.complex_x], 2,
                  lambda f: ["dtype complex64", "real numeric dtype"]),
    # option values
    "no-loss-uncompiled-model": (lambda f: [f.classifier], 2, lambda f: ["No loss given", "Pass --loss"]),
    "unknown-loss": (lambda f: [f.classifier, "--loss", "hinge"], 2,
                     lambda f: ["Unknown loss 'hinge'", "sparse_categorical_crossentropy"]),
    "from-logits-without-loss": (lambda f: [f.classifier, "--from-logits"], 2, lambda f: ["need --loss"]),
    "trainable-unknown-layer": (lambda f: [f.classifier, *SPARSE, "--trainable", "encoder,head"], 2,
                                lambda f: ["['encoder']", "'head'"]),
    "trainable-too-many": (lambda f: [f.classifier, *SPARSE, "--trainable", "last:5"], 2,
                           lambda f: ["last:5", "1 that have weights"]),
    "trainable-zero": (lambda f: [f.classifier, *SPARSE, "--trainable", "last:0"], 2, lambda f: ["'last:0'"]),
    "hyperparameter-of-another-optimizer": (lambda f: [f.classifier, *SPARSE, "--optimizer", "sgd", "--beta1", "0.9"],
                                            2, lambda f: ["--beta1 does not apply to the sgd", "momentum"]),
    # without --optimizer a hyperparameter overrides the compiled optimizer's, here the default SGD
    "hyperparameter-the-default-optimizer-lacks": (lambda f: [f.classifier, *SPARSE, "--beta1", "0.9"], 2,
                                                   lambda f: ["--beta1 does not apply to the sgd optimizer",
                                                              "compiled without one", "--optimizer"]),
    "negative-learning-rate": (lambda f: [f.classifier, *SPARSE, "--optimizer", "adam", "--lr", "-1"], 2,
                               lambda f: ["received -1.0"]),
    "zero-steps": (lambda f: [f.classifier, *SPARSE, "--steps", "0"], 2, lambda f: ["--steps", "received 0"]),
    "zero-epochs": (lambda f: [f.classifier, *SPARSE, "--epochs", "0"], 2, lambda f: ["--epochs", "received 0"]),
    "zero-batch-size": (lambda f: [f.classifier, *SPARSE, "--batch-size", "0"], 2,
                        lambda f: ["--batch-size", "received 0"]),
    "negative-atol": (lambda f: [f.classifier, *SPARSE, "--atol", "-1"], 2, lambda f: ["--atol", "received -1.0"]),
    # a layer whose gradient has no builtin-only form
    "unsupported-layer": (lambda f: [f.conv3d, *SPARSE, "--data", f.data], 2,
                          lambda f: ["Conv3DBackpropFilterV2", "gradient of layer 'vol'", "Freeze 'vol' with --trainable",
                                     "--select-tf-ops"]),
    # valid, but this machine cannot run it (exit 3)
    "select-tf-ops-cannot-run-here": (lambda f: [f.classifier, *SPARSE, "--data", f.data, "--select-tf-ops"], 3,
                                      lambda f: ["Flex", "cannot be run", "builtin-only"]),
}


@pytest.mark.parametrize("case", list(CHECK_CASES))
@pytest.mark.usefixtures("factories")
def test_check_bad_input(case: str, f: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, expected, words = CHECK_CASES[case]
    argv = ["check", *args(f)]
    if "--steps" not in argv and "--epochs" not in argv:
        argv += ["--steps", STEPS]
    report = tmp_path / "report.json"
    code, out, err = run([*argv, "--json", report], capsys)
    assert_one_clear_error(code, err, expected, words(f))
    assert not report.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary files left beside it either


def test_unknown_optimizer_is_an_argparse_error(f: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", f.classifier, *SPARSE, "--optimizer", "lion"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "invalid choice: 'lion'" in err and "sgd" in err


@pytest.mark.parametrize("command", [["check", "MODEL", *SPARSE], ["demo"], ["build", "MODEL", *SPARSE, "-o", "out"],
                                     ["quantize", "MODEL"], ["federate", "MODEL"]])
@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5"])
def test_a_seed_numpy_cannot_take_is_an_argparse_error(f: SimpleNamespace, command: list[str], seed: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = [f.classifier if a == "MODEL" else a for a in command]
    code, _, err = run([*argv, "--seed", seed], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"argument --seed: expected an integer from 0 to 4294967295; received '{seed}'" in err


def test_the_python_api_refuses_a_negative_seed_too() -> None:
    from litetrain.data.batching import plan_batches
    from litetrain.errors import UsageError

    with pytest.raises(UsageError, match="A seed must be an integer from 0 to 4294967295; received -1"):
        plan_batches(100, 10, steps=5, seed=-1)


# --- output paths ----------------------------------------------------------------------------------------
def test_json_in_a_missing_folder_fails_before_any_work(f: SimpleNamespace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "report.json"
    code, _, err = run(["check", f.classifier, *SPARSE, "--steps", STEPS, "--json", out], capsys)
    assert_one_clear_error(code, err, 2, [str(out), "does not exist", "Create the folder"])
    assert not out.parent.exists()


def test_json_that_is_a_folder(f: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", f.classifier, *SPARSE, "--steps", STEPS, "--json", tmp_path], capsys)
    assert_one_clear_error(code, err, 2, [str(tmp_path), "is a folder", "report.json"])
    assert list(tmp_path.iterdir()) == []


def test_build_into_a_missing_folder(f: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "built"
    code, _, err = run(["build", f.classifier, *SPARSE, "-o", out], capsys)
    assert_one_clear_error(code, err, 2, [str(out.parent), "does not exist", "Create the folder"])
    assert list(tmp_path.iterdir()) == []


def test_build_onto_a_file(f: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "built"
    out.write_text("keep me")
    code, _, err = run(["build", f.classifier, *SPARSE, "-o", out], capsys)
    assert_one_clear_error(code, err, 2, [str(out), "not a folder"])
    assert out.read_text() == "keep me" and list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(("model", "loss", "words"), [
    ("conv3d", SPARSE, ["Conv3DBackpropFilterV2", "'vol'", "--trainable", "--select-tf-ops"]),
    ("per_row", SPARSE, ["one output per class", "(8, 4)"]),
    ("regressor", ["--loss", "hinge"], ["Unknown loss 'hinge'"]),
])
def test_failed_build_leaves_the_output_folder_as_it_was(model: str, loss: list[str], words: list[str],
                                                         f: SimpleNamespace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    absent, existing = tmp_path / "new", tmp_path / "old"
    existing.mkdir()
    (existing / "model.tflite").write_bytes(b"previous build")
    for out in (absent, existing):
        code, _, err = run(["build", getattr(f, model), *loss, "-o", out], capsys)
        assert_one_clear_error(code, err, 2, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no "new", no staging folder
    assert [p.name for p in existing.iterdir()] == ["model.tflite"]
    assert (existing / "model.tflite").read_bytes() == b"previous build"


# --- compare: models without the signature convention ---------------------------------------------------
@pytest.fixture(scope="module")
def pair(f: SimpleNamespace) -> SimpleNamespace:
    """A valid pair from `litetrain build`, a .tflite with only serving_default and a SavedModel without any."""
    import tensorflow as tf

    built = f.dir / "built"
    assert main(["build", f.classifier, *SPARSE, "--batch-size", "8", "-o", str(built)]) == 0
    assert sorted(p.name for p in built.iterdir()) == ["build.json", "model.tflite", "saved_model"]

    class Plain(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((8, 8)))

        @tf.function(input_signature=[tf.TensorSpec((1, 8, 8), tf.float32)])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"output": x * self.w}

    plain = Plain()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([plain.serve.get_concrete_function()], plain)
    (f.dir / "plain.tflite").write_bytes(converter.convert())
    tf.saved_model.save(plain, str(f.dir / "plain_saved_model"), signatures={})
    return SimpleNamespace(reference=str(built / "saved_model"), candidate=str(built / "model.tflite"),
                           plain_tflite=str(f.dir / "plain.tflite"), plain_saved_model=str(f.dir / "plain_saved_model"))


COMPARE_CASES: dict[str, tuple[Callable[[SimpleNamespace, SimpleNamespace], list[str]], list[str]]] = {
    "missing-candidate": (lambda f, p: [p.reference, f.dir / "nope.tflite"], ["nope.tflite", "does not exist"]),
    "corrupt-candidate": (lambda f, p: [p.reference, f.corrupt_tflite], ["not a valid TFLite model", ".tflite"]),
    "candidate-without-signatures": (lambda f, p: [p.reference, p.plain_tflite],
                                     ["lacks the signature(s) ['train', 'infer', 'save', 'restore']",
                                      "serving_default", "litetrain build"]),
    "missing-reference": (lambda f, p: [f.dir / "nope", p.candidate], ["nope", "no saved_model.pb"]),
    "reference-without-signatures": (lambda f, p: [p.plain_saved_model, p.candidate],
                                     ["lacks the signature(s) ['train', 'infer']", "signature convention"]),
    "data-of-another-shape": (lambda f, p: [p.reference, p.candidate, "--data", f.x_5x5], ["(5, 5)", "(8, 8)"]),
    "batch-size-of-another-build": (lambda f, p: [p.reference, p.candidate, "--batch-size", "16"],
                                    ["--batch-size 16", "batch size 8", "Omit --batch-size"]),
}


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_compare_bad_input(case: str, f: SimpleNamespace, pair: SimpleNamespace, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    args, words = COMPARE_CASES[case]
    ref, cand, *rest = args(f, pair)
    if "--data" not in rest:
        rest += ["--data", f.data]
    report = tmp_path / "report.json"
    code, _, err = run(["compare", "--reference", ref, "--candidate", cand, *rest, "--steps", STEPS,
                        "--json", report], capsys)
    assert_one_clear_error(code, err, 2, words)
    assert not report.exists()


# --- positive controls: the same inputs, valid, succeed and write their output ---------------------------
def test_valid_check_exits_0_and_writes_the_json(f: SimpleNamespace, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code, out, err = run(["check", f.classifier, *SPARSE, "--data", f.data, "--steps", STEPS, "--json", report,
                          "-q"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "error" not in err
    assert out.strip() == "verdict: consistent"
    result = json.loads(report.read_text())
    assert result["verdict"] == "consistent" and result["train"]["steps"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_valid_compare_exits_0(f: SimpleNamespace, pair: SimpleNamespace, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code, _, err = run(["compare", "--reference", pair.reference, "--candidate", pair.candidate, "--data", f.data,
                        "--steps", STEPS, "--json", report, "-q"], capsys)
    assert code == 0, err
    assert json.loads(report.read_text())["verdict"] == "consistent"


# --- a real terminal ------------------------------------------------------------------------------------
def test_missing_model_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.keras"
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "litetrain.cli.app", "check", str(missing), *SPARSE, "--steps", STEPS,
         "--json", str(report)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"litetrain: error: Model {str(missing)!r} does not exist." in proc.stderr
    assert "what to do:" in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
