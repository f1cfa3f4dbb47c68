"""Lazy imports of heavy packages so that ``import litetrain`` and ``litetrain --help`` stay instant."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
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
    """Imports ``name`` now, turning a missing package into an error that names what to install.

    TensorFlow (also when Keras pulls it in) is imported first and quietly: see :func:`quiet_tensorflow`.
    """
    if name.split(".")[0] in ("tensorflow", "keras", "tf_keras") and "tensorflow" not in sys.modules:
        quiet_tensorflow()
        try:
            with filtered_stderr():
                tf = importlib.import_module("tensorflow")
                # Device discovery probes for CUDA and logs an error line on CPU-only machines; do it here, filtered.
                tf.config.list_physical_devices()
        except ImportError:
            pass  # reported below, with the package to install
        else:
            logging.getLogger("absl").addFilter(_drop_unsaved_gradient_notice)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        raise MissingDependencyError(
            f"litetrain needs the package {_PIP_NAMES.get(top, top)!r}, which could not be imported ({exc}).",
            hint=f"pip install {_PIP_NAMES.get(top, top)}",
        ) from exc


def quiet_tensorflow() -> None:
    """Asks TensorFlow's C++ logging for errors only, unless the user chose a level.

    TensorFlow 2.21 logs its start-up lines (oneDNN, CUDA probes) through absl before the level is read, so
    :func:`import_module` also filters them out of the import with :func:`filtered_stderr`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _drop_unsaved_gradient_notice(record: logging.LogRecord) -> bool:
    """TensorFlow warns that a loaded function has "unsaved custom gradients" (when the converter or a runner loads a
    SavedModel): in litetrain's models those are the builtin-only gradient rewrites, deliberately not saved."""
    return "with ops with unsaved custom gradients" not in record.getMessage()


# Start-up lines that say nothing about the user's model: TensorFlow's absl pre-init notice, oneDNN and CUDA probes
# (with tensorflow-cpu no GPU is expected), LiteRT's XNNPACK notice, and the LiteRT 2.x CompiledModel API's INFO
# lines and NPU/GPU/vendor-plugin probes (its accelerator registry, logged at creation).
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} .*"
    r"|E\d{4} .*(cuInit|cuda|CUDA).*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: \[[\w/.]+\.cc:\d+\] .*"
    r"|WARNING: \[(npu_registry|gpu_registry|compiler_plugin)\.cc:\d+\] .*"
    r"|└ Could not load shared library .*)$"
)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Captures the process's stderr (file descriptor 2, where C++ libraries log) and replays it without noise.

    Everything that is not a known start-up notice is written back when the block ends, so real errors from native
    code still reach the user. ``LITETRAIN_VERBOSE_NATIVE_LOGS=1`` turns the filter off.
    """
    if os.environ.get("LITETRAIN_VERBOSE_NATIVE_LOGS"):
        yield
        return
    with _native_output(("stderr",), keep=lambda line: not _NOISE.match(line)):
        yield


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Drops what native code prints straight to stdout and stderr during the block (the converter's and TFLite's
    quantizer's "fully_quantize: 0, ..." lines); failures that matter come back as Python exceptions."""
    with _native_output(("stdout", "stderr"), keep=lambda line: False):
        yield


@contextlib.contextmanager
def _native_output(streams: tuple[str, ...], *, keep: Callable[[str], bool]) -> Iterator[None]:
    """Points the descriptors of ``sys.<stream>`` at temporary files and replays the lines ``keep`` accepts."""
    with contextlib.ExitStack() as stack:
        for name in streams:
            stack.enter_context(_captured(name, keep))
        yield


@contextlib.contextmanager
def _captured(name: str, keep: Callable[[str], bool]) -> Iterator[None]:
    stream = getattr(sys, name)
    try:
        stream.flush()
        fd = stream.fileno()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured by pytest): nothing to do
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and keep(line)]
            if kept:
                stream.write("\n".join(kept) + "\n")
                stream.flush()
