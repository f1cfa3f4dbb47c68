"""``Arm64Runner``: the LiteRT interpreter of the aarch64 ai-edge-litert wheel, emulated by qemu-user.

What a phone's CPU computes (XNNPACK's ARM64/NEON kernels), on an x86 desktop: the worker process
(:mod:`litetrain.runtime.worker`, the one way a runtime runs out of process) runs under the arm64 Python that
``litetrain runtimes install arm64`` puts in the cache (:mod:`litetrain.runtime.install`). Emulation is slow (about
20x on an idle machine, plus several seconds to start); its steps/s are not a phone's.
"""

from __future__ import annotations

from pathlib import Path

from litetrain.errors import RuntimeUnavailableError
from litetrain.runtime.install import require_arm64
from litetrain.runtime.worker import InterpreterSource, WorkerRunner


class Arm64Runner(WorkerRunner):
    """A .tflite model trained by the ARM64 LiteRT interpreter under qemu-user, in a worker process.

    Args:
        model: The flatbuffer, or a path to a .tflite file.
        num_threads: Interpreter threads (None: 1; XNNPACK's spinning threads only slow an emulated CPU down).
        name: Label used in messages and reports.
        require_weights: Also require the ``save``/``restore`` signatures.

    Raises:
        RuntimeUnavailableError: the arm64 runtime is not installed (naming the command that installs it), or the
            emulated process cannot start.
    """

    @classmethod
    def unavailable(cls) -> RuntimeUnavailableError | None:
        """Why this runtime cannot run here (not installed, with the command that installs it), or None."""
        try:
            require_arm64()
        except RuntimeUnavailableError as exc:
            return exc
        return None

    def __init__(
        self,
        model: bytes | str | Path,
        *,
        num_threads: int | None = None,
        name: str = "arm64",
        require_weights: bool = True,
    ) -> None:
        super().__init__(model, runtime_python=require_arm64(), num_threads=1 if num_threads is None else num_threads,
                         interpreter=InterpreterSource.AI_EDGE_LITERT, name=name, require_weights=require_weights)
