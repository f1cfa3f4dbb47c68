"""The federated client: restore the global weights, train E local epochs through ``train``, return ``save``.

The TFLite client runs the .tflite artifact in the LiteRT interpreter (numpy and the interpreter only, as a phone
does); the TensorFlow client runs the same model's SavedModel. Both are the same :class:`LocalTrainer`, which the
Flower ``ClientApp`` calls inside Ray workers and which the benchmark's bare loop calls directly.

What travels: only the model's trainable weights (the ``save`` outputs of role ``weight``). The optimizer state
(iteration counter, momentum and Adam slots) never leaves the device and is reset to its initial values at the
start of every round: FedAvg averages model weights, a phone's optimizer state is its own, and averaging
per-client step counters or second moments has no meaning. Frozen layers are constants inside the model and
never change, so they are not sent either.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import io
import shutil
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._lazy import import_module
from litetrain.data.batching import plan_batches
from litetrain.errors import UsageError
from litetrain.federated.faults import FaultSettings, client_fault, order_seed, simulated_failure
from litetrain.runtime.base import Runner


class RuntimeKind(enum.StrEnum):
    """The runtime of a federation's clients (travels in Flower config records as its plain string value).

    ``TFLITE_PERTURBED`` is the noise floor's federation: TFLite clients (XNNPACK, as fast as the TFLite
    federation) that train every batch with its rows reversed (the same mean loss, another summation order); the
    server starts it from initial weights moved by one unit in the last place. Nothing changes mathematically, so
    how far it drifts from the TFLite federation is the float32 noise of the federation. (The builtin kernels
    without XNNPACK, tried as well, doubled its cost on a small CNN and judged the same.)
    """

    TFLITE = "tflite"
    TENSORFLOW = "tensorflow"
    TFLITE_PERTURBED = "tflite-perturbed"


@dataclasses.dataclass(frozen=True, eq=False)
class ClientData:
    """Everything a client process needs, shipped once per worker through Ray's object store.

    Attributes:
        key: Unique per federation; the per-process cache key.
        tflite: The .tflite flatbuffer (the model a phone runs).
        saved_model: The SavedModel folder as zip bytes (for TensorFlow clients), or None.
        x, y: The fitted training arrays; each client reads only its shard.
        shards: Sample indices of every client, by partition id.
        weight_names: The variables that travel (trainable weights).
        batch_size: The train signature's fixed batch.
        learning_rate: The local optimizer's learning rate (used by FedProx's proximal step).
        noise_reverses_rows: Whether the noise run (``TFLITE_PERTURBED``) reverses the rows of every batch: not
            when the train step draws dropout masks or noise by position in the batch (then another row order
            trains another model, not the same one in another summation order).
    """

    key: str
    tflite: bytes
    saved_model: bytes | None
    x: np.ndarray
    y: np.ndarray
    shards: tuple[np.ndarray, ...]
    weight_names: tuple[str, ...]
    batch_size: int
    learning_rate: float
    noise_reverses_rows: bool = True


@dataclasses.dataclass(frozen=True)
class ClientUpdate:
    """What one client sends back after a round (weights) and what it reports about it."""

    weights: dict[str, np.ndarray]
    num_examples: int
    steps: int
    mean_loss: float
    seconds: float
    straggler: bool


def zip_folder(folder: str | Path) -> bytes:
    """A folder as zip bytes (a SavedModel travels to Ray workers on other machines this way)."""
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def extraction_root(key: str) -> Path:
    """Where the workers of federation ``key`` on this machine unpack its SavedModel.

    Removed when the federation ends: on the driver's machine by the driver, on the other nodes of a cluster by
    a task pinned to each (:func:`litetrain.federated.cluster.remove_remote_extractions`).
    """
    return Path(tempfile.gettempdir()) / f"litetrain-federate-{key}"


def remove_extraction(key: str) -> bool:
    """Removes this machine's :func:`extraction_root` of ``key``; True when there was one (runs as a Ray task)."""
    root = extraction_root(key)
    existed = root.exists()
    shutil.rmtree(root, ignore_errors=True)
    return existed


def _unzip_to_temp(data: bytes, key: str) -> Path:
    # Ray kills its workers at shutdown without running atexit handlers, so the folder (extraction_root) is
    # removed on every node when the federation ends; atexit covers workers that do exit normally.
    root = extraction_root(key)
    root.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="sm-", dir=root))
    atexit.register(shutil.rmtree, target, True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(target)
    return target


def _limit_tensorflow_threads(num_threads: int) -> None:
    """One Ray CPU per client should mean one thread; only possible before TensorFlow's runtime starts."""
    tf = import_module("tensorflow")

    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:  # already initialized (e.g. in the driver process): keep its settings
        pass


class LocalTrainer:
    """Local training of any client on either runtime; runners are created once and reused across clients.

    Args:
        data: The federation's client data.
        num_threads: Threads of each runtime (1: one Ray CPU per client).
        saved_model_dir: Use this SavedModel folder instead of unzipping ``data.saved_model`` (driver side).
    """

    def __init__(self, data: ClientData, *, num_threads: int | None = 1, saved_model_dir: str | Path | None = None):
        self.data = data
        self.num_threads = num_threads
        self._saved_model_dir = Path(saved_model_dir) if saved_model_dir is not None else None
        self._runners: dict[str, Runner] = {}
        self._initial_state: dict[str, dict[str, np.ndarray]] = {}

    def runner(self, runtime: str) -> Runner:
        """The runner of ``runtime``, created on first use (the TensorFlow one imports TensorFlow then)."""
        if runtime not in self._runners:
            if runtime in (RuntimeKind.TFLITE, RuntimeKind.TFLITE_PERTURBED):
                from litetrain.runtime.litert import LiteRTRunner

                runner: Runner = LiteRTRunner(self.data.tflite, num_threads=self.num_threads)
                if runtime == RuntimeKind.TFLITE_PERTURBED and self.data.noise_reverses_rows:
                    from litetrain.comparison.noise import ReversedRowsRunner

                    runner = ReversedRowsRunner(runner)
            elif runtime == RuntimeKind.TENSORFLOW:
                if self._saved_model_dir is None:
                    if self.data.saved_model is None:
                        raise UsageError("This federation has no SavedModel, so it cannot train TensorFlow clients.")
                    self._saved_model_dir = _unzip_to_temp(self.data.saved_model, self.data.key)
                if self.num_threads:
                    _limit_tensorflow_threads(self.num_threads)
                from litetrain.runtime.tensorflow import SavedModelRunner

                runner = SavedModelRunner(self._saved_model_dir)
            else:
                raise UsageError(f"Unknown runtime {runtime!r}; expected tflite, tensorflow or tflite-perturbed.")
            # Read before any training: the optimizer's initial state, restored at the start of every round.
            names = set(self.data.weight_names)
            self._initial_state[runtime] = {k: v for k, v in runner.get_weights().items() if k not in names}
            self._runners[runtime] = runner
        return self._runners[runtime]

    def train(
        self,
        runtime: str,
        global_weights: Mapping[str, np.ndarray],
        *,
        round_: int,
        client: int,
        seed: int,
        epochs: int,
        faults: FaultSettings | None = None,
        proximal_mu: float = 0.0,
    ) -> ClientUpdate:
        """Trains ``client``'s shard for ``epochs`` local epochs from ``global_weights``.

        Raises:
            SimulatedClientFailure: the client's seeded fault makes it fail mid-round.
        """
        runner = self.runner(runtime)
        runner.set_weights({**self._initial_state[runtime], **global_weights})
        shard = self.data.shards[client]
        plan = plan_batches(len(shard), self.data.batch_size, epochs=epochs, seed=order_seed(seed, round_, client))
        fault = client_fault(faults or FaultSettings(), seed, round_, client, plan.steps)
        anchor = {k: np.asarray(v) for k, v in global_weights.items()} if proximal_mu else None
        losses = np.empty(plan.steps, dtype=np.float64)
        start = time.perf_counter()
        for step, rows in enumerate(plan.indices):
            if fault.fails_at_step == step:
                raise simulated_failure(
                    f"client {client} failed at local step {step + 1} of {plan.steps} in round {round_}")
            idx = shard[rows]
            losses[step] = runner.train_step(self.data.x[idx], self.data.y[idx])
            if anchor is not None:
                self._proximal_step(runner, anchor, proximal_mu)
        seconds = time.perf_counter() - start
        out = runner.get_weights()
        return ClientUpdate(
            weights={n: out[n] for n in self.data.weight_names},
            num_examples=int(len(shard)),
            steps=plan.steps,
            mean_loss=float(np.mean(losses)),
            seconds=seconds,
            straggler=fault.straggler,
        )

    def _proximal_step(self, runner: Runner, anchor: Mapping[str, np.ndarray], mu: float) -> None:
        """FedProx's proximal term mu/2 |w - w_global|^2, applied as its own gradient step after each train step.

        The train signature's loss cannot be changed on the device, so the proximal gradient mu (w - w_global)
        is applied through ``save``/``restore`` with the local learning rate (for SGD this is exactly a step on
        the FedProx objective, with the proximal gradient taken after the data gradient).
        """
        current = runner.get_weights()
        lr = self.data.learning_rate
        for name, w0 in anchor.items():
            w = current[name]
            current[name] = (w - lr * mu * (w - w0)).astype(w.dtype, copy=False)
        runner.set_weights(current)


# -- Flower side -------------------------------------------------------------------------------------------
_WORKER_TRAINERS: dict[str, LocalTrainer] = {}


def _worker_trainer(key: str, ref: Any) -> LocalTrainer:
    """This process's trainer for the federation ``key``; the data is fetched from Ray once per process."""
    trainer = _WORKER_TRAINERS.get(key)
    if trainer is None:
        import ray

        data = ref if isinstance(ref, ClientData) else ray.get(ref)
        _WORKER_TRAINERS.clear()  # a worker serves one federation at a time; free the previous one
        trainer = _WORKER_TRAINERS[key] = LocalTrainer(data)
    return trainer


def weights_to_record(weights: Mapping[str, np.ndarray]) -> Any:
    """Named arrays as a Flower ``ArrayRecord`` (sorted by name, so every runtime sends the same layout)."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.asarray(weights[k])) for k in sorted(weights)})


def record_to_weights(record: Any) -> dict[str, np.ndarray]:
    """A Flower ``ArrayRecord`` as named numpy arrays."""
    return {k: v.numpy() for k, v in record.items()}


def make_client_app(key: str, ref: Any) -> Any:
    """The Flower ``ClientApp`` of a federation.

    Args:
        key: The federation's key (``ClientData.key``).
        ref: A Ray ``ObjectRef`` of the :class:`ClientData` (or the data itself); the ``ClientApp`` is pickled
            for every message, so it carries only this reference.
    """
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.query()
    def query(msg: Any, context: Any) -> Any:
        """Tells the server which partition this node holds (node ids are random, partition ids are not)."""
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg)

    @app.train()
    def train(msg: Any, context: Any) -> Any:
        pid = int(context.node_config["partition-id"])
        cfg = msg.content["config"]
        update = _worker_trainer(key, ref).train(
            str(cfg["runtime"]),
            record_to_weights(msg.content["arrays"]),
            round_=int(cfg["server-round"]),
            client=pid,
            seed=int(cfg["seed"]),
            epochs=int(cfg["local-epochs"]),
            faults=FaultSettings(float(cfg["failure-rate"]), float(cfg["straggler-rate"])),
            proximal_mu=float(cfg["proximal-mu"]) if "proximal-mu" in cfg else 0.0,
        )
        metrics = MetricRecord({
            "num-examples": update.num_examples,
            "partition-id": pid,
            "train-loss": update.mean_loss,
            "steps": update.steps,
            "seconds": update.seconds,
            "straggler": int(update.straggler),
        })
        return Message(RecordDict({"arrays": weights_to_record(update.weights), "metrics": metrics}), reply_to=msg)

    return app
