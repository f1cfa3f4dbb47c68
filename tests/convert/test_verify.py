"""The post-conversion check judges TensorFlow vs TFLite against the model's scale and TFLite's own kernel noise.

A difference that TFLite's two kernel paths (XNNPACK and reference kernels) show between themselves is float32
rounding, not a mistranslation; a real mistranslation is refused whatever the tolerance.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import litetrain
from litetrain.config import Tolerances
from litetrain.convert.verify import verify_conversion
from litetrain.errors import ConversionError
from litetrain.runtime.litert import Kernels, LiteRTRunner
from litetrain.runtime.tensorflow import TensorflowModuleRunner
from tests import models

ZERO = Tolerances(atol=0.0, rtol=0.0)


def _images(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 1, (8, 8, 8, 1)).astype(np.float32)


def test_rounding_beyond_the_tolerance_passes_when_the_kernel_paths_differ_as_much(rng) -> None:
    """With zero tolerance every rounding difference exceeds it; the CNN's TF-vs-TFLite difference is within 10x
    what XNNPACK and the reference kernels differ by, so it is accepted and says why."""
    result = litetrain.build(models.small_cnn(), loss="sparse_categorical_crossentropy", batch_size=4,
                             sample_x=_images(rng), tolerances=ZERO)
    figures = result.verification
    assert figures.judged_by == "kernel noise"
    assert 0 < figures.infer_max_abs_error <= 10 * figures.kernel_noise
    assert figures.kernel_noise < 1e-4 * figures.infer_scale
    assert result.to_json()["verification"]["judged_by"] == "kernel noise"


def test_default_tolerance_needs_no_second_kernel_path(rng) -> None:
    result = litetrain.build(models.small_cnn(), loss="sparse_categorical_crossentropy", batch_size=4,
                             sample_x=_images(rng))
    assert result.verification.judged_by == "tolerance" and result.verification.kernel_noise is None


def _built(activation: str):
    keras.utils.set_random_seed(3)  # the same initial weights for both activations
    return litetrain.build(models.mlp(activation=activation), loss="sparse_categorical_crossentropy", batch_size=4)


def test_a_mistranslation_is_refused_with_the_kernel_noise_measured(rng) -> None:
    """TensorFlow's relu model against a TFLite tanh model with identical weights: both TFLite kernel paths agree
    with each other, so the difference is no rounding."""
    relu, tanh = _built("relu"), _built("tanh")
    with pytest.raises(ConversionError, match=r"differ from TensorFlow's by up to .*kernel paths differ by") as caught:
        verify_conversion(
            TensorflowModuleRunner(relu.module), LiteRTRunner(tanh.tflite), rng.standard_normal((8, 8, 8)), ZERO,
            other_kernels=lambda: LiteRTRunner(tanh.tflite, kernels=Kernels.REFERENCE),
        )
    assert "--data" in caught.value.hint


def test_build_and_check_verify_on_the_users_data(tmp_path) -> None:
    from litetrain.cli.app import main

    built = litetrain.build(models.small_cnn(), loss="sparse_categorical_crossentropy", batch_size=4, data="digits")
    assert built.verification.inputs == "data"
    assert litetrain.build(models.small_cnn(), loss="sparse_categorical_crossentropy",
                           batch_size=4).verification.inputs == "synthetic"
    checked = litetrain.check(models.small_cnn, "digits", loss="sparse_categorical_crossentropy", batch_size=4,
                              steps=3, noise_floor=False, float64=False)
    assert checked.to_json()["model"]["verification"]["inputs"] == "data"
    # A bad --data fails before any tracing, naming what was received.
    assert main(["build", "tests.models:small_cnn", "--loss", "sparse_categorical_crossentropy",
                 "--data", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
