"""``InferenceTfliteFromCheckpoint``: the deploy artifact of a trained model.

After on-device (or ``litetrain train``) training, the phone-side model still carries the train/save/restore
signatures, the optimizer state and resource variables. What ships for inference is smaller: the ``infer``
signature alone with the trained weights frozen into constants, builtin ops only, optionally quantized.

How: the SavedModel that ``litetrain build -o DIR`` writes next to ``DIR/model.tflite`` is loaded, its ``restore``
signature assigns the checkpoint's arrays, and its ``infer`` function is converted without resource variables, so
the converter freezes the variables' current (trained) values. The result is checked against the trained model
itself: the original .tflite with the same checkpoint restored, run by LiteRT, on a batch of inputs. A float
export that does not match is refused (nothing is written); a quantized one reports its error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._io import atomic_write_bytes, check_output_file, save_json
from litetrain.config import Tolerances
from litetrain.errors import (
    ConversionError,
    DataError,
    ModelLoadError,
    SignatureError,
    UnsupportedModelError,
    UsageError,
)

SCHEMA_VERSION = "1.0"
DEFAULT_CHECK_SAMPLES = 64


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported inference model and how closely it reproduces the trained model's ``infer``.

    ``bool(result)`` is whether the outputs matched within the tolerance (always checked for float exports,
    which are refused otherwise; reported for quantized ones).
    """

    output: Path
    size_bytes: int
    source_size_bytes: int
    quantize: str
    ops: dict[str, Any]
    checkpoint: dict[str, Any]
    check: dict[str, Any]
    settings: dict[str, Any]
    timings: dict[str, float]

    @property
    def passed(self) -> bool:
        return bool(self.check["within_tolerance"])

    def __bool__(self) -> bool:
        return self.passed

    @property
    def max_abs_error(self) -> float:
        return float(self.check["max_abs_error"])

    def to_json(self) -> dict[str, Any]:
        from litetrain._env import environment

        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "export",
            "environment": environment(),
            "settings": self.settings,
            "output": str(self.output),
            "size_bytes": self.size_bytes,
            "source_size_bytes": self.source_size_bytes,
            "quantize": self.quantize,
            "ops": self.ops,
            "checkpoint": self.checkpoint,
            "check": self.check,
            "passed": self.passed,
            "timings_s": self.timings,
        }

    def save(self, path: str | Path) -> Path:
        """Writes :meth:`to_json` to ``path`` atomically."""
        return save_json(path, self.to_json())

    def __str__(self) -> str:
        c = self.check
        ops = self.ops["total"]
        lines = [
            f"exported {self.output} ({self.size_bytes / 1024:.1f} KiB, {self.quantize}; trainable model "
            f"{self.source_size_bytes / 1024:.1f} KiB), ops {ops['builtin']} builtin / {ops['flex']} flex / "
            f"{ops['custom']} custom",
            f"weights: {self.checkpoint['path']}"
            + (f" (step {self.checkpoint['step']})" if self.checkpoint.get("step") is not None else "")
            + f", {self.checkpoint['arrays']} arrays",
            f"check against the trained model's infer on {c['samples']} samples ({c['data']}): max |error| "
            f"{c['max_abs_error']:.3g} (allowed {c['allowed']:.3g})"
            + ("" if c["argmax_agreement"] is None else f", argmax agreement {100 * c['argmax_agreement']:.1f}%")
            + ("" if c["enforced"] else " [reported, not enforced: quantized]"),
        ]
        return "\n".join(lines)


def find_saved_model(model_path: Path, saved_model: str | Path | None) -> Path:
    """The SavedModel of a built model: ``saved_model`` or ``saved_model/`` next to the .tflite.

    Raises:
        ModelLoadError: there is none.
    """
    path = Path(saved_model) if saved_model is not None else model_path.parent / "saved_model"
    if not (path / "saved_model.pb").is_file():
        where = "--saved-model" if saved_model is not None else f"next to {str(model_path)!r}"
        raise ModelLoadError(
            f"No SavedModel found {where} ({str(path)!r} has no saved_model.pb); export converts the model's "
            "infer function from it.",
            hint="Pass --saved-model DIR: the saved_model/ folder that 'litetrain build -o DIR' wrote next to "
            "model.tflite.",
        )
    return path


def load_checkpoint_arrays(
    path: str | Path, *, fingerprint: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The named arrays of a checkpoint and a description of it.

    Accepts a litetrain checkpoint (``ckpt-*.npz`` from ``litetrain train``; checksums and, if given, the model
    fingerprint are verified) or any ``.npz`` of named arrays (e.g. ``np.savez(path, **runner.get_weights())``).

    Raises:
        DataError: missing, corrupt or not a checkpoint (a ``CheckpointError`` for litetrain's own format).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Checkpoint {str(path)!r} does not exist.", hint="Check the --checkpoint path.")
    from litetrain.training.checkpoint import MANIFEST, load_checkpoint

    try:
        with zipfile.ZipFile(path) as zf:
            litetrain_format = MANIFEST in zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"Checkpoint {str(path)!r} is not an .npz file ({exc}).",
            hint="Pass a ckpt-*.npz written by 'litetrain train', or an .npz of the model's named weights.",
        ) from exc
    if litetrain_format:
        ckpt = load_checkpoint(path, fingerprint=fingerprint)
        return dict(ckpt.arrays), {"path": str(path), "format": "litetrain", "step": ckpt.step}
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"Checkpoint {str(path)!r} cannot be read as an .npz of arrays ({exc}).") from exc
    return arrays, {"path": str(path), "format": "npz", "step": None}


def _check_arrays(arrays: Mapping[str, np.ndarray], specs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    missing = sorted(set(specs) - set(arrays))
    extra = sorted(set(arrays) - set(specs))
    if missing or extra:
        raise SignatureError(
            f"The checkpoint does not match the model's restore signature (missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}).",
            hint="Pass a checkpoint written for this model (the save signature's outputs, by name).",
        )
    out = {}
    for name, spec in specs.items():
        value = np.asarray(arrays[name])
        shape = tuple(spec.shape.as_list())
        if value.shape != shape:
            raise SignatureError(f"Checkpoint array {name!r} has shape {value.shape}; the model's is {shape}.")
        if not np.all(np.isfinite(value)) and np.issubdtype(value.dtype, np.floating):
            raise DataError(f"Checkpoint array {name!r} contains NaN or Inf; the trained weights are broken.")
        out[name] = value.astype(spec.dtype.as_numpy_dtype, copy=False)
    return out


def _load_inputs(spec: Any, flag: str, input_shape: tuple[int, ...], samples: int | None) -> Any:
    """``spec`` (a dataset or an ``.npz`` with ``x``) as :class:`RepresentativeData` in the model's input shape; its
    errors name ``flag``, the option the user passed it with."""
    from litetrain.quantization.representative import load_representative

    try:
        return load_representative(spec, input_shape, samples=samples, default=None)  # type: ignore[arg-type]
    except DataError as exc:
        prefix = "Representative data"
        message = f"{flag}{exc.message[len(prefix):]}" if exc.message.startswith(prefix) else exc.message
        hint = exc.hint.replace("--representative-data", flag) if exc.hint else exc.hint
        raise DataError(message, hint=hint) from exc


def export_inference_model(
    model: str | Path,
    *,
    checkpoint: str | Path,
    output: str | Path,
    saved_model: str | Path | None = None,
    quantize: str | None = None,
    representative_data: Any = None,
    data: Any = None,
    samples: int | None = None,
    tolerances: Tolerances | None = None,
) -> ExportResult:
    """Writes an inference-only .tflite (``infer`` alone, trained weights as constants) and checks it.

    Args:
        model: The trainable .tflite (from ``litetrain build``); its SavedModel sits next to it.
        checkpoint: Trained weights: a litetrain checkpoint or an ``.npz`` of the restore signature's arrays.
        output: Where to write the exported .tflite (atomically).
        saved_model: The SavedModel folder (default: ``saved_model/`` next to ``model``).
        quantize: A quantization mode (``none`` default, ``dynamic``, ``float16``, ``int8``, ``int16x8``).
        representative_data: Calibration inputs for int8/int16x8 (an ``.npz`` with ``x``, or ``digits[:HxW]``;
            default: ``data``).
        data: Inputs for the output check (default: the representative data, else seeded random normal).
        samples: How many inputs the check uses (default 64).
        tolerances: For the float check (default atol 1e-5, rtol 1e-4: max|error| <= atol + rtol * max|ref|).

    Returns:
        The export result; the file is written only if a float export matches the trained model.

    Raises:
        UsageError: int8/int16x8 without ``representative_data`` or ``data`` (before anything is loaded).
        ModelLoadError, DataError, SignatureError: missing or mismatched model, SavedModel or checkpoint.
        ConversionError: conversion failed, or the float export's outputs do not match (nothing written).
        RuntimeCrashError: the trained model crashed the interpreter (it runs in a worker process).
        UnsupportedModelError: a model whose restore takes a checkpoint path (--select-tf-ops).
    """
    from litetrain._lazy import import_module, quiet_tensorflow
    from litetrain.convert.census import op_census
    from litetrain.quantization.modes import QuantMode, parse_mode
    from litetrain.runtime.litert import read_model

    quiet_tensorflow()  # before LiteRT loads: the first library to start reads the C++ log level
    timings: dict[str, float] = {}
    with _timed(timings, "load_s"):
        model_path, output = Path(model), Path(output)
        check_output_file(output)
        mode = parse_mode(quantize or QuantMode.NONE)
        n_samples = _check_options(mode, representative_data, data, samples)
        tol = tolerances or Tolerances()
        model_bytes = read_model(model_path)
        sm_path = find_saved_model(model_path, saved_model)
        trained = _run_trained(model_bytes, checkpoint, mode, data, representative_data, n_samples)
    import_module("tensorflow")  # loading TensorFlow is not part of restore_s
    with _timed(timings, "restore_s"):
        loaded, infer = _restored_saved_model(sm_path, trained.arrays)
    with _timed(timings, "convert_s"):
        exported = _frozen_tflite(loaded, infer, mode, trained.representative)
    with _timed(timings, "check_s"):
        census = op_census(exported)
        check = _check_exported(exported, trained, tol, enforced=mode is QuantMode.NONE,
                                classification=not _trained_for_regression(model_path))
    if check["enforced"] and not check["within_tolerance"]:
        raise ConversionError(
            f"The exported model's outputs differ from the trained model's infer by up to {check['max_abs_error']:.3g} "
            f"(allowed {check['allowed']:.3g} on {check['samples']} samples); {str(output)!r} was not written.",
            hint="The SavedModel may not belong to this .tflite (pass the right --saved-model), or the conversion "
            "is not faithful; report the model to the litetrain issue tracker.",
        )
    atomic_write_bytes(output, exported)
    settings = {
        "model": str(model_path), "saved_model": str(sm_path), "checkpoint": str(checkpoint),
        "quantize": mode.value, "representative_data": None if representative_data is None else str(representative_data),
        "data": None if data is None else str(data), "calibration": trained.calibration_name, "samples": n_samples,
        "atol": tol.a, "rtol": tol.r,
    }
    return ExportResult(
        output=output, size_bytes=len(exported), source_size_bytes=len(model_bytes), quantize=mode.value,
        ops=census.to_json(), checkpoint={**trained.checkpoint_info, "arrays": len(trained.arrays)}, check=check,
        settings=settings, timings=timings,
    )


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Records the seconds the block took as ``timings[key]``."""
    t0 = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t0


def _check_exported(exported: bytes, trained: _Trained, tol: Tolerances, *, enforced: bool,
                    classification: bool) -> dict[str, Any]:
    """The exported model's outputs on the check's inputs against the trained model's (``check`` in the result)."""
    candidate = _run_exported(exported, trained.x, trained.primary)
    check = _compare(trained.reference[trained.primary], candidate, tol, enforced=enforced,
                     classification=classification)
    check.update(samples=int(len(trained.x)), data=trained.data_name, output=trained.primary)
    return check


def _check_options(mode: Any, representative_data: Any, data: Any, samples: int | None) -> int:
    """The number of check samples, once the options are known to work together (before anything is loaded).

    Raises:
        UsageError: int8/int16x8 without inputs to calibrate with, or fewer than one sample.
    """
    if mode.needs_representative and representative_data is None and data is None:
        raise UsageError(
            f"--quantize {mode.value} needs --representative-data or --data: inputs to calibrate the activation "
            "ranges with.",
            hint="Pass --representative-data DATA (an .npz with x, or digits[:HxW]) with inputs like the ones the "
            "model will see.",
        )
    n_samples = DEFAULT_CHECK_SAMPLES if samples is None else int(samples)
    if n_samples < 1:
        raise UsageError(f"--samples must be at least 1; received {samples}.")
    return n_samples


@dataclasses.dataclass(frozen=True)
class _Trained:
    """What the trained model gives the export: its checkpoint, the check's inputs and its outputs on them."""

    arrays: dict[str, np.ndarray]
    checkpoint_info: dict[str, Any]
    x: np.ndarray
    data_name: str
    representative: Any
    calibration_name: str | None
    reference: Mapping[str, np.ndarray]
    primary: str


def _run_trained(model_bytes: bytes, checkpoint: str | Path, mode: Any, data: Any, representative_data: Any,
                 n_samples: int) -> _Trained:
    """Restores the checkpoint into the trained .tflite and runs it on the check's inputs; loads the calibration.

    The reference is the trained model itself, as LiteRT runs it. It runs in a worker process because export is
    where .tflite files from elsewhere arrive: a malformed one that crashes the interpreter is a clean error.
    """
    from litetrain.runtime.base import require_single_io_signatures
    from litetrain.runtime.worker import WorkerRunner
    from litetrain.training.checkpoint import model_fingerprint

    with WorkerRunner(model_bytes, name="trained") as trained:
        require_single_io_signatures(trained, "litetrain export", float_input=True)
        arrays, ckpt_info = load_checkpoint_arrays(
            checkpoint, fingerprint=model_fingerprint(model_bytes, trained.weight_infos)
        )
        trained.set_weights(arrays)
        input_shape = tuple(int(d) for d in trained.infer_input.shape[1:])
        # The check's inputs: --data, else the calibration data, else seeded random normal.
        check_spec, check_flag = (data, "--data") if data is not None else (representative_data,
                                                                             "--representative-data")
        if check_spec is None:
            x = np.random.default_rng(0).standard_normal((n_samples, *input_shape)).astype(trained.infer_input.dtype)
            data_name = "random normal, seed 0"
        else:
            check = _load_inputs(check_spec, check_flag, input_shape, n_samples)
            x, data_name = check.x.astype(trained.infer_input.dtype, copy=False), check.name
        # The calibration inputs (int8/int16x8): --representative-data, else --data; loaded before TensorFlow.
        representative, calibration_name = None, None
        if mode.needs_representative:
            cal_spec, cal_flag = ((representative_data, "--representative-data") if representative_data is not None
                                  else (data, "--data"))
            calibration = _load_inputs(cal_spec, cal_flag, input_shape, None)
            representative = calibration.infer_samples("infer", trained.infer_input.name)
            calibration_name = f"{calibration.name} ({cal_flag}, {len(calibration.x)} samples)"
        return _Trained(arrays, ckpt_info, x, data_name, representative, calibration_name, trained.infer(x),
                        trained.primary_output)


def _restored_saved_model(sm_path: Path, arrays: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
    """The SavedModel with the checkpoint's arrays restored, and its ``infer`` signature.

    Raises:
        SignatureError: a SavedModel without infer or restore.
        UnsupportedModelError: a restore that takes a checkpoint path (--select-tf-ops).
    """
    from litetrain._lazy import import_module
    from litetrain.runtime.tensorflow import load_saved_model

    tf = import_module("tensorflow")
    loaded = load_saved_model(sm_path)
    sigs = dict(loaded.signatures)
    if "infer" not in sigs or "restore" not in sigs:
        raise SignatureError(
            f"The SavedModel {str(sm_path)!r} lacks infer or restore; it has {sorted(sigs)}.",
            hint="Pass the saved_model/ folder that 'litetrain build' wrote for this model.",
        )
    specs = sigs["restore"].structured_input_signature[1]
    if set(specs) == {"checkpoint_path"}:
        raise UnsupportedModelError(
            "This model restores from a checkpoint file path (built with --select-tf-ops, the 2021 recipe), so "
            "its weights cannot be set from named arrays.",
            hint="Export a model built builtin-only (the default of 'litetrain build').",
        )
    sigs["restore"](**{k: tf.constant(v) for k, v in _check_arrays(arrays, specs).items()})
    return loaded, sigs["infer"]


def _frozen_tflite(loaded: Any, infer: Any, mode: Any, representative: Any) -> bytes:
    """``infer`` alone converted with the restored weights frozen into constants, quantized in ``mode``."""
    from litetrain._lazy import import_module
    from litetrain.quantization.conversion import convert_saved_model

    tf = import_module("tensorflow")
    with tempfile.TemporaryDirectory(prefix="litetrain-export-") as tmp:
        # Re-saving writes the restored values; converting without resource variables freezes them to constants.
        frozen_dir = Path(tmp) / "infer"
        tf.saved_model.save(loaded, str(frozen_dir), signatures={"infer": infer})
        exported: bytes = convert_saved_model(frozen_dir, ["infer"], mode, representative, resource_variables=False)
    return exported


def _run_exported(model: bytes, x: np.ndarray, primary: str) -> np.ndarray:
    """The exported model's ``primary`` output on ``x``, run by LiteRT as the quantize command measures models."""
    from litetrain.quantization.inference import InferenceRunner
    from litetrain.runtime.litert import new_interpreter

    try:
        outputs = list(new_interpreter(model_content=model).get_signature_runner("infer").get_output_details())
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"The LiteRT interpreter cannot load the exported model: {exc}") from exc
    measured = "output" if "output" in outputs else outputs[0]  # the output InferenceRunner returns
    if measured != primary:
        raise ConversionError(
            f"The exported model's infer returns {sorted(outputs)}; the check compares the trained model's "
            f"{primary!r}, which is {'missing' if primary not in outputs else 'not its main output'}.",
            hint="Name the model's main output 'output' (as 'litetrain build' does).",
        )
    return InferenceRunner(model).infer(x)


def _trained_for_regression(model_path: Path) -> bool:
    """Whether the build.json next to the model names only regression losses (argmax agreement then means nothing).

    A model without a readable build.json counts as a classifier: the line is shown, as before.
    """
    import json

    from litetrain.config import Loss

    try:
        loss = json.loads((model_path.parent / "build.json").read_text())["settings"]["loss"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(loss, dict):
        return False
    configs = [loss] if "name" in loss else list(loss.values())  # one loss, or one per output
    names = [c.get("name") for c in configs if isinstance(c, dict)]
    return bool(names) and all(n in (Loss.MSE.value, Loss.MAE.value) for n in names)


def _compare(
    ref: np.ndarray, out: np.ndarray, tol: Tolerances, *, enforced: bool, classification: bool = True
) -> dict[str, Any]:
    """The check's figures (those of ``litetrain quantize``) and whether they are within ``tol``."""
    from litetrain.quantization.inference import compare_outputs

    figures = compare_outputs(out, ref, None, None)
    finite = math.isfinite(figures.max_abs_error)  # NaN or Inf anywhere in the outputs
    allowed = tol.a + tol.r * figures.output_scale
    return {
        "max_abs_error": figures.max_abs_error if finite else float("inf"),
        "mean_abs_error": figures.mean_abs_error,
        "max_rel_error": figures.max_rel_error,
        "allowed": allowed,
        "argmax_agreement": figures.argmax_agreement if classification else None,
        "finite": finite,
        "within_tolerance": finite and figures.max_abs_error <= allowed,
        "enforced": enforced,
    }
