"""The runtime registry: every runner class is one line in runtime/registry.py, and every line resolves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import litetrain.runtime
from litetrain.errors import UsageError
from litetrain.runtime.base import Runner
from litetrain.runtime.registry import RUNTIMES, runner_class, runtime


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_entry_resolves_to_a_runner(name):
    cls = runner_class(name)
    assert issubclass(cls, Runner) and not inspect.isabstract(cls)
    assert RUNTIMES[name].model in ("tflite", "module", "saved_model")


def test_every_runner_in_runtime_is_registered():
    registered = {entry.runner for entry in RUNTIMES.values()}
    for info in pkgutil.iter_modules(litetrain.runtime.__path__):
        if info.name.startswith("_"):
            continue  # the worker's child script and other private modules
        module = importlib.import_module(f"litetrain.runtime.{info.name}")
        for cls_name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, Runner) and cls is not Runner and cls.__module__ == module.__name__:
                assert f"{module.__name__}:{cls_name}" in registered, (
                    f"{module.__name__}.{cls_name} is not in runtime/registry.py; add a RuntimeEntry line "
                    "(docs/adding-a-runtime.md)")


def test_out_of_process_runtimes_use_the_worker_protocol():
    from litetrain.runtime.worker import WorkerRunner

    assert [e.name for e in RUNTIMES.values() if e.out_of_process] == ["worker", "arm64", "wasm"]
    assert all(issubclass(runner_class(e.name), WorkerRunner) for e in RUNTIMES.values() if e.out_of_process)


def test_an_unknown_runtime_names_the_known_ones():
    with pytest.raises(UsageError, match="interpreter, compiled, worker"):
        runtime("gpu-delegate")


def test_listing_runtimes_imports_no_tensorflow():
    code = "import sys; from litetrain.runtime.registry import RUNTIMES; list(RUNTIMES); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
