"""``WasmRunner``: LiteRT.js (WebAssembly with XNNPACK, what a web app runs) in Node, through the worker protocol.

The worker is ``_worker_wasm.mjs``, a Node program that speaks the protocol of :mod:`litetrain.runtime._worker_main`
with the ``@litertjs/core`` package that ``litetrain runtimes install wasm`` puts in the cache. LiteRT.js refuses a
buffer of another size for a dynamic-batch input, so ``infer`` runs through ``infer_fixed`` (chunked and padded by
the runner). One thread: Node has no cross-origin-isolated threads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from litetrain.errors import RuntimeUnavailableError
from litetrain.runtime.install import INSTALL_COMMAND, wasm_package
from litetrain.runtime.worker import WorkerRunner

WASM_WORKER = Path(__file__).resolve().with_name("_worker_wasm.mjs")


class WasmRunner(WorkerRunner):
    """A .tflite model trained by LiteRT.js in a Node worker process.

    Args:
        model: The flatbuffer, or a path to a .tflite file.
        name: Label used in messages and reports.
        require_weights: Also require the ``save``/``restore`` signatures.

    Raises:
        RuntimeUnavailableError: Node or the LiteRT.js package is missing (naming the command that installs it), or
            LiteRT.js cannot load the model (e.g. an int64 tensor).
    """

    @classmethod
    def unavailable(cls) -> RuntimeUnavailableError | None:
        """Why this runtime cannot run here (no Node, LiteRT.js not installed), or None."""
        if shutil.which("node") is None:
            return RuntimeUnavailableError("The wasm runtime needs Node.js (20 or newer), which is not installed.",
                                           hint="Install Node.js, then run 'litetrain runtimes install wasm'.")
        if not (wasm_package() / "package.json").is_file():
            return RuntimeUnavailableError(f"The wasm runtime is not installed (no {wasm_package()}).",
                                           hint=f"Run '{INSTALL_COMMAND} wasm' (npm install @litertjs/core).")
        return None

    def __init__(self, model: bytes | str | Path, *, name: str = "wasm", require_weights: bool = True) -> None:
        missing = self.unavailable()
        if missing is not None:
            raise missing
        super().__init__(model, name=name, require_weights=require_weights)

    def _worker_command(self) -> list[str]:
        return [str(shutil.which("node")), str(WASM_WORKER), str(wasm_package())]
