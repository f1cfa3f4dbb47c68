"""``TrainableTfliteFromKeras``: Keras model -> TrainableModule -> SavedModel -> .tflite, verified.

This is the build stage plus the convert stage for a Keras model; ``litetrain build`` and ``check`` use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._io import atomic_write_bytes, staging_dir
from litetrain._lazy import import_module
from litetrain.config import DEFAULT_BATCH_SIZE, LossConfig, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.convert.census import OpCensus, check_variables_initialized, op_census
from litetrain.convert.converter import tflite_from_saved_model
from litetrain.convert.verify import Verification, verify_conversion
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.errors import UsageError
from litetrain.trainable.bottleneck import (
    BottleneckPlan,
    bottleneck_functions,
    plan_bottleneck,
    verify_bottleneck,
)
from litetrain.trainable.keras_objects import resolve_loss, resolve_optimizer
from litetrain.trainable.loaders import Framework, LoadedModel, load_model
from litetrain.trainable.module import LAYERS_FIT, TRAIN, TrainableModule, VariableInfo

SCHEMA_VERSION = "1.0"



@dataclasses.dataclass(frozen=True, eq=False)
class BuildResult:
    """A trainable TFLite model and the TensorFlow module it was converted from."""

    module: TrainableModule
    tflite: bytes
    census: OpCensus
    loaded: LoadedModel
    settings: dict[str, Any]
    rewritten_gradients: tuple[str, ...]
    adaptations: tuple[str, ...]
    verification: Verification | None
    timings: dict[str, float]
    output_dir: Path | None = None
    fitted: Any = None
    """The ``data`` given to :func:`build`, fitted to the train signature (FittedData), or None."""
    bottleneck: Any = None
    """The :class:`~litetrain.trainable.bottleneck.BottleneckPlan`: the feature-caching signatures, or why none."""

    @property
    def variables(self) -> tuple[VariableInfo, ...]:
        return self.module.variables_info

    def signatures(self) -> dict[str, Any]:
        """Input/output names, shapes and dtypes of every signature, read from the .tflite itself."""
        from litetrain.runtime.litert import new_interpreter

        if self.census.flex:  # the interpreter cannot even be created for Flex models
            return {}
        interp = new_interpreter(model_content=self.tflite)
        out = {}
        for key in interp.get_signature_list():
            runner = interp.get_signature_runner(key)
            out[key] = {
                "inputs": [_detail(n, d) for n, d in runner.get_input_details().items()],
                "outputs": [_detail(n, d) for n, d in runner.get_output_details().items()],
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "build",
            "source": self.loaded.source,
            "framework": self.loaded.framework.value,
            "settings": self.settings,
            "model": {"size_bytes": len(self.tflite), "ops": self.census.to_json()},
            "signatures": self.signatures(),
            "variables": [v.to_json() for v in self.variables],
            "variables_size_bytes": sum(v.size_bytes for v in self.variables),
            "frozen_layers": list(self.module.frozen_layers),
            "rewritten_gradients": list(self.rewritten_gradients),
            "adaptations": list(self.adaptations),
            "verification": self.verification.to_json() if self.verification else None,
            "bottleneck": self.bottleneck.to_json() if self.bottleneck is not None else None,
            "timings_s": self.timings,
        }


def _detail(name: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "shape": [int(v) for v in d.get("shape_signature", d["shape"])],
            "dtype": np.dtype(d["dtype"]).name}


@contextlib.contextmanager
def _saved_model_dir(output_dir: Path | None) -> Iterator[Path]:
    if output_dir is not None:
        yield output_dir / "saved_model"
        return
    with tempfile.TemporaryDirectory(prefix="litetrain-") as tmp:
        yield Path(tmp) / "saved_model"


def build(
    model: Any,
    *,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    batch_size: int | None = None,
    trainable: TrainableSpec | str | None = None,
    select_tf_ops: bool = False,
    output_dir: str | Path | None = None,
    sample_x: np.ndarray | None = None,
    data: Any = None,
    tolerances: Tolerances | None = None,
    layers: str | None = None,
) -> BuildResult:
    """Builds a trainable TFLite model (train/infer/save/restore) from a Keras model.

    Args:
        model: A Keras model object, a path (.keras, .h5, SavedModel folder) or a factory ``module:function``.
        loss: Loss (default: the compiled model's).
        optimizer: Optimizer (default: the compiled model's, else SGD with learning rate 0.01).
        batch_size: Fixed batch size of the train signature (default 32).
        trainable: Which layers train (default: all).
        select_tf_ops: Reproduce the 2021 recipe with select-TF ops instead of builtin-only gradients.
        output_dir: If given, writes ``model.tflite``, ``saved_model/`` and ``build.json`` there atomically.
        sample_x: Inputs for the post-conversion check (default: the first samples of ``data``, else seeded
            synthetic inputs).
        data: The user's data (any form :func:`litetrain.data.dataset.load_dataset` takes): the post-conversion
            check compares TensorFlow and TFLite on its first samples, inputs the model will really see.
        tolerances: For the post-conversion inference check.
        layers: ``"fit"`` (default): ``train`` runs the layers in training mode as ``model.fit`` does (batch
            statistics in BatchNormalization, active Dropout); ``"inference"``: as in ``infer``.

    Returns:
        The build result; ``bool`` checks are in ``result.verification``.

    Raises:
        LitetrainError: for any user-facing problem (bad model, unsupported layer, failed conversion check).
    """
    timings: dict[str, float] = {}
    with _timed(timings, "load_s"):
        loaded = load_model(model)
        dataset = None if data is None else load_dataset(data)  # bad data fails before any tracing
    if isinstance(loss, str):
        loss = LossConfig.parse(loss)
    if not isinstance(trainable, TrainableSpec):
        trainable = TrainableSpec.parse(trainable)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; received {batch_size}.")
    loss_cfg, opt_cfg = resolve_loss(loss, loaded.model), resolve_optimizer(optimizer, loaded.model)
    with _timed(timings, "trace_s"):
        from litetrain.trainable.adaptations import adapt_for_training

        layers = layers or LAYERS_FIT
        adaptations = adapt_for_training(loaded.model, training_mode=layers == LAYERS_FIT)
        module = TrainableModule(loaded, loss_cfg, opt_cfg, batch_size, trainable, layers=layers)
        functions, rewritten, bottleneck = _trace(module, select_tf_ops)
    fitted = _fit(module, dataset)  # data that does not fit the model fails before the conversion
    settings = _settings(module, trainable, select_tf_ops)
    out_dir = Path(output_dir) if output_dir is not None else None
    with staging_dir(out_dir) if out_dir is not None else contextlib.nullcontext(None) as staged:
        tflite = _convert(module, functions, staged, select_tf_ops, timings)
        census = op_census(tflite)
        check_variables_initialized(census)
        verification = None
        if not census.flex:
            with _timed(timings, "verify_s"):
                verification = _verify(module, tflite, _samples(module, sample_x, fitted), tolerances or Tolerances())
            with _timed(timings, "verify_bottleneck_s"):
                bottleneck = verify_bottleneck(module, tflite, bottleneck, fitted)
        result = BuildResult(
            module, tflite, census, loaded, settings, rewritten, adaptations, verification, timings, out_dir, fitted,
            bottleneck,
        )
        if staged is not None:
            (staged / "model.tflite").write_bytes(tflite)
            atomic_write_bytes(staged / "build.json", json.dumps(result.to_json(), indent=2).encode())
    return result


def _settings(module: TrainableModule, trainable: TrainableSpec, select_tf_ops: bool) -> dict[str, Any]:
    loss, opt = module.loss_config, module.optimizer_config
    return {
        "loss": {"name": loss.name.value, "from_logits": loss.from_logits},
        "optimizer": {"name": opt.name.value, **opt.keras_kwargs()},
        "batch_size": module.batch_size,
        "trainable": trainable.describe(),
        "select_tf_ops": select_tf_ops,
        "layers": module.layers,
    }


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - start


def _convert(module: TrainableModule, functions: dict[str, Any], staged: Path | None, select_tf_ops: bool,
             timings: dict[str, float]) -> bytes:
    """Saves the traced module as a SavedModel (in the output folder, or a temporary one) and converts it."""
    with _saved_model_dir(staged) as sm_dir:
        with _timed(timings, "save_s"):
            import_module("tensorflow").saved_model.save(module, str(sm_dir), signatures=functions)
        keys = list(functions)
        functions.clear()  # the traced graphs: the converter reads the SavedModel, and a peak is lower without them
        gc.collect()
        with _timed(timings, "convert_s"):
            return tflite_from_saved_model(
                sm_dir, keys, select_tf_ops=select_tf_ops,
                layer_names=[layer.name for layer in module.model.layers],
                suffixed_scopes=module.framework is Framework.KERAS3,
            )


def _trace(module: TrainableModule, select_tf_ops: bool) -> tuple[dict[str, Any], tuple[str, ...], BottleneckPlan]:
    """The concrete functions (the convention's, and the bottleneck's when the base is frozen), the forward ops whose
    gradients were rewritten to builtin ops, and the bottleneck plan."""
    from litetrain.trainable.gradients import builtin_gradients

    if select_tf_ops:
        no_cut = BottleneckPlan(reason="--select-tf-ops builds the 2021 recipe's four signatures only")
        return module.concrete_functions(path_checkpoints=True), (), no_cut
    plan = plan_bottleneck(module)
    with builtin_gradients() as log:
        functions = module.concrete_functions()
        functions.update(bottleneck_functions(module, plan, functions[TRAIN]))
    return functions, log.live_in(functions[TRAIN].graph), plan


VERIFY_SAMPLES = 8


def _fit(module: TrainableModule, dataset: Dataset | None) -> Any:
    """The user's data fitted to the train signature (:class:`~litetrain.data.fit.FittedData`), or None."""
    if dataset is None:
        return None
    from litetrain.data.fit import fit_to_slots

    return fit_to_slots(dataset, *module.data_slots())


def _samples(module: TrainableModule, sample_x: Any, fitted: Any) -> tuple[Any, str]:
    """Inputs for the post-conversion check and where they come from ("given", "data" or "synthetic")."""
    from litetrain.runtime.base import record

    if sample_x is not None:
        return sample_x, "given"
    if fitted is None:
        return record(module.sample_inputs(VERIFY_SAMPLES)), "synthetic"
    return fitted.x[:VERIFY_SAMPLES], "data"


def _verify(module: TrainableModule, tflite: bytes, samples: tuple[Any, str], tol: Tolerances) -> Verification:
    from litetrain.runtime.litert import Kernels, LiteRTRunner
    from litetrain.runtime.tensorflow import TensorflowModuleRunner

    sample_x, source = samples
    figures = verify_conversion(
        TensorflowModuleRunner(module), LiteRTRunner(tflite), sample_x, tol,
        other_kernels=lambda: LiteRTRunner(tflite, kernels=Kernels.REFERENCE, name="tflite-reference-kernels"),
    )
    return dataclasses.replace(figures, inputs=source)
