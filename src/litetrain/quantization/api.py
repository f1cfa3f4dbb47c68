"""``quantize``: every quantization mode of a model, measured for size, accuracy, latency and trainability.

For a trainable model (train/infer/save/restore) each mode is applied to the whole module and the quantized
model is trained next to float32 TensorFlow on identical batches (the twin comparison and its verdict); modes
that would break training are refused unless asked for, and then shown not to train. The deploy path follows:
``infer`` alone, exported from the weights after on-device training, quantized in every mode (int8 included),
with per-layer errors and selective quantization. For an inference model only the second part runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.config import LossConfig, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.errors import UsageError
from litetrain.quantization.failures import MODE_ERRORS, ModeFailure, Stage, mode_failure
from litetrain.quantization.modes import QuantMode, parse_modes
from litetrain.quantization.recommend import (
    DEFAULT_MAX_ACCURACY_DROP,
    chance_level,
    excluded_because,
    recommend,
    within_budget,
)
from litetrain.quantization.result import ModeReport, QuantizeResult, Status

DEFAULT_STEPS = 100
LAYER_PROBE_SAMPLES = 64

REFUSED_REASON = (
    "{mode} quantizes the activations of every op, and a trainable model's train step is ops too: the converter "
    "turns the whole training graph (forward pass, gradients, optimizer update) into {mode}, and the model then "
    "no longer learns like float32, without any error. {measured} Refused; quantize the frozen part only with "
    "--mode dynamic and --trainable last:N, or deploy the {mode} inference model (the 'deploy' section), or pass "
    "--allow-untrainable to build it anyway and see it measured.")
REFUSED_MEASURED = {
    QuantMode.INT8: "Measured: the loss stops falling (SGD), or Adam's update divides by an int8 zero and the "
                    "interpreter fails.",
    QuantMode.INT16X8: "Measured: the converter cannot even build it (no calibration range for the int64 step "
                       "counter).",
}

MODE_NOTES = {
    QuantMode.NONE: "float32 reference",
    QuantMode.DYNAMIC: "constant (frozen) weights stored as int8; trainable variables stay float32",
    QuantMode.FLOAT16: "initial values of the variables stored as float16: training starts from rounded weights "
                       "(compute stays float32)",
    QuantMode.INT8: "the train step itself runs in int8",
    QuantMode.INT16X8: "the train step itself runs with int16 activations and int8 weights",
}


def quantize(
    model: Any,
    data: str | Dataset | None = None,
    *,
    modes: str | list[str] | tuple[QuantMode, ...] | None = None,
    inference_only: bool | None = None,
    representative: str | Path | Dataset | np.ndarray | None = None,
    samples: int | None = None,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    batch_size: int | None = None,
    trainable: TrainableSpec | str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    max_accuracy_drop: float | None = None,
    per_layer: bool = True,
    allow_untrainable: bool = False,
    noise_floor: bool = True,
    output_dir: str | Path | None = None,
) -> QuantizeResult:
    """Quantizes ``model`` in each mode and measures what every mode costs and whether training survives it.

    Args:
        model: A Keras model, a ``.keras``/``.h5``/tf_keras SavedModel path, or a factory ``module:function``.
        data: Held-out accuracy and training data: ``digits`` (default), ``digits:HxW`` or an ``.npz``.
        modes: ``all`` (default), or some of none, dynamic, float16, int8, int16x8 (none is always measured).
        inference_only: Quantize ``infer`` alone. Default: False when the model can train (a loss is given or
            compiled), else True.
        representative: Calibration data for int8/int16x8 (default: the training split of ``data``).
        samples: Calibration samples (default 100).
        loss, optimizer, batch_size, trainable: As for :func:`litetrain.build`.
        steps: Training steps of the twin comparison of trainable models (default 100).
        seed: Seeds initialization of factories, batch order and the choice of calibration samples (default 0).
        max_accuracy_drop: The accuracy budget in percentage points (default 1.0).
        per_layer: Measure per-layer errors and try selective int8 (inference models, the deploy path).
        allow_untrainable: Build int8/int16x8 trainable models instead of refusing, to measure that they do not
            train.
        noise_floor: Judge the twins against the float32 noise floor (as ``check``); off: fixed tolerances.
        output_dir: Also write every quantized ``.tflite`` there (atomically).

    Returns:
        A :class:`QuantizeResult`.

    Raises:
        LitetrainError: bad model, data, representative data, or options.
    """
    t_start = time.perf_counter()
    chosen = parse_modes(modes)
    budget = _budget(max_accuracy_drop)
    seed = 0 if seed is None else int(seed)
    _check_arguments(model, steps, output_dir)
    from litetrain.api import seed_everything
    from litetrain.trainable.loaders import load_model
    from litetrain.trainable.module import require_single_io

    dataset = load_dataset(data)
    seed_everything(seed)
    loaded = load_model(model)
    require_single_io(loaded.model, "litetrain quantize", float_input=True)
    if isinstance(loss, str):
        loss = LossConfig.parse(loss)
    notes: list[str] = []
    if inference_only is None:
        inference_only = not _can_train(loss, loaded.model, notes)
    settings = {
        "modes": [m.value for m in chosen], "inference_only": inference_only,
        "max_accuracy_drop_percentage_points": budget * 100, "seed": seed, "samples": samples,
        "allow_untrainable": allow_untrainable, "per_layer": per_layer, "noise_floor": noise_floor,
    }
    job = _Job(loaded, dataset, chosen, budget, seed, per_layer, notes)
    with tempfile.TemporaryDirectory(prefix="litetrain-quantize-") as tmp:
        if inference_only:
            result = job.inference_only(Path(tmp), representative, samples, loss, settings)
        else:
            result = job.trainable(Path(tmp), representative, samples, loss, optimizer, batch_size, trainable,
                                   steps, allow_untrainable, noise_floor, settings)
    result.timings["total_s"] = time.perf_counter() - t_start
    if output_dir is not None:
        result = _write_models(result, job.models, Path(output_dir))
    return result


def _check_arguments(model: Any, steps: int | None, output_dir: str | Path | None) -> None:
    """Refuses what quantize cannot do before any work: too few steps, a converted model, an unusable output dir."""
    from litetrain._io import check_output_dir

    if steps is not None and steps < 20:
        raise UsageError(f"--steps must be at least 20 to tell whether a model trains; received {steps}.")
    _reject_converted(model)
    if output_dir is not None:
        check_output_dir(Path(output_dir))


def _can_train(loss: LossConfig | None, model: Any, notes: list[str]) -> bool:
    """Whether the model has a loss (given or compiled); without one, a note says only inference is quantized."""
    from litetrain.trainable.keras_objects import resolve_loss

    try:
        resolve_loss(loss, model)
    except UsageError:
        notes.append("No loss given and the model was not compiled with one, so only the inference model was "
                     "quantized; pass --loss to also quantize the trainable model.")
        return False
    return True


def _budget(value: float | None) -> float:
    pp = DEFAULT_MAX_ACCURACY_DROP if value is None else float(value)
    if not 0 <= pp <= 100:
        raise UsageError(f"--max-accuracy-drop is in percentage points, from 0 to 100; received {value}.")
    return pp / 100.0


def _reject_converted(model: Any) -> None:
    if isinstance(model, str | Path) and str(model).endswith(".tflite"):
        raise UsageError(
            f"{str(model)!r} is already a TFLite model; quantization happens while converting from TensorFlow, so "
            "it needs the Keras model (or a SavedModel) the .tflite was made from.",
            hint="Pass the .keras file, tf_keras .h5/SavedModel, or factory 'module:function' instead.",
        )


def _write_models(result: QuantizeResult, models: dict[str, bytes], out: Path) -> QuantizeResult:
    from litetrain._io import staging_dir

    with staging_dir(out) as staged:
        for name, content in models.items():
            (staged / name).write_bytes(content)
    return dataclasses.replace(result, files={name: str(out / name) for name in models})


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t


@dataclasses.dataclass
class _Job:
    """State shared by the steps of one ``quantize`` call."""

    loaded: Any
    dataset: Dataset
    modes: tuple[QuantMode, ...]
    budget: float
    seed: int
    per_layer: bool
    notes: list[str]
    models: dict[str, bytes] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    # -- inference models ---------------------------------------------------------------------------------
    def inference_only(self, tmp: Path, representative: Any, samples: int | None, loss: LossConfig | None,
                       settings: dict[str, Any]) -> QuantizeResult:
        from litetrain.quantization.representative import load_representative
        from litetrain.trainable.keras_objects import resolve_loss
        from litetrain.trainable.module import _io_spec

        model = self.loaded.model
        input_shape, _, output_shape = _io_spec(model)
        loss_cfg = None
        with contextlib.suppress(UsageError):
            loss_cfg = resolve_loss(loss, model)
        fitted = _fit_for_inference(self.dataset, input_shape, output_shape, loss_cfg)
        rep = load_representative(representative, input_shape, samples=samples, default=self.dataset,
                                  seed=self.seed)
        reference = np.asarray(model(fitted.x_test, training=False))
        from_logits = loss_cfg.from_logits if loss_cfg else None
        reports = self.inference_modes(tmp, model, fitted, reference, from_logits, rep)
        return QuantizeResult(
            model=self._model_info("inference", reports),
            data=self.dataset.describe(),
            representative=rep.describe(),
            settings=settings,
            modes=reports,
            recommendation=recommend(reports, self.budget, trainable=False, chance=_chance(fitted)),
            deploy=None,
            deploy_recommendation=None,
            notes=tuple(self.notes),
            environment=_environment(),
            timings=self.timings,
        )

    def inference_modes(self, tmp: Path, model: Any, fitted: Any, reference: np.ndarray, from_logits: bool | None,
                        rep: Any, prefix: str = "", label: str = "inference") -> dict[str, ModeReport]:
        """Exports ``infer`` with the model's current weights and measures every mode of it.

        A mode that the converter cannot build or the interpreter cannot run is a ``failed`` row naming ``label``
        (``inference`` or ``deploy``); the other modes are measured all the same.
        """
        from litetrain.quantization.inference import save_inference_model

        with _timed(self.timings, "export_s"):
            sm_dir = save_inference_model(model, self.loaded.framework, tmp / f"{prefix}inference")
        calibration = rep.infer_samples()
        converted = self._convert_inference(sm_dir, calibration, label)
        float_model = converted.get(QuantMode.NONE)
        float_model = float_model if isinstance(float_model, bytes) else None
        float_size = len(float_model) if float_model is not None else None
        probe = _InferenceProbe(fitted, reference, from_logits, [layer.name for layer in model.layers], sm_dir,
                                calibration, float_model)
        reports: dict[str, ModeReport] = {}
        for mode, content in converted.items():
            if isinstance(content, ModeFailure):
                reports[mode.value] = _failed_report(mode, "inference", content, None, float_size)
                continue
            self.models[f"{prefix}inference_{mode.value}.tflite"] = content
            try:
                reports[mode.value] = self._measure_inference(mode, content, probe, prefix)
            except MODE_ERRORS as exc:
                failure = mode_failure(exc, model=label, stage=Stage.INTERPRETER)
                reports[mode.value] = _failed_report(mode, "inference", failure, len(content), float_size)
        return reports

    def _convert_inference(self, sm_dir: Path, calibration: Any, label: str) -> dict[QuantMode, bytes | ModeFailure]:
        from litetrain.quantization.conversion import convert_saved_model
        from litetrain.quantization.inference import INFER

        converted: dict[QuantMode, bytes | ModeFailure] = {}
        with _timed(self.timings, "convert_s"):
            for mode in self.modes:
                try:
                    converted[mode] = convert_saved_model(sm_dir, [INFER], mode, calibration,
                                                          resource_variables=False)
                except MODE_ERRORS as exc:
                    converted[mode] = mode_failure(exc, model=label, stage=Stage.CONVERSION)
        return converted

    def _measure_inference(self, mode: QuantMode, content: bytes, probe: _InferenceProbe, prefix: str) -> ModeReport:
        """Error, accuracy, latency and per-layer error of one converted inference model (selective int8 too)."""
        from litetrain.quantization.inference import InferenceRunner, compare_outputs, latency_us
        from litetrain.quantization.layers import layer_errors

        fitted = probe.fitted
        with _timed(self.timings, "measure_s"):
            figures = compare_outputs(InferenceRunner(content).infer(fitted.x_test), probe.reference, probe.accuracy,
                                      probe.from_logits)
            latency = latency_us(content, fitted.x_test[:1])
        float_size = len(probe.float_model) if probe.float_model is not None else None
        report = ModeReport(mode, "inference", Status.MEASURED, len(content), float_size, figures, latency,
                            None, _inference_note(mode))
        if not self.per_layer or mode is QuantMode.NONE or probe.float_model is None:
            return report
        try:
            with _timed(self.timings, "per_layer_s"):
                layers = tuple(layer_errors(probe.float_model, content, fitted.x_test[:LAYER_PROBE_SAMPLES],
                                            probe.names))
        except MODE_ERRORS as exc:
            reason = mode_failure(exc, model="inference", stage=Stage.INTERPRETER).reason
            return dataclasses.replace(report, note=f"{report.note}; per-layer error unavailable: {reason}")
        report = dataclasses.replace(report, layers=layers)
        if mode is QuantMode.INT8 and not within_budget(report, self.budget) and probe.accuracy is not None:
            report = self._selective(report, probe, prefix)
        return report

    def _selective(self, report: ModeReport, probe: _InferenceProbe, prefix: str) -> ModeReport:
        """int8 with the worst layers kept in float until the budget is met (its failure is a note, not a row)."""
        from litetrain.quantization.inference import InferenceRunner, compare_outputs
        from litetrain.quantization.layers import selective_int8

        def evaluate(candidate: bytes) -> tuple[float | None, float | None]:
            f = compare_outputs(InferenceRunner(candidate).infer(probe.fitted.x_test), probe.reference,
                                probe.accuracy, probe.from_logits)
            return f.accuracy, f.accuracy_drop

        assert probe.float_model is not None
        try:
            with _timed(self.timings, "selective_s"):
                sel = selective_int8(str(probe.sm_dir), probe.calibration, probe.float_model,
                                     probe.fitted.x_test[:LAYER_PROBE_SAMPLES], evaluate, self.budget, probe.names)
        except MODE_ERRORS as exc:
            reason = mode_failure(exc, model="inference", stage=Stage.CONVERSION).reason
            return dataclasses.replace(report, note=f"{report.note}; selective int8 failed: {reason}")
        if sel.kept_in_float:
            self.models[f"{prefix}inference_int8_selective.tflite"] = sel.model
        return dataclasses.replace(report, selective=sel)

    # -- trainable models ---------------------------------------------------------------------------------
    def trainable(self, tmp: Path, representative: Any, samples: int | None, loss: LossConfig | None,
                  optimizer: OptimizerConfig | None, batch_size: int | None, trainable: Any, steps: int | None,
                  allow_untrainable: bool, noise_floor: bool, settings: dict[str, Any]) -> QuantizeResult:
        from litetrain.data.batching import plan_batches
        from litetrain.data.fit import fit_to_model
        from litetrain.quantization.representative import load_representative
        from litetrain.runtime.base import TensorInfo
        from litetrain.runtime.tensorflow import TensorflowModuleRunner
        from litetrain.trainable.builder import build

        with _timed(self.timings, "build_s"):
            built = build(self.loaded.model, loss=loss, optimizer=optimizer, batch_size=batch_size,
                          trainable=trainable, output_dir=tmp / "trainable")
        module = built.module
        reference = TensorflowModuleRunner(module)
        x_info = TensorInfo("x", (module.batch_size, *module.input_shape), np.dtype(np.float32))
        y_info = TensorInfo("y", tuple(module.y_spec.shape.as_list()), module.y_dtype)
        fitted = fit_to_model(self.dataset, x_info, y_info, module.output_shape, module.loss_config)
        plan = plan_batches(len(fitted.x), module.batch_size, steps=steps or DEFAULT_STEPS, seed=self.seed)
        rep = load_representative(representative, module.input_shape, samples=samples, default=self.dataset,
                                  seed=self.seed)
        initial = reference.get_weights()
        calibration = rep.trainable_samples(module.batch_size, fitted.y, initial)
        float_model = built.tflite
        sm_dir = tmp / "trainable" / "saved_model"
        reports: dict[str, ModeReport] = {}
        trained: dict[str, np.ndarray] | None = None
        run = _TrainableRun(module, built, reference, fitted, plan, noise_floor, initial, sm_dir, calibration,
                            float_model)
        for mode in self.modes:
            if mode.quantizes_activations and not allow_untrainable:
                reports[mode.value] = ModeReport(mode, "trainable", Status.REFUSED, None, len(float_model), None,
                                                 None, False, REFUSED_REASON.format(
                                                     mode=mode.value, measured=REFUSED_MEASURED.get(mode, "")))
                continue
            report, weights = self._trainable_mode(mode, run, reports.get("none"))
            if mode is QuantMode.NONE:
                trained = weights
            reports[mode.value] = report
        deploy = None
        if trained is not None:
            # The deploy path: the weights trained on device (the float32 TFLite twin), as an inference model.
            module.set_weights(trained)
            reference_out = reference.infer(fitted.x_test)[reference.primary_output]
            deploy = self.inference_modes(tmp, module.model, fitted, reference_out, module.loss_config.from_logits,
                                          rep, prefix="deploy_", label="deploy")
        elif "none" in reports:
            self.notes.append("The float32 trainable model could not be trained in TFLite (its row says why), so there "
                              "are no trained weights to export: the deploy section was skipped.")
        recommendation = recommend(reports, self.budget, trainable=True, chance=_chance(fitted))
        if recommendation is None:
            excluded = [f"{r.mode.value} ({why})" for r in reports.values() if r.has_figures
                        and (why := excluded_because(r, trainable=True))]
            if excluded:
                self.notes.append("No trainable mode is recommended: a mode whose twin verdict is inconsistent or "
                                  f"unhealthy, or that does not train, is never recommended: {', '.join(excluded)}.")
        info = self._model_info("trainable", reports)
        info.update({"trainable": built.settings["trainable"], "frozen_layers": list(module.frozen_layers),
                     "variables_size_bytes": sum(v.size_bytes for v in built.variables)})
        return QuantizeResult(
            model=info,
            data=self.dataset.describe(),
            representative=rep.describe(),
            settings={**settings, **built.settings, "steps": plan.steps, "data": self.dataset.name},
            modes=reports,
            recommendation=recommendation,
            deploy=deploy,
            deploy_recommendation=(recommend(deploy, self.budget, trainable=False, chance=_chance(fitted))
                                   if deploy else None),
            notes=tuple(self.notes),
            environment=_environment(),
            timings=self.timings,
        )

    def _trainable_mode(self, mode: QuantMode, run: _TrainableRun, float_report: ModeReport | None,
                        ) -> tuple[ModeReport, dict[str, Any] | None]:
        """Converts, loads and twin-trains one mode of the trainable model; a failing step makes a ``failed`` row."""
        from litetrain.quantization.conversion import convert_saved_model, same_content
        from litetrain.runtime.litert import LiteRTRunner
        from litetrain.trainable.module import SIGNATURE_KEYS

        float_size = len(run.float_model)
        asked = "built because --allow-untrainable was given; " if mode.quantizes_activations else ""
        content = run.float_model
        if mode is not QuantMode.NONE:
            try:
                with _timed(self.timings, "convert_s"):
                    content = convert_saved_model(run.sm_dir, SIGNATURE_KEYS, mode, run.calibration,
                                                  resource_variables=True, float_model=run.float_model)
            except MODE_ERRORS as exc:
                # With --allow-untrainable a converter that cannot build an int8/int16x8 train graph is the answer.
                failure = mode_failure(exc, model="trainable", stage=Stage.CONVERSION)
                return _failed_report(mode, "trainable", failure, None, float_size,
                                      note=f"the converter cannot build it: {failure.reason}"), None
        self.models[f"trainable_{mode.value}.tflite"] = content
        if (mode is QuantMode.DYNAMIC and float_report is not None and float_report.has_figures
                and same_content(content, run.float_model)):
            return dataclasses.replace(
                float_report, mode=mode, status=Status.NO_OP,
                note="no-op: dynamic range quantizes constant weights only, and every weight of this model is a "
                     "trainable variable, so the file is identical to float32 (except the converter's metadata); "
                     "freeze layers (--trainable last:N) to quantize them"), None
        try:
            candidate = LiteRTRunner(content)
        except MODE_ERRORS as exc:
            failure = mode_failure(exc, model="trainable", stage=Stage.INTERPRETER)
            return _failed_report(mode, "trainable", failure, len(content), float_size,
                                  note=f"{asked}the interpreter cannot load it: {failure.reason}"), None
        run.module.set_weights(run.initial)  # every mode's twins start from the same weights
        try:
            with _timed(self.timings, "twin_training_s"):
                return self._twin_report(mode, content, candidate, run)
        except MODE_ERRORS as exc:
            # e.g. Adam's update divides by a tensor that int8 rounds to zero: the interpreter stops.
            failure = mode_failure(exc, model="trainable", stage=Stage.TRAINING)
            return _failed_report(mode, "trainable", failure, len(content), float_size,
                                  note=f"{asked}training it fails: {failure.reason}"), None

    def _twin_report(self, mode: QuantMode, content: bytes, candidate: Any, run: _TrainableRun,
                     ) -> tuple[ModeReport, dict[str, Any]]:
        """Trains the quantized model next to float32 TensorFlow (the comparison session) and summarizes it."""
        from litetrain.comparison.noise import standard_perturbations
        from litetrain.comparison.session import Twins, run_comparison
        from litetrain.quantization.inference import InferenceFigures, latency_us
        from litetrain.runtime.litert import LiteRTRunner

        module, built, reference, fitted, plan = run.module, run.built, run.reference, run.fitted, run.plan
        factory: Callable[..., Any] = lambda **kw: LiteRTRunner(content, **kw)  # noqa: E731
        weight_names = {v.name for v in built.variables if v.role in ("weight", "state")}
        twins = Twins(
            reference=reference, candidate=candidate, fresh_candidate=factory, weight_names=weight_names,
            layer_of={v.name: v.path.split("/")[-2] if "/" in v.path else v.path for v in built.variables},
            perturbations=standard_perturbations(reference, factory, weight_names,
                                                 row_order_is_noop=not module.random_draws)
            if run.noise_floor else [],
        )
        comp = run_comparison(
            kind="quantize", twins=twins, data=fitted, plan=plan, tol=Tolerances(),
            from_logits=module.loss_config.from_logits, model_info={"size_bytes": len(content), "mode": mode.value},
            data_info=self.dataset.describe(), settings={}, require_exact_initial_weights=False,
        )
        after = comp.inference["after"]
        health = next(h for h in comp.health if h["runner"] == candidate.name)
        figures = InferenceFigures(
            samples=after.samples, max_abs_error=after.max_abs_error, mean_abs_error=after.mean_abs_error,
            max_rel_error=after.max_rel_error, argmax_agreement=after.argmax_agreement,
            accuracy=after.accuracy.get(candidate.name), accuracy_float32=after.accuracy.get(reference.name),
            output_scale=after.max_abs_error / after.max_rel_error if after.max_rel_error else 0.0,
        )
        losses = comp.train.loss
        learned = _learning_ratio(np.asarray(losses[candidate.name]), np.asarray(losses[reference.name]))
        own_start = None
        if not comp.initial_weights.get("identical", True):
            # The comparison starts both twins from identical weights; a phone starts from the file's own
            # (e.g. float16-rounded) values, so train once more from those to report the drift a user gets.
            figures, own_start = self._train_from_file(content, reference, module, fitted, plan, run.initial)
        training = {
            "verdict": comp.verdict.value,
            "explanation": comp.explanation,
            "steps": comp.train.steps,
            "healthy": health["healthy"],
            "health_flags": health["flags"],
            "health_details": health["details"],
            "initial_weights": comp.initial_weights.get("detail"),
            "initial_weights_max_abs_diff": comp.initial_weights.get("max_abs_diff"),
            "max_abs_loss_diff": comp.train.max_abs_loss_diff,
            "max_abs_weight_diff": comp.train.max_abs_weight_diff,
            "final_loss": {k: v[-1] for k, v in losses.items()},
            "loss": losses,
            "steps_per_second": comp.train.steps_per_second,
            "inference_before_training": comp.inference["before"].to_json(),
            "learning_ratio": learned,
            "from_file_initial_weights": own_start,
        }
        trains = bool(health["healthy"]) and learned >= MIN_LEARNING_RATIO
        note = MODE_NOTES[mode]
        if mode is QuantMode.DYNAMIC:
            note = (f"frozen layers {list(module.frozen_layers)} stored as int8 constants; the trainable variables "
                    "stay float32, so training works; the forward pass differs from float32 by design, which the "
                    "verdict (against float32 TensorFlow) reports")
        if mode.quantizes_activations:
            note = (f"built because --allow-untrainable was given: {MODE_NOTES[mode]}; "
                    + (f"measured: it does NOT train like float32 ({_training_failure(health, learned)}; verdict "
                       f"{comp.verdict.value})" if not trains else "measured: it still learns"))
        latency = latency_us(content, fitted.x_test[:1])
        report = ModeReport(mode, "trainable", Status.MEASURED, len(content), len(run.float_model), figures, latency,
                            trains, note, training=training)
        return report, candidate.get_weights()

    def _train_from_file(self, content: bytes, reference: Any, module: Any, fitted: Any, plan: Any,
                         initial: dict[str, np.ndarray]) -> tuple[Any, dict[str, Any]]:
        """Trains the quantized model from its own initial weights and TensorFlow from float32 ones."""
        from litetrain.comparison.twin import train_trajectory
        from litetrain.quantization.inference import compare_outputs
        from litetrain.runtime.litert import LiteRTRunner

        module.set_weights(initial)
        ref_traj = train_trajectory(reference, fitted.x, fitted.y, plan, ())
        ref_out = reference.infer(fitted.x_test)[reference.primary_output]
        own = LiteRTRunner(content)
        own_traj = train_trajectory(own, fitted.x, fitted.y, plan, ())
        own_out = own.infer(fitted.x_test)[own.primary_output]
        figures = compare_outputs(own_out, ref_out, fitted.accuracy if fitted.test_labels is not None else None,
                                  module.loss_config.from_logits)
        with np.errstate(invalid="ignore"):
            diff = np.abs(own_traj.losses - ref_traj.losses)
        return figures, {
            "max_abs_loss_diff": float(np.nanmax(diff)) if np.all(np.isfinite(diff)) else float("nan"),
            "final_loss": {reference.name: float(ref_traj.losses[-1]), own.name: float(own_traj.losses[-1])},
            **figures.to_json(),
        }

    def _model_info(self, kind: str, reports: dict[str, ModeReport]) -> dict[str, Any]:
        base = reports.get("none")
        return {"source": self.loaded.source, "framework": self.loaded.framework.value, "kind": kind,
                "float32_size_bytes": base.size_bytes if base else None}


@dataclasses.dataclass(frozen=True)
class _InferenceProbe:
    """What measuring one inference model needs: held-out data, float32 outputs, the float32 .tflite."""

    fitted: Any
    reference: np.ndarray
    from_logits: bool | None
    names: list[str]
    sm_dir: Path
    calibration: Any
    float_model: bytes | None  # None when the float32 conversion itself failed

    @property
    def accuracy(self) -> Any:
        return self.fitted.accuracy if self.fitted.test_labels is not None else None


@dataclasses.dataclass(frozen=True)
class _TrainableRun:
    """What every mode of a trainable model shares: the module, its float32 twin, data, plan and calibration."""

    module: Any
    built: Any
    reference: Any
    fitted: Any
    plan: Any
    noise_floor: bool
    initial: dict[str, np.ndarray]
    sm_dir: Path
    calibration: Any
    float_model: bytes


def _failed_report(mode: QuantMode, kind: str, failure: ModeFailure, size: int | None, float_size: int | None,
                   note: str | None = None) -> ModeReport:
    """The row of a mode that could not be built, loaded or trained (no figures; ``failure`` says why)."""
    trains = False if kind == "trainable" else None
    what = {Stage.CONVERSION: "the converter cannot build it", Stage.INTERPRETER: "the interpreter cannot run it",
            Stage.TRAINING: "training it fails"}[failure.stage]
    return ModeReport(mode, kind, Status.FAILED, size, float_size, None, None, trains,
                      note or f"{what}: {failure.reason}", failure=failure)


def _chance(fitted: Any) -> float | None:
    """The held-out accuracy of guessing (None for regression)."""
    from litetrain.data.fit import TaskKind

    classes = fitted.num_classes or (2 if fitted.task is TaskKind.BINARY else None)
    return chance_level(classes, fitted.test_labels) if fitted.test_labels is not None else None


MIN_LEARNING_RATIO = 0.5
"""A quantized model "trains" when its loss falls at least half as much as float32 TensorFlow's on the same
batches: an int8 training graph can let the loss creep down (or stay flat) while float32 learns."""


def _learning_ratio(candidate: np.ndarray, reference: np.ndarray) -> float:
    """How much the candidate's loss fell relative to the reference's (mean of the first and last fifth)."""
    k = max(len(reference) // 5, 1)
    fall_ref = float(np.mean(reference[:k]) - np.mean(reference[-k:]))
    fall_cand = float(np.mean(candidate[:k]) - np.mean(candidate[-k:]))
    if not np.isfinite(fall_cand):
        return 0.0
    return fall_cand / fall_ref if fall_ref > 0 else (1.0 if fall_cand >= 0 else 0.0)


def _training_failure(health: dict[str, Any], ratio: float) -> str:
    if not health["healthy"]:
        return "; ".join(health["details"])
    return f"its loss fell {ratio:.0%} as much as float32's"


def _inference_note(mode: QuantMode) -> str:
    return {
        QuantMode.NONE: "float32 reference",
        QuantMode.DYNAMIC: "weights int8, dequantized on the fly; activations float32",
        QuantMode.FLOAT16: "weights float16, compute float32",
        QuantMode.INT8: "weights and activations int8 (ops without int8 kernels fall back to float)",
        QuantMode.INT16X8: "weights int8, activations int16",
    }[mode]


def _fit_for_inference(dataset: Dataset, input_shape: tuple[int, ...], output_shape: tuple[int, ...],
                       loss: LossConfig | None) -> Any:
    """Held-out data in the model's shapes; labels as class indices when the model is a classifier."""
    from litetrain.data.fit import fit_to_model
    from litetrain.runtime.base import TensorInfo

    x_info = TensorInfo("x", (None, *input_shape), np.dtype(np.float32))
    from litetrain.config import Loss

    classifier = len(output_shape) == 1 and output_shape[0] > 1
    sparse = loss.name is Loss.SPARSE_CATEGORICAL_CROSSENTROPY if loss else classifier
    y_info = (TensorInfo("y", (None,), np.dtype(np.int32)) if sparse
              else TensorInfo("y", (None, *output_shape), np.dtype(np.float32)))
    return fit_to_model(dataset, x_info, y_info, output_shape, loss)


def _environment() -> dict[str, Any]:
    from litetrain._env import environment

    return environment()
