"""``--lr`` and the other hyperparameters without ``--optimizer`` override the compiled optimizer's."""

from __future__ import annotations

import pytest

from litetrain.cli import options
from litetrain.cli.app import make_parser
from litetrain.config import Optimizer, OptimizerConfig
from litetrain.errors import UnsupportedModelError, UsageError
from litetrain.trainable.keras_objects import resolve_optimizer


def _config(*flags: str) -> OptimizerConfig | None:
    return options.optimizer_config(make_parser().parse_args(["build", "MODEL", "-o", "out", *flags]))


def _compiled(optimizer):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="mse")
    return model


def test_no_optimizer_options_mean_the_compiled_optimizer():
    assert _config() is None


def test_lr_alone_is_an_override_without_a_name():
    assert _config("--lr", "0.01") == OptimizerConfig(None, learning_rate=0.01)
    assert _config("--momentum", "0.9") == OptimizerConfig(None, momentum=0.9)
    assert _config("--optimizer", "adam", "--lr", "0.01") == OptimizerConfig(Optimizer.ADAM, learning_rate=0.01)


def test_lr_overrides_the_compiled_adam_and_keeps_its_other_hyperparameters():
    import keras

    model = _compiled(keras.optimizers.Adam(1e-3, beta_1=0.8))
    resolved = resolve_optimizer(_config("--lr", "0.01"), model)
    assert resolved.name is Optimizer.ADAM and resolved.learning_rate == 0.01 and resolved.beta_1 == 0.8
    assert resolve_optimizer(None, model).learning_rate == pytest.approx(1e-3)


def test_without_a_compiled_optimizer_the_override_applies_to_sgd():
    resolved = resolve_optimizer(_config("--lr", "0.2", "--momentum", "0.9"), _compiled(None))
    assert (resolved.name, resolved.learning_rate, resolved.momentum) == (Optimizer.SGD, 0.2, 0.9)


def test_a_hyperparameter_the_compiled_optimizer_does_not_take_is_refused():
    import keras

    with pytest.raises(UsageError, match="--momentum does not apply to the adam optimizer, which the model was "
                       "compiled with") as info:
        resolve_optimizer(_config("--momentum", "0.9"), _compiled(keras.optimizers.Adam()))
    assert "--optimizer" in (info.value.hint or "")


def test_lr_replaces_a_compiled_learning_rate_schedule():
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model = _compiled(keras.optimizers.SGD(schedule, momentum=0.5))
    with pytest.raises(UnsupportedModelError, match="learning-rate schedule"):
        resolve_optimizer(None, model)
    resolved = resolve_optimizer(_config("--lr", "0.05"), model)
    assert (resolved.name, resolved.learning_rate, resolved.momentum) == (Optimizer.SGD, 0.05, 0.5)


def test_a_real_build_of_a_model_compiled_with_adam_uses_the_given_lr(tmp_path):
    import json

    import keras

    from litetrain.cli.app import main

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="head")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    path = tmp_path / "model.keras"
    model.save(path)
    out = tmp_path / "built"
    assert main(["build", str(path), "--lr", "0.01", "--batch-size", "4", "-o", str(out)]) == 0
    settings = json.loads((out / "build.json").read_text())["settings"]["optimizer"]
    assert settings["name"] == "adam" and settings["learning_rate"] == pytest.approx(0.01)
