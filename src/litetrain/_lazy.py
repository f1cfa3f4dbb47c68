"""Lazy imports of heavy packages so that ``import litetrain`` and ``litetrain --help`` stay instant."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from litetrain.errors import MissingDependencyError

_PIP_NAMES = {
    "tensorflow": "tensorflow-cpu",
    "keras": "keras",
    "tf_keras": "tf-keras",
    "ai_edge_litert": "ai-edge-litert",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
}


def import_module(name: str) -> ModuleType:
    """Imports ``name`` now, turning a missing package into an error that names what to install."""
    if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
        quiet_tensorflow()
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        raise MissingDependencyError(
            f"litetrain needs the package {_PIP_NAMES.get(top, top)!r}, which could not be imported ({exc}).",
            hint=f"pip install {_PIP_NAMES.get(top, top)}",
        ) from exc


def quiet_tensorflow() -> None:
    """Silences TensorFlow's C++ start-up logging unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
