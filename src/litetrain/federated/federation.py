"""``federate``: a fleet of devices training the TFLite model, simulated on Flower's Ray engine.

One call builds (or reuses) the trainable model, splits the training data into client shards, runs the
federation on Flower's simulation engine with one ``ClientApp`` per simulated device, evaluates the global model
on held-out data after every round, checkpoints it, and with ``runtime="both"`` runs the same federation with
TensorFlow clients and compares the two global models round by round.

The Ray cluster: by default Ray starts locally with every core of this machine and one core per client (so a
2-core machine trains 2 clients at a time). Setting ``ray_address`` (``--ray-address``) or the ``RAY_ADDRESS``
environment variable to a running cluster (e.g. ``ray://head:10001`` or ``auto``) runs the same code there; the
workers need litetrain and ``litetrain[federated]`` installed, nothing else (the model and the shards travel
through Ray's object store). A Ray session this process already runs (``ray.init`` in a notebook) is used as it
is and left running; see :mod:`litetrain.federated.cluster`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._env import environment
from litetrain._io import json_safe
from litetrain._lazy import import_module
from litetrain.comparison.verdict import DEFAULT_FAIL_ON, Verdict, parse_fail_on
from litetrain.config import Loss, LossConfig, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.data.fit import FittedData, TaskKind, class_indices, fit_to_model
from litetrain.errors import DataError, ModelLoadError, UsageError
from litetrain.federated.agreement import RoundAgreement, compare_round, learned, overall_verdict
from litetrain.federated.client import ClientData, RuntimeKind, extraction_root, make_client_app, zip_folder
from litetrain.federated.cluster import (
    check_ray_address,
    keep_ray_running,
    node_cpus,
    plan_actors,
    ray_running,
    ray_session,
    remove_remote_extractions,
    requested_address,
)
from litetrain.federated.faults import FaultSettings
from litetrain.federated.partition import PartitionKind, PartitionSpec, describe_partition, partition
from litetrain.federated.result import FederateResult
from litetrain.federated.server import (
    RuntimeRound,
    ServerPlan,
    StrategyKind,
    check_strategy_options,
    make_server_app,
    make_strategy,
    restore_strategy_state,
    strategy_state,
)
from litetrain.runtime.base import Runner
from litetrain.training.checkpoint import CheckpointError, CheckpointStore

DEFAULT_CLIENTS = 10
DEFAULT_ROUNDS = 3
DEFAULT_LOCAL_EPOCHS = 1
DEFAULT_CPUS_PER_CLIENT = 1.0
WHAT_TRAVELS = ("trainable weights only (the save outputs of role 'weight'); the optimizer state stays on the "
                "device and is reset to its initial values every round; frozen layers are constants and never sent")


class RuntimeChoice(enum.StrEnum):
    """Which clients train: the .tflite in LiteRT, the SavedModel in TensorFlow, or both federations."""

    TFLITE = "tflite"
    TENSORFLOW = "tensorflow"
    BOTH = "both"

    @property
    def runtimes(self) -> tuple[RuntimeKind, ...]:
        """The federations this choice runs, TFLite first."""
        if self is RuntimeChoice.BOTH:
            return (RuntimeKind.TFLITE, RuntimeKind.TENSORFLOW)
        return (RuntimeKind(self.value),)


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


def _is_built_dir(model: Any) -> bool:
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
    if _is_built_dir(model) and (any(v is not None for v in (loss, optimizer, batch_size, trainable))
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
    if _is_built_dir(model):
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


def heldout_loss(outputs: np.ndarray, data: FittedData, loss: LossConfig) -> float:
    """The model's loss on the held-out data, from its ``infer`` outputs (numpy, so both runtimes share it).

    Cross-entropy is computed as Keras computes it (:mod:`litetrain.comparison.health`'s formulas).

    Raises:
        DataError: a cross-entropy loss on data that has no class labels (not fitted as a multiclass task).
    """
    from litetrain.comparison.health import cross_entropy_probs, log_softmax

    out = np.asarray(outputs, np.float64)
    eps = 1e-7
    if loss.name in (Loss.SPARSE_CATEGORICAL_CROSSENTROPY, Loss.CATEGORICAL_CROSSENTROPY):
        if data.test_labels is None or data.task is not TaskKind.MULTICLASS:
            raise DataError(
                f"The loss {loss.name.value} needs class labels, but the held-out data was fitted as a "
                f"{data.task.value} task.",
                hint="Use labels that are class indices or one-hot rows, one output per class.",
            )
        labels = data.test_labels.astype(np.int64)
        if loss.from_logits:
            return float(-np.mean(log_softmax(out)[np.arange(len(labels)), labels]))
        return float(np.mean(cross_entropy_probs(np.eye(out.shape[-1])[labels], out)))
    target = np.asarray(data.y_test, np.float64).reshape(out.shape)
    if loss.name is Loss.BINARY_CROSSENTROPY:
        p = 1.0 / (1.0 + np.exp(-out)) if loss.from_logits else out
        p = np.clip(p, eps, 1 - eps)
        return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
    if loss.name is Loss.MAE:
        return float(np.mean(np.abs(out - target)))
    return float(np.mean((out - target) ** 2))


class _Evaluator:
    """Server-side evaluation of a global model with a runtime's ``infer`` on the held-out data."""

    def __init__(self, runner: Runner, weight_names: tuple[str, ...], data: FittedData, loss: LossConfig):
        self.runner = runner
        names = set(weight_names)
        self.state = {k: v for k, v in runner.get_weights().items() if k not in names}
        self.data = data
        self.loss = loss

    def __call__(self, weights: dict[str, np.ndarray]) -> tuple[dict[str, Any], np.ndarray]:
        self.runner.set_weights({**self.state, **weights})
        out = self.runner.infer(self.data.x_test)[self.runner.primary_output]
        finite = bool(np.all(np.isfinite(out)))
        acc = self.data.accuracy(out, self.loss.from_logits) if finite else None
        loss = heldout_loss(out, self.data, self.loss) if finite else float("nan")
        return {"accuracy": acc, "loss": loss}, out


def class_labels(data: FittedData) -> np.ndarray | None:
    """Class indices of the fitted training labels (what label-skewed partitions deal), or None if not classes."""
    if data.task is not TaskKind.MULTICLASS:
        return None
    y = np.asarray(data.y)
    return (np.argmax(y, axis=-1) if y.ndim > 1 else y).astype(np.int64)


def _centralized(
    runner: Runner, evaluator: _Evaluator, initial: dict[str, np.ndarray], data: FittedData, pooled: np.ndarray,
    batch: int, rounds: int, epochs: int, seed: int,
) -> dict[str, Any]:
    """TensorFlow trained on the pooled shards for rounds x local epochs, evaluated at every round's worth."""
    from litetrain.data.batching import plan_batches

    runner.set_weights({**evaluator.state, **initial})
    plan = plan_batches(len(pooled), batch, epochs=rounds * epochs, seed=seed)
    per_round = plan.steps_per_epoch * epochs
    accuracy, loss = [], []
    start = time.perf_counter()
    for i, rows in enumerate(plan.indices):
        idx = pooled[rows]
        runner.train_step(data.x[idx], data.y[idx])
        if (i + 1) % per_round == 0:
            ev, _ = evaluator(runner.get_weights())
            accuracy.append(ev["accuracy"])
            loss.append(ev["loss"])
    return {"accuracy": accuracy[-1], "loss": loss[-1], "accuracy_by_round": accuracy, "loss_by_round": loss,
            "epochs": rounds * epochs, "steps": plan.steps, "samples": int(len(pooled)),
            "seconds": time.perf_counter() - start}


@contextlib.contextmanager
def _quiet_flower(verbose: bool) -> Iterator[None]:
    """Flower logs every round and every client error at INFO/ERROR; litetrain prints its own summary."""
    logger = logging.getLogger("flwr")
    old = logger.level
    if not verbose:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def _check_local_cpus(cpus: float, ray_address: str | None) -> None:
    """A local Ray has this machine's cores; a client that needs more would never be scheduled."""
    if requested_address(ray_address) or ray_running():
        return  # a cluster's (or the caller's Ray's) nodes are known only once connected (checked there)
    available = os.cpu_count() or 1
    if cpus > available:
        raise UsageError(
            f"--cpus-per-client {cpus:g} is more than the {available} CPUs of the local Ray, so no client could run.",
            hint=f"Use --cpus-per-client {available} or less, or --ray-address for a larger cluster.",
        )


def _check_checkpoint_dir(probe: CheckpointStore, model: Any, resume: bool) -> bool:
    """Checks ``--checkpoint-dir`` (``probe``, held by this federation) and ``--resume`` before any work; True to
    reuse the model built there.

    A federation started from a Keras model keeps its built model in ``DIR/model``, and resuming continues that
    model (rebuilding would draw new initial weights). So on ``--resume`` a MODEL path or factory must be the
    one the federation was started with (its ``build.json`` source: the same file, or the same name where the
    recorded path cannot be found from here); a MODEL that is itself a built folder is
    loaded as given and the checkpoint's fingerprint decides. An in-memory model cannot be identified, and the
    folder's model continues.

    Raises:
        UsageError: checkpoints there without ``--resume``.
        CheckpointError: the folder is not writable, ``--resume`` names another model than the folder's, or it
            holds checkpoints without their model.
    """
    workdir = probe.directory
    if not resume and probe.paths():
        raise UsageError(
            f"{str(workdir)!r} already holds the checkpoints of a federation.",
            hint="Add --resume to continue it, or choose an empty --checkpoint-dir.",
        )
    probe.check_writable()
    built = workdir / "model"
    if not resume or _is_built_dir(model):
        return False
    if not _is_built_dir(built):
        if probe.paths():
            # Building MODEL into this folder could never match checkpoints that came without their model (or
            # that are not a federation's at all, e.g. a 'litetrain train' session's), and would litter it.
            raise CheckpointError(
                f"{str(workdir)!r} holds checkpoints but not the model of a federation ({str(built)!r} is missing).",
                hint="If the federation was started from a built model folder, pass that folder as MODEL; "
                "otherwise choose another --checkpoint-dir.",
            )
        return False
    if isinstance(model, str | os.PathLike):
        try:
            source = str(json.loads((built / "build.json").read_text(encoding="utf-8"))["source"])
        except (OSError, ValueError, KeyError, TypeError):
            return True  # load_built reports the unreadable build.json
        given = os.fspath(model)
        if not _same_model(given, source):
            raise CheckpointError(
                f"{str(workdir)!r} holds the checkpoints of a federation of {source!r}; received MODEL {given!r}.",
                hint="Resume with the MODEL the federation started with, or start this model's federation in "
                "another --checkpoint-dir.",
            )
    return True


def _same_model(given: str, source: str) -> bool:
    """Whether MODEL ``given`` is the ``source`` a folder's model was built from (a path or a factory)."""
    if given == source:
        return True
    try:
        return os.path.samefile(given, source)
    except OSError:
        # One of them is a factory, or a path that cannot be found from here (the federation was started from
        # another working folder): refuse only what is surely another model, i.e. another name.
        return Path(given).name == Path(source).name


def _known_batch(model: Any, batch_size: int | None) -> int | None:
    """The train signature's batch as known before building: a built folder's, else the one it will get."""
    if _is_built_dir(model):
        try:
            return int(json.loads((Path(model) / "build.json").read_text(encoding="utf-8"))["settings"]["batch_size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # load_built reports the unreadable build.json
    from litetrain.config import DEFAULT_BATCH_SIZE

    return DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)


def _raw_class_labels(y: np.ndarray) -> np.ndarray | None:
    """Class indices of a dataset's labels as given (indices or one-hot), or None when they are not classes.

    The number of classes is not known before the model is loaded, so any width of one-hot rows and any
    non-negative whole numbers count as classes here; ``fit_to_model`` checks them against the model later.
    """
    y = np.asarray(y)
    if y.size == 0 or not np.issubdtype(y.dtype, np.number):
        return None
    classes = y.shape[1] if y.ndim == 2 and y.shape[1] > 1 else np.iinfo(np.int64).max
    try:
        return class_indices(y, classes, "y", "data")
    except DataError:
        return None


def _preflight_partition(dataset: Dataset, clients: int, spec: PartitionSpec, seed: int, batch: int | None) -> None:
    """Deals the raw labels before anything is built, so that a split that cannot work fails at once.

    More clients than batches, ``by-class:K`` beyond the number of classes or a Dirichlet split that leaves a
    client without a batch raise here in a second instead of after the build. The federation deals the fitted
    data again with the same function and seed; for class indices and one-hot labels that is the same split.
    """
    if batch is None:
        return
    labels = _raw_class_labels(dataset.y)
    if labels is None and spec.kind is not PartitionKind.IID:
        return  # whether these are classes is known once the data is fitted to the model's output
    partition(len(dataset.x), clients, spec, labels=labels, seed=seed, min_samples=batch)


def _fingerprint(prepared: PreparedModel, initial: dict[str, np.ndarray], settings: dict[str, Any]) -> dict[str, Any]:
    from litetrain.training.checkpoint import model_fingerprint

    keys = ("data", "clients", "local_epochs", "batch_size", "partition", "fraction_fit", "strategy", "proximal_mu",
            "server_lr", "runtimes", "seed", "client_failure_rate", "straggler_rate")
    return {**model_fingerprint(prepared.tflite, initial), "federation": {k: settings[k] for k in keys}}


def federate(
    model: Any,
    data: str | Dataset | None = None,
    *,
    clients: int | None = None,
    rounds: int | None = None,
    local_epochs: int | None = None,
    batch_size: int | None = None,
    partition_spec: PartitionSpec | str | None = None,
    fraction_fit: float | None = None,
    runtime: RuntimeChoice | str | None = None,
    strategy: StrategyKind | str | None = None,
    proximal_mu: float | None = None,
    server_lr: float | None = None,
    client_failure_rate: float | None = None,
    straggler_rate: float | None = None,
    round_timeout: float | None = None,
    seed: int | None = None,
    loss: LossConfig | str | None = None,
    optimizer: OptimizerConfig | None = None,
    trainable: TrainableSpec | str | None = None,
    select_tf_ops: bool = False,
    centralized: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    tolerances: Tolerances | None = None,
    fail_on: Any = None,
    ray_address: str | None = None,
    cpus_per_client: float | None = None,
    verbose: bool = False,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> FederateResult:
    """Simulates a fleet of devices fine-tuning the TFLite model with federated averaging on Flower.

    Args:
        model: Anything ``litetrain build`` accepts, or a folder written by ``litetrain build -o DIR``.
        data: ``digits`` (default), ``digits:HxW`` or an ``.npz``; the training split is dealt to the clients,
            the held-out split evaluates the global model.
        clients: Simulated devices (default 10).
        rounds: Federated rounds (default 3).
        local_epochs: Epochs over its shard each sampled client trains per round (default 1).
        batch_size: The train signature's batch (default 32; fixed by a built folder).
        partition_spec: ``iid`` (default), ``dirichlet:ALPHA`` or ``by-class:K``.
        fraction_fit: Fraction of clients sampled each round (default 1.0).
        runtime: ``tflite``, ``tensorflow`` or ``both`` (default): the same federation twice, compared.
        strategy: ``fedavg`` (default), ``fedadam`` (``server_lr``: its eta) or ``fedprox`` (``proximal_mu``).
        client_failure_rate: Probability that a sampled client fails mid-round (default 0).
        straggler_rate: Probability that a sampled client's update arrives after the deadline (default 0).
        round_timeout: Wall-clock seconds the server waits for updates each round (default: no limit).
        seed: Seeds initialization, partition, sampling, faults and batch order (default 0).
        loss, optimizer, trainable, select_tf_ops: As for ``build``.
        centralized: Also train TensorFlow on the pooled shards as the reference accuracy.
        checkpoint_dir: Checkpoint the global model(s) there after every round (and keep the built model).
        resume: Continue from the newest checkpoint in ``checkpoint_dir``.
        tolerances: atol/rtol for comparing the global models (default as ``check``).
        fail_on: Verdicts that make ``bool(result)`` False (default: inconsistent, unhealthy).
        ray_address: A Ray cluster to run on (default: ``RAY_ADDRESS``, else a local Ray on this machine).
        cpus_per_client: Ray CPUs per simulated client (default 1): how many clients train at once.
        verbose: Show Flower's and Ray's logs.
        on_round: Called with each round's record as soon as it is complete (progress).

    Returns:
        A :class:`FederateResult`.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    clients = DEFAULT_CLIENTS if clients is None else int(clients)
    rounds = DEFAULT_ROUNDS if rounds is None else int(rounds)
    local_epochs = DEFAULT_LOCAL_EPOCHS if local_epochs is None else int(local_epochs)
    fraction_fit = 1.0 if fraction_fit is None else float(fraction_fit)
    seed = 0 if seed is None else int(seed)
    cpus = DEFAULT_CPUS_PER_CLIENT if cpus_per_client is None else float(cpus_per_client)
    spec = partition_spec if isinstance(partition_spec, PartitionSpec) else PartitionSpec.parse(partition_spec)
    try:
        choice = RuntimeChoice(runtime or RuntimeChoice.BOTH)
        kind = StrategyKind(strategy or StrategyKind.FEDAVG)
    except ValueError as exc:
        raise UsageError(f"{exc}.", hint="runtime: tflite, tensorflow or both; strategy: fedavg, fedadam or "
                         "fedprox.") from exc
    faults = FaultSettings(client_failure_rate or 0.0, straggler_rate or 0.0)
    tol = tolerances or Tolerances()
    fail = fail_on if isinstance(fail_on, frozenset) else (
        parse_fail_on(fail_on) if fail_on is None or isinstance(fail_on, str) else frozenset(Verdict(v) for v in fail_on))
    for name, value in (("--clients", clients), ("--rounds", rounds), ("--local-epochs", local_epochs)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1; received {value}.")
    if not 0.0 < fraction_fit <= 1.0:
        raise UsageError(f"--fraction-fit must be in (0, 1]; received {fraction_fit}.")
    if round_timeout is not None and not round_timeout > 0:
        raise UsageError(f"--round-timeout must be positive; received {round_timeout}.")
    if not cpus > 0:
        raise UsageError(f"--cpus-per-client must be positive; received {cpus}.")
    if resume and checkpoint_dir is None:
        raise UsageError("--resume needs --checkpoint-dir (the folder of the federation to continue).")
    check_strategy_options(kind, proximal_mu, server_lr)
    check_build_options(model, loss=loss, optimizer=optimizer, batch_size=batch_size, trainable=trainable,
                        select_tf_ops=select_tf_ops)
    _check_local_cpus(cpus, ray_address)
    # Everything that can be checked without building the model or starting Ray is checked here, so that a bad
    # option costs a second, not a build and a Ray start-up.
    store = None
    with contextlib.ExitStack() as stack:
        reuse = False
        folder: CheckpointStore | None = None
        if checkpoint_dir is not None:
            # One folder, one federation: locked from the first look at it to the last round's checkpoint.
            folder = stack.enter_context(CheckpointStore(Path(checkpoint_dir), fingerprint={}).session())
            reuse = _check_checkpoint_dir(folder, model, resume)
        dataset = load_dataset(data)
        _preflight_partition(dataset, clients, spec, seed,
                             _known_batch(Path(checkpoint_dir) / "model" if reuse else model, batch_size))
        check_ray_address(ray_address)  # an unreachable cluster fails here, not after the build
        runtimes = choice.runtimes
        uses_tensorflow = RuntimeKind.TENSORFLOW in runtimes or centralized
        from litetrain.federated.ray_worker import import_federated

        import_federated("flwr.simulation")  # fail before any work when the extra is missing (imports TensorFlow)
        with _quiet_flower(verbose):
            strategies = {rt: make_strategy(kind, proximal_mu=proximal_mu, server_lr=server_lr) for rt in runtimes}
        import flwr
        import ray

        if checkpoint_dir is not None:
            workdir = Path(checkpoint_dir)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="litetrain-federate-")))
        t0 = time.perf_counter()
        prepared = load_built(workdir / "model") if reuse else prepare_model(
            model, workdir, loss=loss, optimizer=optimizer, batch_size=batch_size, trainable=trainable,
            select_tf_ops=select_tf_ops, seed=seed, tensorflow_twin=uses_tensorflow)
        timings["prepare_model_s"] = time.perf_counter() - t0

        from litetrain.runtime.base import require_single_io_signatures
        from litetrain.runtime.litert import LiteRTRunner

        t0 = time.perf_counter()
        lite = LiteRTRunner(prepared.tflite)
        require_single_io_signatures(lite, "litetrain federate")
        probe = lite.infer(np.zeros((1, *lite.infer_input.shape[1:]), lite.infer_input.dtype))[lite.primary_output]
        fitted = fit_to_model(dataset, lite.train_inputs[0], lite.train_inputs[1], tuple(probe.shape[1:]),
                              prepared.loss)
        labels = class_labels(fitted)
        shards = partition(len(fitted.x), clients, spec, labels=labels, seed=seed, min_samples=prepared.batch_size)
        full = lite.get_weights()
        initial = {n: full[n] for n in prepared.weight_names}
        evaluators = {RuntimeKind.TFLITE: _Evaluator(lite, prepared.weight_names, fitted, prepared.loss)}
        tf_runner, tf_eval = None, None
        if uses_tensorflow:  # TensorFlow clients or the centralized reference; --runtime tflite alone needs none
            from litetrain.runtime.tensorflow import SavedModelRunner

            tf_runner = SavedModelRunner(prepared.saved_model_dir)
            tf_eval = _Evaluator(tf_runner, prepared.weight_names, fitted, prepared.loss)
        if RuntimeKind.TENSORFLOW in runtimes:
            assert tf_eval is not None
            evaluators[RuntimeKind.TENSORFLOW] = tf_eval
        timings["setup_s"] = time.perf_counter() - t0

        settings: dict[str, Any] = {
            "model": prepared.source,
            "data": dataset.name,
            "clients": clients,
            "rounds": rounds,
            "local_epochs": local_epochs,
            "batch_size": prepared.batch_size,
            "partition": spec.describe(),
            "fraction_fit": fraction_fit,
            "strategy": kind.value,
            "proximal_mu": strategies[runtimes[0]].proximal_mu if kind is StrategyKind.FEDPROX else None,
            "server_lr": strategies[runtimes[0]].eta if kind is StrategyKind.FEDADAM else None,
            "runtime": choice.value,
            "runtimes": list(runtimes),
            "seed": seed,
            "client_failure_rate": faults.failure_rate,
            "straggler_rate": faults.straggler_rate,
            "round_timeout": round_timeout,
            "loss": prepared.build_info["settings"]["loss"],
            "optimizer": prepared.build_info["settings"]["optimizer"],
            "trainable": prepared.build_info["settings"].get("trainable"),
            "atol": tol.a,
            "rtol": tol.r,
            "cpus_per_client": cpus,
            "what_travels": WHAT_TRAVELS,
            "tensorflow_clients_gradients": prepared.tf_gradients,
            "client_sampling": "seeded by (seed, round), identical for every runtime",
            "batch_order": "seeded by (seed, round, client), identical for every runtime",
        }

        # Checkpoints: resume or start fresh.
        rows: list[dict[str, Any]] = []
        start_round = 1
        resumed_from = None
        globals_ = {rt: dict(initial) for rt in runtimes}
        init_eval = {rt: evaluators[rt](initial)[0] for rt in runtimes}
        if folder is not None:
            store = folder.with_fingerprint(_fingerprint(prepared, full, settings))
            latest = store.latest() if resume else None
            if latest is not None:
                resumed_from = int(latest.state["round"])
                if resumed_from > rounds:
                    raise UsageError(
                        f"{str(workdir)!r} already holds round {resumed_from} of this federation, more than "
                        f"--rounds {rounds}.",
                        hint=f"Pass --rounds {resumed_from} or more to continue it.",
                    )
                start_round = resumed_from + 1
                rows = list(latest.state["rows"])
                for rt in runtimes:
                    globals_[rt] = {n: latest.arrays[f"{rt}.{n}"] for n in prepared.weight_names}
                    restore_strategy_state(strategies[rt], f"server.{rt}", latest.arrays)

        central = None
        if centralized:
            t0 = time.perf_counter()
            pooled = np.sort(np.concatenate(shards))
            assert tf_runner is not None and tf_eval is not None  # uses_tensorflow
            central = _centralized(tf_runner, tf_eval, initial, fitted, pooled, prepared.batch_size, rounds,
                                   local_epochs, seed)
            timings["centralized_s"] = time.perf_counter() - t0

        def record_round(rnd: int, outcomes: dict[str, RuntimeRound]) -> None:
            row = _round_record(rnd, outcomes, evaluators, tol, central)
            rows.append(row)
            if store is not None:
                arrays = {f"{rt}.{n}": w for rt, o in outcomes.items() for n, w in o.weights.items()}
                for rt in runtimes:
                    arrays.update(strategy_state(strategies[rt], f"server.{rt}"))
                store.write(rnd, arrays, json_safe({"round": rnd, "rows": rows}))
            if on_round is not None:
                on_round(row)

        engine: dict[str, Any] = {"flwr": flwr.__version__, "ray": ray.__version__, "backend": "ray",
                                  "address": requested_address(ray_address) or "local", "cluster_cpus": None,
                                  "cpus_per_actor": None, "actors": None}
        if start_round <= rounds:
            t0 = time.perf_counter()
            data_for_clients = ClientData(
                key=uuid.uuid4().hex,
                tflite=prepared.tflite,
                saved_model=zip_folder(prepared.saved_model_dir) if RuntimeKind.TENSORFLOW in runtimes else None,
                x=fitted.x, y=fitted.y, shards=tuple(shards), weight_names=prepared.weight_names,
                batch_size=prepared.batch_size, learning_rate=prepared.learning_rate,
            )
            plan = ServerPlan(
                runtimes=runtimes, num_clients=clients, rounds=rounds, start_round=start_round,
                fraction_fit=fraction_fit, seed=seed, local_epochs=local_epochs, faults=faults,
                round_timeout=round_timeout, strategies=strategies, global_weights=globals_, on_round=record_round,
            )
            simulation = import_federated("flwr.simulation")
            stack.callback(shutil.rmtree, extraction_root(data_for_clients.key), True)
            existing = ray_running()
            with _quiet_flower(verbose), ray_session(ray_address, verbose) as ray_mod:
                if existing:
                    engine["address"] = ray_mod.get_runtime_context().gcs_address
                # Flower starts node CPUs / num_cpus actors per node, however few the clients: ask for more CPUs
                # per actor when that would start idle actors (each one a Python process with its interpreters).
                per_actor, actors = plan_actors(node_cpus(ray_mod.nodes()), cpus, clients)
                engine.update(cluster_cpus=ray_mod.cluster_resources().get("CPU"), cpus_per_actor=per_actor,
                              actors=actors)
                if actors < 1:
                    raise UsageError(
                        f"No node of the Ray cluster has the {cpus:g} CPUs that --cpus-per-client asks for one "
                        f"client (cluster: {engine['cluster_cpus']} CPUs).",
                        hint="Lower --cpus-per-client.",
                    )
                ref = ray_mod.put(data_for_clients)
                try:
                    with keep_ray_running(ray_mod):
                        simulation.run_simulation(
                            server_app=make_server_app(plan),
                            client_app=make_client_app(data_for_clients.key, ref),
                            num_supernodes=clients,
                            backend_name="ray",
                            backend_config={"client_resources": {"num_cpus": per_actor, "num_gpus": 0.0}},
                            verbose_logging=verbose,
                        )
                finally:
                    if data_for_clients.saved_model is not None:
                        remove_remote_extractions(ray_mod, data_for_clients.key)
            timings["simulation_s"] = time.perf_counter() - t0
            timings["ray_and_engine_overhead_s"] = timings["simulation_s"] - sum(
                r["wall_seconds"] for r in rows if r["round"] >= start_round)
        if len(rows) < rounds:
            raise UsageError(f"The federation stopped after {len(rows)} of {rounds} rounds.",
                             hint="Run again with --verbose to see Flower's log.")

    verdict, explanation = _verdict(rows, init_eval, runtimes, tol, central)
    passed = verdict is None or verdict not in fail
    timings["total_s"] = time.perf_counter() - t_start
    exchanged = int(sum(v.nbytes for v in initial.values()))
    return FederateResult(
        verdict=verdict,
        passed=passed,
        explanation=explanation,
        fail_on=tuple(sorted(v.value for v in fail)),
        settings=settings,
        model={
            "source": prepared.source,
            "size_bytes": len(prepared.tflite),
            "variables": prepared.build_info.get("variables", []),
            "exchanged_variables": len(prepared.weight_names),
            "exchanged_names": list(prepared.weight_names),
            "exchanged_bytes": exchanged,
            "frozen_layers": prepared.build_info.get("frozen_layers", []),
        },
        data={**dataset.describe(), "partition": describe_partition(shards, labels, len(fitted.x))},
        initial=init_eval,
        rounds=tuple(rows),
        centralized=central,
        checkpoint=None if checkpoint_dir is None else {
            "directory": str(checkpoint_dir), "resumed_from_round": resumed_from,
            "files": [str(p) for p in store.paths()] if store is not None else [],
        },
        engine=engine,
        environment={**environment(), "flwr": flwr.__version__, "ray": ray.__version__},
        timings=timings,
    )


def _round_record(
    rnd: int, outcomes: dict[str, RuntimeRound], evaluators: dict[str, _Evaluator], tol: Tolerances,
    central: dict[str, Any] | None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    runtimes = list(outcomes)
    first = outcomes[runtimes[0]]
    evals, outputs = {}, {}
    for rt, outcome in outcomes.items():
        evals[rt], outputs[rt] = evaluators[rt](outcome.weights)
    row: dict[str, Any] = {
        "round": rnd,
        "sampled": len(first.sampled),
        "participants": len(first.participants),
        "participant_ids": list(first.participants),
        "failed": list(first.failed),
        "stragglers": list(first.stragglers),
        "timed_out": list(first.timed_out),
        "accuracy": {rt: evals[rt]["accuracy"] for rt in runtimes},
        "loss": {rt: evals[rt]["loss"] for rt in runtimes},
        "train_loss": {rt: o.train_loss for rt, o in outcomes.items()},
        "centralized_accuracy": (central["accuracy_by_round"][rnd - 1]
                                 if central and len(central["accuracy_by_round"]) >= rnd else None),
        "bytes": {rt: {"down": o.bytes_down, "up": o.bytes_up} for rt, o in outcomes.items()},
        "seconds": {rt: o.seconds for rt, o in outcomes.items()},
        "client_seconds": {rt: o.client_seconds for rt, o in outcomes.items()},
        "client_seconds_total": {rt: o.client_seconds_total for rt, o in outcomes.items()},
        "participants_by_runtime": {rt: len(o.participants) for rt, o in outcomes.items()},
        "agreement": None,  # TFLite against TensorFlow: with both runtimes only
        "verdict": None,
    }
    if len(runtimes) == 2:
        tfl, tf_ = outcomes[RuntimeKind.TFLITE], outcomes[RuntimeKind.TENSORFLOW]
        same = tfl.participants == tf_.participants
        agreement = compare_round(rnd, tfl.weights, tf_.weights, outputs[RuntimeKind.TFLITE],
                                  outputs[RuntimeKind.TENSORFLOW], tol, same)
        row["agreement"] = agreement.to_json()
        row["verdict"] = agreement.verdict.value
    row["wall_seconds"] = sum(o.seconds for o in outcomes.values()) + time.perf_counter() - t0
    return row


def _verdict(
    rows: list[dict[str, Any]], initial: dict[str, dict[str, Any]], runtimes: tuple[str, ...], tol: Tolerances,
    central: dict[str, Any] | None,
) -> tuple[Verdict | None, str]:
    final = rows[-1]
    healthy = {rt: learned(initial[rt], {"accuracy": final["accuracy"][rt], "loss": final["loss"][rt]})
               for rt in runtimes}
    ref = f"; centralized TensorFlow on the pooled data: {central['accuracy']:.1%}" if (
        central and central.get("accuracy") is not None) else ""
    if len(runtimes) == 1:
        rt = runtimes[0]
        acc0, acc1 = initial[rt].get("accuracy"), final["accuracy"][rt]
        trend = (f"held-out accuracy {acc0:.1%} -> {acc1:.1%}" if acc0 is not None and acc1 is not None else
                 f"held-out loss {initial[rt]['loss']:.4g} -> {final['loss'][rt]:.4g}")
        if not healthy[rt]:
            return Verdict.UNHEALTHY, (f"The {rt} federation did not learn ({trend}{ref}). Check the learning rate, "
                                       "the local epochs and the partition.")
        return None, (f"The {rt} federation learned: {trend} after {final['round']} rounds{ref}. Run with --runtime "
                      "both to compare it with the same federation in TensorFlow.")
    agreements = [RoundAgreement(**{**r["agreement"], "verdict": Verdict(r["agreement"]["verdict"])}) for r in rows]
    verdict, text = overall_verdict(agreements, healthy, tol)
    accs = ", ".join(f"{rt} {final['accuracy'][rt]:.1%}" for rt in runtimes if final["accuracy"][rt] is not None)
    return verdict, f"{text} Final held-out accuracy: {accs}{ref}."


__all__ = ["DEFAULT_FAIL_ON", "RuntimeChoice", "check_build_options", "class_labels", "federate", "load_built",
           "prepare_model"]
