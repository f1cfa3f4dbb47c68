"""The model a federation trains: a folder written by ``litetrain build -o DIR``, reused or built for it."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from litetrain._lazy import import_module
from litetrain.config import Loss, LossConfig, OptimizerConfig, TrainableSpec
from litetrain.errors import ModelLoadError, UsageError


@dataclasses.dataclass(frozen=True)
class PreparedModel:
    """A built model folder (``model.tflite``, a SavedModel, ``build.json``) and what the federation reads from it."""

    directory: Path
    tflite: bytes
    saved_model_dir: Path
    tf_gradients: str
    build_info: dict[str, Any]
    weight_names: tuple[str, ...]
    loss: LossConfig
    batch_size: int
    learning_rate: float
    source: str


def is_built_dir(model: Any) -> bool:
    if not isinstance(model, str | os.PathLike):
        return False
    path = Path(model)
    return path.is_dir() and (path / "model.tflite").is_file() and (path / "build.json").is_file()


def load_built(directory: Path, source: str | None = None) -> PreparedModel:
    """Reads a folder written by ``litetrain build -o DIR`` (or by :func:`prepare_model`).

    Raises:
        ModelLoadError: its ``build.json`` is unreadable or it has no SavedModel.
    """
    from litetrain.config import Optimizer
    from litetrain.trainable.keras_objects import DEFAULT_LEARNING_RATE

    try:
        info = json.loads((directory / "build.json").read_text(encoding="utf-8"))
        settings = info["settings"]
        variables = info["variables"]
        loss = LossConfig(Loss(settings["loss"]["name"]), settings["loss"].get("from_logits"))
        batch = int(settings["batch_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{str(directory)!r} looks like a 'litetrain build' folder but its build.json is unreadable ({exc}).",
            hint="Build it again with 'litetrain build MODEL -o DIR'.",
        ) from exc
    tf_dir = directory / "tf_saved_model"
    own = (tf_dir / "saved_model.pb").is_file()
    sm_dir = tf_dir if own else directory / "saved_model"
    if not (sm_dir / "saved_model.pb").is_file():
        raise ModelLoadError(f"{str(directory)!r} has no saved_model/ folder.",
                             hint="Build it again with 'litetrain build MODEL -o DIR'.")
    opt = settings.get("optimizer", {})
    name = str(opt.get("name"))
    default_lr = DEFAULT_LEARNING_RATE.get(Optimizer(name), 0.01) if name in set(Optimizer) else 0.01
    lr = float(opt.get("learning_rate") or default_lr)
    return PreparedModel(
        directory=directory,
        tflite=(directory / "model.tflite").read_bytes(),
        saved_model_dir=sm_dir,
        tf_gradients="tensorflow" if own else "builtin-only rewrites (the SavedModel of 'litetrain build')",
        build_info=info,
        weight_names=tuple(v["name"] for v in variables if v["role"] == "weight"),
        loss=loss,
        batch_size=batch,
        learning_rate=lr,
        source=source or str(info.get("source", directory)),
    )


def check_build_options(
    model: Any,
    *,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    batch_size: int | None = None,
    trainable: TrainableSpec | str | None = None,
    select_tf_ops: bool = False,
) -> None:
    """The build options' checks that need no build (``federate``'s preflight runs them before any import).

    Raises:
        UsageError: ``batch_size`` below 1, or build options given with an already built folder.
    """
    if batch_size is not None and int(batch_size) < 1:
        raise UsageError(f"--batch-size must be at least 1; received {batch_size}.")
    if is_built_dir(model) and (any(v is not None for v in (loss, optimizer, batch_size, trainable))
                                 or select_tf_ops):
        raise UsageError(
            f"{str(model)!r} is an already built model; --loss, --optimizer, --batch-size and --trainable were "
            "fixed when it was built.",
            hint="Omit them, or pass the Keras model to build it again.",
        )


def prepare_model(
    model: Any,
    workdir: Path,
    *,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    batch_size: int | None = None,
    trainable: TrainableSpec | str | None = None,
    select_tf_ops: bool = False,
    seed: int = 0,
    tensorflow_twin: bool = True,
) -> PreparedModel:
    """Reuses a built folder or builds ``model`` into ``workdir/model``.

    When litetrain builds the model and ``tensorflow_twin`` is set, the TensorFlow clients (and the centralized
    reference) get a second SavedModel whose ``train`` is traced with TensorFlow's own gradients (as ``check``'s
    TensorFlow twin), so a gradient rewrite that differed would show up as a difference between the federations
    instead of being shared by both. A federation that runs no TensorFlow at all skips it.
    """
    check_build_options(model, loss=loss, optimizer=optimizer, batch_size=batch_size, trainable=trainable,
                        select_tf_ops=select_tf_ops)
    if is_built_dir(model):
        return load_built(Path(model))
    from litetrain.api import seed_everything
    from litetrain.trainable.builder import build

    seed_everything(seed)
    out = workdir / "model"
    result = build(model, loss=loss, optimizer=optimizer, batch_size=batch_size, trainable=trainable,
                   select_tf_ops=select_tf_ops, output_dir=out)
    tf_dir = out / "tf_saved_model"
    shutil.rmtree(tf_dir, ignore_errors=True)
    if tensorflow_twin:
        tf = import_module("tensorflow")

        tf.saved_model.save(result.module, str(tf_dir), signatures=result.module.concrete_functions())
    return load_built(out, result.loaded.source)


__all__ = ["PreparedModel", "check_build_options", "is_built_dir", "load_built", "prepare_model"]
