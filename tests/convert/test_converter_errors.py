"""A conversion that fails for another reason than a missing op: one line naming the op, layer and signature.

The converter's MLIR diagnostics are the error's ``detail``; the CLI prints them only with ``--verbose``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pytest
import tensorflow as tf

from litetrain.cli.app import main
from litetrain.config import LossConfig, Optimizer, OptimizerConfig, TrainableSpec
from litetrain.convert.converter import tflite_from_saved_model
from litetrain.errors import UnsupportedModelError
from litetrain.trainable.gradients import builtin_gradients
from litetrain.trainable.loaders import Framework, LoadedModel
from litetrain.trainable.module import SIGNATURE_KEYS, TrainableModule


def _looping_lstm_saved_model(tmp_path: Path) -> Path:
    """A TrainableModule of an LSTM left as a while loop (what litetrain's build unrolls), saved as a SavedModel."""
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, name="encoder"), keras.layers.Dense(2)])
    module = TrainableModule(LoadedModel(model, Framework.KERAS3, "test"), LossConfig.parse("mse"),
                             OptimizerConfig(Optimizer.SGD, learning_rate=0.1), 4, TrainableSpec())
    with builtin_gradients():
        functions = module.concrete_functions()
    path = tmp_path / "saved_model"
    tf.saved_model.save(module, str(path), signatures=functions)
    return path


def test_loop_failure_names_op_layer_signature_and_keeps_the_dump_as_detail(tmp_path: Path) -> None:
    saved = _looping_lstm_saved_model(tmp_path)
    with pytest.raises(UnsupportedModelError) as caught:
        tflite_from_saved_model(saved, list(SIGNATURE_KEYS), layer_names=["encoder", "dense"], suffixed_scopes=True)
    error = caught.value
    assert error.message.startswith("TFLite cannot convert TensorListReserve in layer 'encoder' of the ")
    assert "loc(" not in error.message and "\n" not in error.message
    assert "static" in error.hint
    assert "loc(" in error.detail and "TensorListReserve" in error.detail


def test_cli_refuses_a_loop_of_unknown_length_naming_the_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI, an LSTM over sequences of unknown length is refused before conversion: exit 2, the layer
    named, no traceback, no output folder."""
    (tmp_path / "zoo_loop.py").write_text(
        "import keras\n"
        "def model():\n"
        "    return keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, name='encoder'), "
        "keras.layers.Dense(2)])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["build", "zoo_loop:model", "--loss", "mse", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'encoder'" in err and "unknown number of time steps" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_prints_the_converters_output_only_with_verbose(verbose: bool, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = keras.Sequential([keras.Input((2, 4, 8, 1)), keras.layers.Conv3D(2, 2, name="vol"),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    model.save(tmp_path / "vol.keras")
    code = main(["build", str(tmp_path / "vol.keras"), "--loss", "mse", "-o", str(tmp_path / "out"),
                 *(["--verbose"] if verbose else [])])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Conv3DBackpropFilterV2 (in the gradient of layer 'vol')" in err.splitlines()[0]
    if verbose:
        assert "loc(" in err and len(err.splitlines()) > 2
    else:
        assert "loc(" not in err and len(err.splitlines()) == 2 and err.rstrip().endswith("full output.")
