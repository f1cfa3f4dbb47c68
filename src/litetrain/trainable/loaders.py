"""Loading a Keras model from a path, a factory, or an object, and telling Keras 3 from tf_keras."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import sys
from pathlib import Path
from typing import Any

from litetrain._lazy import import_module
from litetrain.errors import ModelLoadError


class Framework(enum.StrEnum):
    """Which Keras a model belongs to; losses and optimizers must come from the same one."""

    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A Keras model, the Keras it belongs to, and where it came from."""

    model: Any
    framework: Framework
    source: str


def framework_of(model: Any) -> Framework:
    """Returns the Keras flavour of ``model``.

    Raises:
        ModelLoadError: ``model`` is not a Keras model.
    """
    for cls in type(model).__mro__:
        mod = cls.__module__ or ""
        if cls.__name__ in ("Model", "Sequential", "Functional"):
            if mod.startswith("tf_keras"):
                return Framework.TF_KERAS
            if mod.startswith("keras"):
                return Framework.KERAS3
    raise ModelLoadError(
        f"The model must be a Keras model (keras.Model or tf_keras.Model). Received: {type(model).__module__}."
        f"{type(model).__qualname__}.",
        hint="Pass a .keras file, a tf_keras .h5 or SavedModel, or a factory 'module:function' returning a model.",
    )


def load_model(spec: Any) -> LoadedModel:
    """Loads a model from a Keras object, a ``.keras`` file, a tf_keras ``.h5``, a SavedModel dir or a factory.

    Raises:
        ModelLoadError: missing, corrupt or unsupported model, or a factory that raises.
    """
    if not isinstance(spec, str | Path):
        if callable(spec) and not hasattr(spec, "layers"):  # a factory function passed from Python
            name = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', '?')}"
            return _call_factory(spec, name)
        return LoadedModel(spec, framework_of(spec), f"<object {type(spec).__qualname__}>")
    text = str(spec)
    path = Path(text)
    if path.exists():
        if path.is_dir():
            return _load_saved_model(path)
        if path.suffix == ".keras":
            return _load_keras_file(path)
        if path.suffix in (".h5", ".hdf5"):
            return _load_h5(path)
        raise ModelLoadError(
            f"Cannot tell what kind of model {text!r} is (suffix {path.suffix!r}).",
            hint="Use a .keras file, a tf_keras .h5 file, a SavedModel folder, or a factory 'module:function'.",
        )
    if ":" in text and not text.endswith((".keras", ".h5", ".hdf5")):
        return _load_factory(text)
    raise ModelLoadError(
        f"Model {text!r} does not exist.",
        hint="Check the path, or use 'package.module:function' for a factory that returns a Keras model.",
    )


def _load_keras_file(path: Path) -> LoadedModel:
    keras = import_module("keras")
    try:
        model = keras.saving.load_model(path)
    except Exception as exc:  # Keras raises many types for corrupt archives
        raise ModelLoadError(
            f"Could not load the Keras model {str(path)!r}: {type(exc).__name__}: {_first_line(exc)}",
            hint="Check that the file is a complete .keras archive saved with model.save(...); custom layers must "
            "be importable (use a factory 'module:function' for models with custom objects).",
        ) from exc
    return LoadedModel(model, framework_of(model), str(path))


def _load_h5(path: Path) -> LoadedModel:
    tf_keras = import_module("tf_keras")
    try:
        model = tf_keras.models.load_model(path)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the tf_keras model {str(path)!r}: {type(exc).__name__}: {_first_line(exc)}",
            hint="Check that the file is a complete HDF5 model saved with tf_keras model.save('x.h5').",
        ) from exc
    return LoadedModel(model, Framework.TF_KERAS, str(path))


def _load_saved_model(path: Path) -> LoadedModel:
    if not (path / "saved_model.pb").exists():
        raise ModelLoadError(
            f"{str(path)!r} is a folder but not a SavedModel (no saved_model.pb).",
            hint="Pass the folder that contains saved_model.pb.",
        )
    if not (path / "keras_metadata.pb").exists():
        raise ModelLoadError(
            f"The SavedModel {str(path)!r} was not written by tf_keras, so its Keras layers cannot be rebuilt for "
            "training.",
            hint="Build from the Keras model itself (.keras, .h5 or a factory), or, if the SavedModel already has "
            "train/infer/save/restore signatures, verify it with 'litetrain compare'.",
        )
    tf_keras = import_module("tf_keras")
    try:
        model = tf_keras.models.load_model(path)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the tf_keras SavedModel {str(path)!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return LoadedModel(model, Framework.TF_KERAS, str(path))


def _load_factory(text: str) -> LoadedModel:
    module_name, _, func_name = text.partition(":")
    if not module_name or not func_name.isidentifier():
        raise ModelLoadError(f"Cannot read the factory {text!r}.", hint="Use 'package.module:function'.")
    import_module("tensorflow")  # quiet logs first; the factory almost surely imports it
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # factories in the user's working folder, like `python -m`
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not import {module_name!r} for the factory {text!r}: {type(exc).__name__}: {_first_line(exc)}",
            hint="Run from the folder that holds the module, or install its package.",
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelLoadError(
            f"{module_name!r} has no function {func_name!r} for the factory {text!r}.",
            hint=f"Check the name after ':'; {module_name!r} ({getattr(module, '__file__', '?')}) must define it.",
        )
    return _call_factory(func, text)


def _call_factory(func: Any, text: str) -> LoadedModel:
    try:
        model = func()
    except Exception as exc:
        raise ModelLoadError(
            f"The factory {text!r} raised {type(exc).__name__}: {_first_line(exc)}",
            hint="Fix the factory; it is called with no arguments and must return a Keras model.",
        ) from exc
    return LoadedModel(model, framework_of(model), text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else "(no message)"
