"""The Python API: ``build``, ``check``, ``compare`` and ``demo`` (what the CLI commands call)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.config import LossConfig, Optimizer, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.data.dataset import Dataset, load_dataset

DEFAULT_STEPS = 100
DEMO_STEPS = 300
DEMO_DATA = "digits:28x28"
DEMO_OPTIMIZER = OptimizerConfig(Optimizer.SGD, learning_rate=0.05)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and TensorFlow (via Keras) so factories build the same initial weights every run."""
    from litetrain._lazy import import_module
    from litetrain.config import check_seed

    import_module("keras").utils.set_random_seed(check_seed(seed))


def build(model: Any, **kwargs: Any) -> Any:
    """Builds a trainable TFLite model from a Keras model; see :func:`litetrain.trainable.builder.build`."""
    from litetrain.trainable.builder import build as _build

    return _build(model, **kwargs)


def check(
    model: Any,
    data: str | Dataset | None = None,
    *,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    trainable: TrainableSpec | str | None = None,
    tolerances: Tolerances | None = None,
    select_tf_ops: bool = False,
    layers: str | None = None,
    noise_floor: bool = True,
    float64: bool = True,
    fail_on: Any = None,
    repeats: int | None = None,
    kind: str = "check",
    runtimes: str | Sequence[str] | None = None,
) -> Any:
    """Builds, converts, trains TensorFlow and TFLite twins on identical batches, and compares them.

    Args:
        model: Keras model object, path or factory ``module:function``.
        data: ``digits`` (default), ``digits:HxW``, a data file or folder (``--data``), a :class:`Dataset`, or
            arrays: ``(x, y)`` (split 80/20) or ``(x, y, x_test, y_test)``.
        loss, optimizer, batch_size, trainable, select_tf_ops, layers: As for :func:`build`.
        steps, epochs: Training length (default 100 steps).
        seed: Seeds weight initialization of factories and the batch order (default 0).
        tolerances: atol/rtol of the fixed-tolerance checks (they decide the verdict without a noise floor).
        noise_floor: Measure the float32 noise floor and judge the twins against it (default on).
        float64: Also train a float64 reference twin and report each runtime's distance to it (default on).
        fail_on: Verdicts that fail (``bool(result)`` False, exit code 1): a set of
            :class:`~litetrain.comparison.verdict.Verdict` or a comma-separated string.
        repeats: Also train the twins over K more seeds (re-drawn initial weights and batch order) and report the
            spread of the final accuracy and a 95% interval of the difference (``result.repeats``); no effect on
            the verdict.
        runtimes: LiteRT runtimes that also train, each judged alone (``interpreter``, ``compiled``; ``result.runtimes``).

    Returns:
        A :class:`~litetrain.comparison.result.ComparisonResult`; truthy when the verdict passed.
    """
    from litetrain.comparison.repeats import repeats_count
    from litetrain.comparison.runtimes import parse_runtimes
    from litetrain.comparison.session import run_comparison
    from litetrain.data.batching import plan_batches
    from litetrain.runtime.litert import LiteRTRunner
    from litetrain.runtime.tensorflow import TensorflowModuleRunner
    from litetrain.trainable.builder import build as _build

    repeats, runtimes = repeats_count(repeats), parse_runtimes(runtimes)
    seed = 0 if seed is None else int(seed)
    tol = tolerances or Tolerances()
    fail = _fail_on(fail_on)
    if steps is None and epochs is None:
        steps = DEFAULT_STEPS
    dataset = load_dataset(data)
    seed_everything(seed)
    result = _build(
        model, loss=loss, optimizer=optimizer, batch_size=batch_size, trainable=trainable,
        select_tf_ops=select_tf_ops, data=dataset, tolerances=tol, layers=layers,
    )
    module = result.module
    t0 = time.perf_counter()
    candidate = LiteRTRunner(result.tflite)  # raises RuntimeUnavailableError for Flex models
    reference = TensorflowModuleRunner(module)
    initial = reference.get_weights() if repeats or len(runtimes) > 1 else None  # before training, as both twins
    fitted = result.fitted  # the build fitted the data once
    plan = plan_batches(len(fitted.x), module.batch_size, steps=steps, epochs=epochs, seed=seed)
    model_info = _built_model_info(result)
    settings = _built_settings(result, plan, epochs, seed, dataset.name)
    twins = _built_twins(result, reference, candidate, fitted, float64=float64, noise_floor=noise_floor)
    comparison = run_comparison(
        kind=kind, twins=twins, data=fitted, plan=plan, tol=tol, from_logits=module.loss_config.from_logits,
        model_info=model_info, data_info=dataset.describe(), settings=settings, require_exact_initial_weights=True,
        fail_on=fail, timings={**result.timings, "setup_s": time.perf_counter() - t0}, notes=_layer_notes(module),
    )
    return _with_extras(comparison, result, reference, candidate, fitted, plan, tol, initial,
                        repeats=repeats, runtimes=runtimes, steps=steps, epochs=epochs, seed=seed)


def _with_extras(
    comparison: Any, built: Any, reference: Any, candidate: Any, fitted: Any, plan: Any, tol: Tolerances,
    initial: dict[str, np.ndarray] | None, *, repeats: int, runtimes: tuple[str, ...], steps: int | None,
    epochs: int | None, seed: int,
) -> Any:
    """The check's comparison with ``--repeats`` and more ``--runtimes`` added, each when asked for; ``initial`` are
    the weights both twins started from."""
    from litetrain.comparison.repeats import keras_initial_weights

    module = built.module
    if repeats:
        assert initial is not None
        comparison = _with_repeats(comparison, reference, candidate, fitted, module.batch_size, steps, epochs, seed,
                                   repeats, lambda: keras_initial_weights(module, initial),
                                   module.loss_config.from_logits)
    return _with_runtimes(comparison, runtimes, built.tflite, reference, initial, fitted, plan, tol)


def _with_runtimes(
    comparison: Any, runtimes: tuple[str, ...], model: bytes, reference: Any, initial: dict[str, np.ndarray] | None,
    fitted: Any, plan: Any, tol: Tolerances,
) -> Any:
    """``comparison`` with a row per ``--runtimes`` runtime (:mod:`litetrain.comparison.runtimes`), when more than
    the Interpreter were asked for; ``initial`` are the weights the twins started from."""
    if len(runtimes) < 2:
        return comparison
    from litetrain.comparison.runtimes import with_runtimes

    if initial is None or not initial:
        from litetrain.errors import UsageError

        raise UsageError("--runtimes needs save/restore signatures, to start every runtime from the same weights.",
                         hint="Export save() and restore() (see the signature convention), or omit --runtimes.")
    return with_runtimes(comparison, runtimes, model=model, reference=reference, initial=initial, data=fitted,
                         plan=plan, tol=tol)


def _built_model_info(result: Any) -> dict[str, Any]:
    """The ``model`` section of a check: the built model's source, size, ops, signatures and variables."""
    module = result.module
    return {
        "source": result.loaded.source,
        "framework": result.loaded.framework.value,
        "size_bytes": len(result.tflite),
        "ops": result.census.to_json(),
        "signatures": result.signatures(),
        "variables": [v.to_json() for v in result.variables],
        "frozen_layers": list(module.frozen_layers),
        "bottleneck": result.bottleneck.to_json() if result.bottleneck is not None else None,
        "rewritten_gradients": list(result.rewritten_gradients),
        "adaptations": list(result.adaptations),
        "verification": result.verification.to_json() if result.verification else None,
    }


def _built_settings(result: Any, plan: Any, epochs: int | None, seed: int, data_name: str) -> dict[str, Any]:
    """The ``settings`` of a check: the build's, the training length and seed, and every output's loss."""
    module = result.module
    settings = {
        **result.settings,
        "steps": plan.steps,
        "epochs": epochs,
        "seed": seed,
        "data": data_name,
        "dropout": _dropout_note(module.layers),
    }
    if len(module.outputs) > 1:  # settings.loss is the first output's; every output's loss and weight:
        settings["losses"] = [{"output": o.name, "target": o.target, "name": o.loss.name.value,
                               "from_logits": o.loss.from_logits, "weight": o.weight} for o in module.outputs]
    return settings


def _built_twins(result: Any, reference: Any, candidate: Any, fitted: Any, *, float64: bool,
                 noise_floor: bool) -> Any:
    """The twins of a built model: its TFLite and TensorFlow runners, the float64 twin and the perturbed runs."""
    from litetrain.comparison.locate import locate_forward
    from litetrain.comparison.noise import standard_perturbations
    from litetrain.comparison.session import Twins
    from litetrain.runtime.litert import LiteRTRunner

    module = result.module
    weight_names = {v.name for v in result.variables if v.role in ("weight", "state")}  # BatchNorm statistics too
    return Twins(
        reference=reference,
        candidate=candidate,
        fresh_candidate=lambda **kw: LiteRTRunner(result.tflite, **kw),
        float64=_float64_runner(module, fitted.x[:8]) if float64 else None,
        weight_names=weight_names,
        layer_of={v.name: v.path.split("/")[-2] if "/" in v.path else v.path for v in result.variables},
        perturbations=standard_perturbations(
            reference, lambda **kw: LiteRTRunner(result.tflite, **kw), weight_names,
            row_order_is_noop=not module.random_draws) if noise_floor else [],
        forward_locator=(lambda x: locate_forward(module.model, result.tflite, x)) if len(module.inputs) == 1 else None,
    )


def _with_repeats(
    comparison: Any, reference: Any, candidate: Any, fitted: Any, batch_size: int, steps: int | None,
    epochs: int | None, seed: int, k: int, starts: Any, from_logits: bool | None,
) -> Any:
    """Runs the repeats after the main comparison and attaches them (and their time) to its result.

    ``starts()`` returns the initial weights per seed and what varies (see :mod:`litetrain.comparison.repeats`).
    """
    from litetrain.comparison.repeats import run_repeats

    t0 = time.perf_counter()
    weights_for, varies = starts()
    rep = run_repeats(reference, candidate, fitted, batch_size, steps=steps, epochs=epochs, base_seed=seed, k=k,
                      initial_weights=weights_for, from_logits=from_logits, varies=varies)
    timings = {**comparison.timings, "repeats_s": time.perf_counter() - t0}
    return dataclasses.replace(comparison, repeats=rep.to_json(), timings=timings)


def _pair_slots(runner: Any) -> tuple[list[Any], list[Any]]:
    """The inputs and targets of a pair's train signature; each target trains the infer output of its name
    (``y_cls`` -> ``cls``; a single ``y``, the primary output), whose shape a probe on zeros gives."""
    from litetrain.data.fit import Slot

    x_info, y_info = runner.train_inputs
    in_shape = tuple(d or 1 for d in runner.infer_input.shape[1:])
    probe = runner.infer(np.zeros((1, *in_shape), runner.infer_input.dtype))
    inputs = [Slot(f, _unique(f.name, f.name[2:] if f.name.startswith("x_") else f.name)) for f in x_info.fields]
    targets = []
    for f in y_info.fields:
        output = f.name[2:] if f.name.startswith("y_") and f.name[2:] in probe else runner.primary_output
        targets.append(Slot(f, _unique(f.name, output), output, tuple(probe[output].shape[1:]), None))
    return inputs, targets


def _unique(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _full(*runners: Any) -> bool:
    """Whether a pair must train full batches only (a fixed-batch train signature without a count input)."""
    return not all(r.takes_partial_batches for r in runners)


def _layer_notes(module: Any) -> tuple[str, ...]:
    """The explanation's notes on the layers' mode: what ``--layers inference`` leaves out of ``model.fit``."""
    from litetrain.trainable.fit_gap import inference_mode_note

    note = inference_mode_note(module.model, module.layers)
    return (note,) if note else ()


def _dropout_note(layers: str) -> str:
    if layers == "inference":
        return "inactive in both twins (--layers inference: layers run with training=False)"
    return ("active in train, as in model.fit, with masks both twins draw alike from the step counter "
            "(counter-based hash); inactive in infer")


def _fail_on(value: Any) -> Any:
    from litetrain.comparison.verdict import Verdict, parse_fail_on

    if value is None or isinstance(value, str):
        return parse_fail_on(value)
    return frozenset(Verdict(v) for v in value)


def _float64_runner(module: Any, sample_x: np.ndarray) -> Any:
    """The float64 twin, checked against the float32 model on ``sample_x`` (the user's data, in the train
    signature's layout), or None (with a warning) when the model cannot be cloned faithfully in float64."""
    import warnings

    from litetrain.errors import UnsupportedModelError
    from litetrain.runtime.tensorflow import TensorflowModuleRunner
    from litetrain.trainable.precision import float64_module

    per_input = [sample_x[i.name] for i in module.inputs] if sample_x.dtype.names else [sample_x]
    try:
        return TensorflowModuleRunner(float64_module(module, per_input), name="float64")
    except UnsupportedModelError as exc:
        warnings.warn(f"No float64 reference: {exc.message}", stacklevel=3)
        return None


def compare(
    reference: str | Path,
    candidate: str | Path,
    data: str | Dataset | None = None,
    *,
    batch_size: int | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    tolerances: Tolerances | None = None,
    noise_floor: bool = True,
    fail_on: Any = None,
    repeats: int | None = None,
    runtimes: str | Sequence[str] | None = None,
) -> Any:
    """Compares an existing pair: a reference SavedModel and a candidate .tflite with the signature convention.

    The candidate's weights as converted are first compared with the reference's (a difference is reported and
    fails the verdict), then both are set to the reference's weights and trained on identical batches.
    With ``repeats`` K, both are trained again over K more batch orders from the reference's initial weights
    (without the Keras model they cannot be re-drawn) and the spread of the final accuracy is reported.
    ``runtimes``: as for :func:`check` (the candidate trained in more LiteRT runtimes, each judged alone).
    """
    from litetrain.comparison.noise import standard_perturbations
    from litetrain.comparison.repeats import VARIES_ORDER, fixed_initial_weights, repeats_count
    from litetrain.comparison.runtimes import parse_runtimes
    from litetrain.comparison.session import Twins, run_comparison
    from litetrain.convert.census import check_variables_initialized, op_census
    from litetrain.data.batching import plan_batches
    from litetrain.data.fit import fit_to_slots
    from litetrain.runtime.litert import LiteRTRunner, read_model
    from litetrain.runtime.tensorflow import SavedModelRunner

    repeats, runtimes = repeats_count(repeats), parse_runtimes(runtimes)
    seed = 0 if seed is None else int(seed)
    tol = tolerances or Tolerances()
    if steps is None and epochs is None:
        steps = DEFAULT_STEPS
    dataset = load_dataset(data)
    model_bytes = read_model(candidate)
    census = op_census(model_bytes)
    cand = LiteRTRunner(model_bytes)
    check_variables_initialized(census)
    ref = SavedModelRunner(reference)
    batch = _pair_batch_size(ref, cand, batch_size, repeats)
    initial = ref.get_weights() if repeats or len(runtimes) > 1 else None  # before training
    fitted = fit_to_slots(dataset, *_pair_slots(ref))
    plan = plan_batches(len(fitted.x), batch, steps=steps, epochs=epochs, seed=seed, drop_remainder=_full(ref, cand))
    model_info = {
        "reference": str(reference),
        "candidate": str(candidate),
        "size_bytes": len(model_bytes),
        "ops": census.to_json(),
    }
    settings = {"batch_size": batch, "steps": plan.steps, "epochs": epochs, "seed": seed, "data": dataset.name}
    factory = lambda **kw: LiteRTRunner(model_bytes, **kw)  # noqa: E731
    twins = Twins(
        reference=ref,
        candidate=cand,
        fresh_candidate=factory,
        perturbations=standard_perturbations(ref, factory, set()) if noise_floor else [],
    )
    comparison = run_comparison(
        kind="compare",
        twins=twins,
        data=fitted,
        plan=plan,
        tol=tol,
        from_logits=None,
        model_info=model_info,
        data_info=dataset.describe(),
        settings=settings,
        require_exact_initial_weights=False,
        check_loss_arguments=True,
        fail_on=_fail_on(fail_on),
    )
    if repeats:  # initial is set
        comparison = _with_repeats(comparison, ref, cand, fitted, batch, steps, epochs, seed, repeats,
                                   lambda: (fixed_initial_weights(initial or {}), VARIES_ORDER), None)
    return _with_runtimes(comparison, runtimes, model_bytes, ref, initial, fitted, plan, tol)


def _pair_batch_size(ref: Any, cand: Any, batch_size: int | None, repeats: int) -> int:
    """The batch size of a pair: the reference's train signature's, else ``batch_size`` (default 32).

    Raises:
        UsageError: a ``batch_size`` other than the signature's, or repeats without save/restore signatures.
    """
    from litetrain.errors import UsageError

    fixed = ref.train_batch_size
    if batch_size is not None and fixed is not None and batch_size != fixed:
        raise UsageError(
            f"--batch-size {batch_size} differs from the reference's train signature batch size {fixed}.",
            hint="Omit --batch-size; it is read from the model.",
        )
    if repeats and not (ref.weight_infos and cand.weight_infos):
        raise UsageError(
            "--repeats needs both models to have save/restore signatures, to start every repeat from the same "
            "weights; one of them has none.",
            hint="Export save() and restore() (see the signature convention), or omit --repeats.",
        )
    return fixed or batch_size or 32


def demo(
    *,
    steps: int | None = None,
    seed: int | None = None,
    tolerances: Tolerances | None = None,
    repeats: int | None = None,
    **options: Any,
) -> Any:
    """The main job on the bundled data: the 2021 post's model, SGD, digits resized to 28x28, twin training."""
    from litetrain.models import tutorial_2021

    return check(
        tutorial_2021,
        DEMO_DATA,
        loss=LossConfig.parse("categorical_crossentropy", from_logits=True),
        optimizer=DEMO_OPTIMIZER,
        batch_size=32,
        steps=DEMO_STEPS if steps is None else steps,
        seed=seed,
        tolerances=tolerances,
        repeats=repeats,
        kind="demo",
        **options,
    )
