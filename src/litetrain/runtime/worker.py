"""``WorkerRunner``: a .tflite model trained in a separate process that imports only numpy and the interpreter.

Why a separate process:

- **What the device side really costs.** The child holds only the interpreter, so its peak RSS and its time per
  step are those of on-device training, not of a process that also imported TensorFlow (~750 MiB).
- **Crashes stay contained.** An interpreter kernel that aborts (SIGABRT) or a malformed model that makes it
  segfault kills the child, not litetrain: the call raises :class:`~litetrain.errors.RuntimeCrashError` naming the
  signal and the last lines the child wrote to stderr.
- **Another interpreter.** The child can run under another Python (``runtime_python``), e.g. an environment with
  TensorFlow 2.18 whose ``tf.lite`` interpreter still has the select-TF-ops (Flex) delegate that current desktop
  interpreters dropped (google-ai-edge/LiteRT#6458).

The child is ``_worker_main.py``, run by file path; the wire format is described there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from litetrain.convert.census import op_census
from litetrain.errors import (
    ConversionError,
    InternalError,
    MissingDependencyError,
    RuntimeCrashError,
    RuntimeUnavailableError,
    UsageError,
)
from litetrain.runtime import _worker_main as protocol
from litetrain.runtime.base import Runner, TensorInfo
from litetrain.runtime.litert import Kernels, read_model
from litetrain.runtime.signatures import (
    FLEX_ISSUE,
    flex_unavailable_error,
    signature_call_error,
    signature_layout,
)

WORKER_SCRIPT = Path(protocol.__file__).resolve()
STDERR_TAIL_LINES = 12
PATH_INPUT = "checkpoint_path"  # the save/restore input of --select-tf-ops models (the 2021 recipe)
PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
_CLOSE_TIMEOUT_S = 5.0

FLEX_ENV_COMMAND = "python3.11 -m venv ~/.litetrain-flex && ~/.litetrain-flex/bin/pip install numpy 'tensorflow-cpu==2.18.*'"
"""One command that creates an environment whose interpreter still runs select-TF (Flex) ops."""


class InterpreterSource(enum.StrEnum):
    """Which package provides the worker's TFLite interpreter."""

    AUTO = "auto"
    """The first of ai_edge_litert, tflite_runtime, tensorflow that the worker's Python has."""
    AI_EDGE_LITERT = "ai_edge_litert"
    TFLITE_RUNTIME = "tflite_runtime"
    TENSORFLOW = "tensorflow"
    """``tf.lite.Interpreter``; with TensorFlow <= 2.18 it includes the Flex delegate."""


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """What the worker process runs: its Python, numpy and interpreter."""

    pid: int
    python: str
    executable: str
    numpy: str
    interpreter: str
    interpreter_version: str
    startup_s: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class WorkerStats:
    """Resource use of the worker process, measured inside it.

    Attributes:
        peak_rss_bytes: Peak resident memory of the worker process itself (its memory map's high-water mark
            ``VmHWM`` on Linux, which unlike ``ru_maxrss`` does not include the parent's size at start-up;
            ``getrusage(RUSAGE_SELF).ru_maxrss`` elsewhere).
        cpu_s: User + system CPU time of the worker.
        load_s: Time to create the interpreter and its signature runners.
        calls: Per signature: ``count`` and ``seconds`` spent inside the interpreter call.
        round_trip: Per signature: ``count`` and ``seconds`` of whole requests as this process saw them
            (serialization and the pipe included).
        modules: Top-level modules imported in the worker (``tensorflow`` only when it is the interpreter).
    """

    peak_rss_bytes: int
    cpu_s: float
    load_s: float
    calls: dict[str, dict[str, float]]
    round_trip: dict[str, dict[str, float]]
    modules: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "modules": list(self.modules)}


def resolve_runtime_python(runtime_python: str | os.PathLike[str] | None) -> str:
    """The Python executable for the worker: ``runtime_python``, or this one.

    Args:
        runtime_python: A Python executable, or the folder of a virtual environment (its ``bin/python`` is used).

    Raises:
        UsageError: the path does not exist or is not an executable.
    """
    if runtime_python is None:
        return sys.executable
    path = Path(runtime_python).expanduser()
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
        raise UsageError(
            f"--runtime-python {str(runtime_python)!r} is a folder without bin/python.",
            hint="Pass the Python executable itself, e.g. ~/.litetrain-flex/bin/python.",
        )
    if not path.exists():
        raise UsageError(
            f"--runtime-python {str(runtime_python)!r} does not exist.",
            hint="Pass a Python executable that has numpy and a TFLite interpreter; for the select-TF-ops (Flex) "
            f"interpreter create one with: {FLEX_ENV_COMMAND}",
        )
    if not os.access(path, os.X_OK):
        raise UsageError(f"--runtime-python {str(runtime_python)!r} is not executable.",
                         hint="Pass a Python executable, e.g. ~/.litetrain-flex/bin/python.")
    return str(path)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
            return f"signal {sig.name} ({signal.strsignal(sig) or sig.name})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _enlarge_pipes(*streams: IO[bytes] | None) -> None:
    """Lets one message (a batch of inputs) fit in the pipe, so a write does not wait for the reader in pieces.

    Linux pipes hold 64 KiB by default; a batch of 32 28x28 float32 images is 100 KiB. Elsewhere, or where the
    system limit is lower, the default stays (correct, only slower).
    """
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    for stream in streams:
        if stream is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(stream.fileno(), set_size, PIPE_BYTES)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Finalizer: a runner that was never closed must not leave its worker behind."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class WorkerRunner(Runner):
    """A .tflite model with litetrain's signature convention, run by an interpreter in a child process.

    Behaves like :class:`~litetrain.runtime.litert.LiteRTRunner` (same checks, same signatures, bit-identical
    results with the same interpreter and kernels) and adds the child's resource use (:meth:`stats`,
    :meth:`peak_rss_bytes`, :meth:`timings`). Close it (or use it as a context manager) to end the child.

    Args:
        model: The flatbuffer, or a path to a .tflite file.
        runtime_python: The Python that runs the worker (an executable or a virtual environment's folder);
            None: this Python. It needs numpy and a TFLite interpreter, not litetrain.
        num_threads: Interpreter threads (None: the interpreter's default).
        kernels: Which kernel path to use (None: the default, XNNPACK).
        interpreter: Which package provides the interpreter (None: auto; see :class:`InterpreterSource`).
        name: Label used in messages and reports.
        require_weights: Also require the ``save``/``restore`` signatures.

    Raises:
        UsageError: ``runtime_python`` does not exist or is not executable.
        RuntimeUnavailableError: the worker cannot start or has no interpreter, or the model has Flex ops and
            the worker's interpreter cannot run them.
        ConversionError: not a TFLite model the interpreter accepts.
        SignatureError: a required signature, input or output is missing.
        RuntimeCrashError: the worker died while loading the model.
    """

    def __init__(
        self,
        model: bytes | str | Path,
        *,
        runtime_python: str | os.PathLike[str] | None = None,
        num_threads: int | None = None,
        kernels: Kernels | None = None,
        interpreter: InterpreterSource | str | None = None,
        name: str = "tflite-worker",
        require_weights: bool = True,
    ) -> None:
        super().__init__()
        self.name = name
        self.kernels = Kernels(kernels) if kernels is not None else Kernels.DEFAULT
        try:
            self.interpreter_source = InterpreterSource(interpreter or InterpreterSource.AUTO)
        except ValueError as exc:
            raise UsageError(
                f"Unknown interpreter {interpreter!r}; choose from {[s.value for s in InterpreterSource]}."
            ) from exc
        self.python = resolve_runtime_python(runtime_python)
        self.model_bytes = read_model(model)
        self.census = op_census(self.model_bytes)
        if self.census.flex and runtime_python is None and self.interpreter_source is not InterpreterSource.TENSORFLOW:
            raise flex_unavailable_error(
                self.census.flex,
                extra_hint="; or train it in a worker under a Python whose interpreter has the Flex delegate "
                f"(TensorFlow 2.18): --runtime-python PATH, created with: {FLEX_ENV_COMMAND}",
            )
        self._proc: subprocess.Popen[bytes] | None = None
        self._crash: RuntimeCrashError | None = None
        self._round_trip: dict[str, list[float]] = {}
        # A file, not a pipe: a chatty worker can never block on a full stderr pipe; close() releases it.
        self._stderr: IO[bytes] = tempfile.TemporaryFile(prefix="litetrain-worker-", suffix=".stderr")  # noqa: SIM115
        try:
            self.info = self._start()
            reply, _ = self._request(
                {"cmd": "load", "num_threads": num_threads, "kernels": self.kernels.value},
                {"model": np.frombuffer(self.model_bytes, dtype=np.uint8)},
                during="loading the model",
            )
            layout = signature_layout(reply["signatures"], require_weights=require_weights)
        except BaseException:
            self.close()
            raise
        self.signature_keys = layout.keys
        self.train_inputs = layout.train_inputs
        self.count_input = layout.count_input
        self.infer_input = layout.infer_input
        self.infer_outputs = layout.infer_outputs
        self.has_weights = layout.has_weights
        self.weight_infos = layout.weight_infos
        self._checkpoint_dir: tempfile.TemporaryDirectory[str] | None = None
        # The 2021 recipe (--select-tf-ops) saves and restores through a checkpoint file path with raw Save/Restore
        # ops. With TensorFlow as the worker's interpreter, weights still move as named arrays through such a file.
        self.path_checkpoints = layout.has_weights and set(layout.weight_infos) == {PATH_INPUT}
        if self.path_checkpoints:
            if self.info.interpreter != InterpreterSource.TENSORFLOW:
                self.has_weights, self.weight_infos = False, {}
            else:
                self._checkpoint_dir = tempfile.TemporaryDirectory(prefix="litetrain-worker-ckpt-")
                self.weight_infos = {n: TensorInfo(n, v.shape, v.dtype) for n, v in self._get_weights_impl().items()}

    # -- process lifecycle ---------------------------------------------------------------------------------
    def _start(self) -> WorkerInfo:
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # -I: ignore PYTHONPATH and user site-packages, and keep the script's folder off sys.path, where
        # litetrain's own runtime/tensorflow.py would shadow the real tensorflow package.
        cmd = self._worker_command()
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - the user's chosen Python, our own script
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, close_fds=True
            )
        except OSError as exc:
            raise RuntimeUnavailableError(
                f"Could not start the worker with {self.python!r}: {exc}.",
                hint="Pass a Python executable (3.8 or newer) to --runtime-python.",
            ) from exc
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        _enlarge_pipes(self._proc.stdin, self._proc.stdout)
        try:
            hello, _ = protocol.read_message(self._proc.stdout, np)
        except (EOFError, OSError, ValueError) as exc:
            returncode = self._reap()
            raise RuntimeUnavailableError(
                f"The worker process ({self.python}) ended with {_describe_exit(returncode)} before it was ready."
                + self._stderr_excerpt(),
                hint="--runtime-python must be a Python 3.8 or newer with numpy and a TFLite interpreter "
                "(ai-edge-litert, tflite-runtime or tensorflow).",
            ) from exc
        if not hello.get("ok"):
            self._reap()
            raise MissingDependencyError(
                f"The worker's Python ({self.python}) cannot run the interpreter: {hello.get('message')}.",
                hint=f"Install them into that environment: {self.python} -m pip install numpy ai-edge-litert "
                "(or tensorflow for the Flex-capable tf.lite interpreter).",
            )
        hello.pop("ok")
        return WorkerInfo(**{f.name: hello[f.name] for f in dataclasses.fields(WorkerInfo)})

    def _worker_command(self) -> list[str]:
        """The worker's command line; a runtime that speaks the protocol from another program overrides it."""
        return [self.python, "-I", str(WORKER_SCRIPT), self.interpreter_source.value]

    @property
    def pid(self) -> int | None:
        """The worker's process id (None once it was closed)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _reap(self) -> int:
        """Waits for the worker to end (killing it if it hangs) and returns its exit code."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=_CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    def close(self) -> None:
        """Asks the worker to quit, waits for it (killing it after 5 s) and releases the pipes."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(EOFError, OSError, ValueError):
                    protocol.write_message(proc.stdin, {"cmd": "quit"}, {}, np)
                    protocol.read_message(proc.stdout, np)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            try:
                proc.wait(timeout=_CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._finalizer.detach()
        if not self._stderr.closed:
            self._stderr.close()
        checkpoint_dir, self._checkpoint_dir = getattr(self, "_checkpoint_dir", None), None
        if checkpoint_dir is not None:
            checkpoint_dir.cleanup()

    def _stderr_excerpt(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 8192))
        lines = [ln.rstrip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        lines = lines[-STDERR_TAIL_LINES:]
        if not lines:
            return " It wrote nothing to stderr."
        return " Last lines of its stderr:\n    " + "\n    ".join(lines)

    # -- requests ------------------------------------------------------------------------------------------
    def _request(
        self, header: dict[str, Any], arrays: Mapping[str, np.ndarray] | None = None, *, during: str
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._crash is not None:
            raise RuntimeCrashError(
                f"{self.name}: the worker process crashed earlier ({self._crash.message.splitlines()[0]}).",
                hint="Create a new runner; the interpreter state was lost with the process.",
            )
        if self._proc is None:
            raise UsageError(f"{self.name}: the runner was closed.", hint="Create a new runner.")
        try:
            protocol.write_message(self._proc.stdin, header, arrays or {}, np)
            reply, out = protocol.read_message(self._proc.stdout, np)
        except (EOFError, OSError, ValueError) as exc:
            self._crash = self._crash_error(during)
            raise self._crash from exc
        if not reply.pop("ok", False):
            raise self._failure(reply, during)
        return reply, out

    def _crash_error(self, during: str) -> RuntimeCrashError:
        assert self._proc is not None
        pid = self._proc.pid
        returncode = self._reap()
        what = _describe_exit(returncode)
        return RuntimeCrashError(
            f"The TFLite interpreter process (pid {pid}, {self.info.interpreter} {self.info.interpreter_version}) "
            f"died with {what} while {during}; litetrain itself is unaffected." + self._stderr_excerpt(),
            hint="A kernel or a malformed model crashed the interpreter. Rebuild the model with 'litetrain build' "
            "if it came from elsewhere, try other kernels or another interpreter (--runtime-python), and report "
            "the lines above together with the model if it is valid.",
        )

    def _failure(self, reply: Mapping[str, Any], during: str) -> Exception:
        message = f"{reply.get('error')}: {reply.get('message')}"
        flexy = "Select TensorFlow op" in message or "Flex" in message
        if self.census.flex and flexy:
            return RuntimeUnavailableError(
                f"The worker's interpreter ({self.info.interpreter} {self.info.interpreter_version}, Python "
                f"{self.info.python}) cannot run the model's select-TF (Flex) ops {sorted(self.census.flex)}: "
                f"{reply.get('message')}",
                hint=f"Only TensorFlow <= 2.18's tf.lite interpreter still has the Flex delegate ({FLEX_ISSUE}); "
                f"create such an environment with: {FLEX_ENV_COMMAND} and pass --runtime-python "
                "~/.litetrain-flex/bin/python.",
            )
        if during == "loading the model":
            return ConversionError(f"The {self.info.interpreter} interpreter cannot load the model: {message}")
        if during.startswith("calling"):
            return signature_call_error(self.info.interpreter, during.split("'")[1], message)
        return InternalError(f"{self.name}: the worker failed while {during}: {message}")

    def call(self, signature: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Calls any signature of the model by name with named inputs (no checks; for custom signatures)."""
        start = time.perf_counter()
        _, out = self._request({"cmd": "call", "signature": signature}, inputs, during=f"calling '{signature}'")
        stat = self._round_trip.setdefault(signature, [0, 0.0])
        stat[0] += 1
        stat[1] += time.perf_counter() - start
        return out

    # -- Runner --------------------------------------------------------------------------------------------
    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        xs, ys = self.train_inputs[0].tensors(x), self.train_inputs[1].tensors(y)
        return float(self.call("train", **xs, **ys, **self.count_feed(n))["loss"])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.call("infer", **self.infer_input.tensors(x))

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        if self._checkpoint_dir is None:
            return self.call("save")
        path = self._checkpoint_path()
        self.call("save", **{PATH_INPUT: np.array(path.encode())})
        return self._request({"cmd": "read_checkpoint", "path": path}, during="reading a checkpoint file")[1]

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        if self._checkpoint_dir is None:
            self.call("restore", **dict(weights))
            return
        path = self._checkpoint_path()
        self._request({"cmd": "write_checkpoint", "path": path}, weights, during="writing a checkpoint file")
        self.call("restore", **{PATH_INPUT: np.array(path.encode())})

    def _checkpoint_path(self) -> str:
        assert self._checkpoint_dir is not None
        return str(Path(self._checkpoint_dir.name) / "weights.ckpt")

    # -- resource use --------------------------------------------------------------------------------------
    def stats(self) -> WorkerStats:
        """The worker's peak RSS, CPU time, per-signature timings and imported modules, measured inside it."""
        reply, _ = self._request({"cmd": "stats"}, during="reading its statistics")
        return WorkerStats(
            peak_rss_bytes=int(reply["peak_rss_bytes"]),
            cpu_s=float(reply["cpu_s"]),
            load_s=float(reply["load_s"]),
            calls={k: {"count": int(v["count"]), "seconds": float(v["seconds"])} for k, v in reply["calls"].items()},
            round_trip={k: {"count": int(c), "seconds": float(s)} for k, (c, s) in self._round_trip.items()},
            modules=tuple(reply["modules"]),
        )

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the worker process, in bytes."""
        return self.stats().peak_rss_bytes

    def timings(self) -> dict[str, Any]:
        """Start-up and load time, and per signature the calls and seconds inside the interpreter and round trip."""
        stats = self.stats()
        out: dict[str, Any] = {"startup_s": self.info.startup_s, "load_s": stats.load_s, "signatures": {}}
        for key in sorted(set(stats.calls) | set(stats.round_trip)):
            inside = stats.calls.get(key, {"count": 0, "seconds": 0.0})
            trip = stats.round_trip.get(key, {"count": 0, "seconds": 0.0})
            out["signatures"][key] = {
                "calls": inside["count"],
                "interpreter_s": inside["seconds"],
                "round_trip_s": trip["seconds"],
                "mean_interpreter_us": 1e6 * inside["seconds"] / inside["count"] if inside["count"] else None,
                "mean_round_trip_us": 1e6 * trip["seconds"] / trip["count"] if trip["count"] else None,
            }
        return out


__all__ = [
    "FLEX_ENV_COMMAND",
    "InterpreterSource",
    "WorkerInfo",
    "WorkerRunner",
    "WorkerStats",
    "resolve_runtime_python",
]
