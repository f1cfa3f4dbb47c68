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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._env import environment
from litetrain._io import json_safe
from litetrain.comparison.divergence import Divergence, weight_distance
from litetrain.comparison.locate import Location
from litetrain.comparison.noise import last_bit_perturbation
from litetrain.comparison.verdict import DEFAULT_FAIL_ON, Verdict, parse_fail_on
from litetrain.config import LossConfig, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.data.fit import class_indices, fit_to_model
from litetrain.errors import DataError, UsageError
from litetrain.federated.agreement import (
    RoundAgreement,
    accuracy_gaps,
    compare_round,
    fleet_divergence,
    floor_verdict,
    learned,
    overall_verdict,
)
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
from litetrain.federated.evaluation import (
    Evaluator,
    class_labels,
    heldout_loss,
    row_order_is_noop,
    train_centralized,
)
from litetrain.federated.faults import FaultSettings
from litetrain.federated.model import (
    PreparedModel,
    check_build_options,
    is_built_dir,
    load_built,
    prepare_model,
)
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
    if not resume or is_built_dir(model):
        return False
    if not is_built_dir(built):
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
    if is_built_dir(model):
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

    More clients than samples, ``by-class:K`` beyond the number of classes or a Dirichlet split that leaves a
    client without samples raise here in a second instead of after the build. The federation deals the fitted
    data again with the same function and seed; for class indices and one-hot labels that is the same split.
    """
    if batch is None:
        return
    labels = _raw_class_labels(dataset.y)
    if labels is None and spec.kind is not PartitionKind.IID:
        return  # whether these are classes is known once the data is fitted to the model's output
    partition(len(dataset.x), clients, spec, labels=labels, seed=seed)  # a client with any samples trains


def _fingerprint(prepared: PreparedModel, initial: dict[str, np.ndarray], settings: dict[str, Any]) -> dict[str, Any]:
    from litetrain.training.checkpoint import model_fingerprint

    keys = ("data", "clients", "local_epochs", "batch_size", "partition", "fraction_fit", "strategy", "proximal_mu",
            "server_lr", "runtimes", "seed", "client_failure_rate", "straggler_rate", "noise_floor")
    return {**model_fingerprint(prepared.tflite, initial), "federation": {k: settings[k] for k in keys}}


@dataclasses.dataclass(frozen=True)
class FederationOptions:
    """``federate``'s options with their defaults resolved; :meth:`resolve` checks everything that needs no build
    and no Ray, so that a bad option costs a second, not a build and a Ray start-up."""

    clients: int
    rounds: int
    local_epochs: int
    fraction_fit: float
    seed: int
    cpus: float
    spec: PartitionSpec
    choice: RuntimeChoice
    kind: StrategyKind
    proximal_mu: float | None
    server_lr: float | None
    faults: FaultSettings
    round_timeout: float | None
    tol: Tolerances
    fail: frozenset[Verdict]
    build: dict[str, Any]
    centralized: bool
    checkpoint_dir: str | Path | None
    resume: bool
    ray_address: str | None
    verbose: bool
    noise_floor: bool = True

    @property
    def runtimes(self) -> tuple[RuntimeKind, ...]:
        return self.choice.runtimes

    @property
    def measures_floor(self) -> bool:
        """The noise run trains only when two federations are compared and ``--no-noise-floor`` is not given."""
        return self.noise_floor and self.choice is RuntimeChoice.BOTH

    @property
    def trained(self) -> tuple[RuntimeKind, ...]:
        """Every federation the server trains: the runtimes, then the noise run (TFLite, the cheaper runtime)."""
        return self.runtimes + ((RuntimeKind.TFLITE_PERTURBED,) if self.measures_floor else ())

    @property
    def uses_tensorflow(self) -> bool:
        """TensorFlow clients or the centralized reference; ``--runtime tflite`` alone needs no TensorFlow."""
        return RuntimeKind.TENSORFLOW in self.runtimes or self.centralized

    @classmethod
    def resolve(cls, model: Any, **given: Any) -> FederationOptions:
        """Resolves ``federate``'s keyword arguments (same names) and checks them.

        Raises:
            UsageError: an option out of range, of the wrong strategy, or build options with a built folder.
        """
        spec = given["partition_spec"]
        try:
            choice = RuntimeChoice(given["runtime"] or RuntimeChoice.BOTH)
            kind = StrategyKind(given["strategy"] or StrategyKind.FEDAVG)
        except ValueError as exc:
            raise UsageError(f"{exc}.", hint="runtime: tflite, tensorflow or both; strategy: fedavg, fedadam or "
                             "fedprox.") from exc
        fail_on = given["fail_on"]
        options = cls(
            clients=DEFAULT_CLIENTS if given["clients"] is None else int(given["clients"]),
            rounds=DEFAULT_ROUNDS if given["rounds"] is None else int(given["rounds"]),
            local_epochs=DEFAULT_LOCAL_EPOCHS if given["local_epochs"] is None else int(given["local_epochs"]),
            fraction_fit=1.0 if given["fraction_fit"] is None else float(given["fraction_fit"]),
            seed=0 if given["seed"] is None else int(given["seed"]),
            cpus=DEFAULT_CPUS_PER_CLIENT if given["cpus_per_client"] is None else float(given["cpus_per_client"]),
            spec=spec if isinstance(spec, PartitionSpec) else PartitionSpec.parse(spec),
            choice=choice, kind=kind, proximal_mu=given["proximal_mu"], server_lr=given["server_lr"],
            faults=FaultSettings(given["client_failure_rate"] or 0.0, given["straggler_rate"] or 0.0),
            round_timeout=given["round_timeout"],
            tol=given["tolerances"] or Tolerances(),
            fail=fail_on if isinstance(fail_on, frozenset) else (
                parse_fail_on(fail_on) if fail_on is None or isinstance(fail_on, str)
                else frozenset(Verdict(v) for v in fail_on)),
            build={k: given[k] for k in ("loss", "optimizer", "batch_size", "trainable", "select_tf_ops")},
            centralized=bool(given["centralized"]),
            checkpoint_dir=given["checkpoint_dir"],
            resume=bool(given["resume"]), ray_address=given["ray_address"], verbose=bool(given["verbose"]),
            noise_floor=bool(given.get("noise_floor", True)),
        )
        options.check(model)
        return options

    def check(self, model: Any) -> None:
        """The checks of :meth:`resolve`, in the order a user meets them."""
        for name, value in (("--clients", self.clients), ("--rounds", self.rounds),
                            ("--local-epochs", self.local_epochs)):
            if value < 1:
                raise UsageError(f"{name} must be at least 1; received {value}.")
        if not 0.0 < self.fraction_fit <= 1.0:
            raise UsageError(f"--fraction-fit must be in (0, 1]; received {self.fraction_fit}.")
        if self.round_timeout is not None and not self.round_timeout > 0:
            raise UsageError(f"--round-timeout must be positive; received {self.round_timeout}.")
        if not self.cpus > 0:
            raise UsageError(f"--cpus-per-client must be positive; received {self.cpus}.")
        if self.resume and self.checkpoint_dir is None:
            raise UsageError("--resume needs --checkpoint-dir (the folder of the federation to continue).")
        check_strategy_options(self.kind, self.proximal_mu, self.server_lr)
        check_build_options(model, **self.build)
        _check_local_cpus(self.cpus, self.ray_address)


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
    noise_floor: bool = True,
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
        tolerances: atol/rtol for the global models when no noise floor is measured (default as ``check``).
        noise_floor: With both runtimes, judge them against a third federation (TFLite, a no-op perturbation).
        fail_on: Verdicts that make ``bool(result)`` False (default: inconsistent, unhealthy).
        ray_address: A Ray cluster to run on (default: ``RAY_ADDRESS``, else a local Ray on this machine).
        cpus_per_client: Ray CPUs per simulated client (default 1): how many clients train at once.
        verbose: Show Flower's and Ray's logs.
        on_round: Called with each round's record as soon as it is complete (progress).

    Returns:
        A :class:`FederateResult`.
    """
    options = FederationOptions.resolve(
        model, clients=clients, rounds=rounds, local_epochs=local_epochs, batch_size=batch_size,
        partition_spec=partition_spec, fraction_fit=fraction_fit, runtime=runtime, strategy=strategy,
        proximal_mu=proximal_mu, server_lr=server_lr, client_failure_rate=client_failure_rate,
        straggler_rate=straggler_rate, round_timeout=round_timeout, seed=seed, loss=loss, optimizer=optimizer,
        trainable=trainable, select_tf_ops=select_tf_ops, centralized=centralized, checkpoint_dir=checkpoint_dir,
        resume=resume, tolerances=tolerances, noise_floor=noise_floor, fail_on=fail_on, ray_address=ray_address,
        cpus_per_client=cpus_per_client, verbose=verbose)
    return Federation(options, model, data, on_round).run()


class Federation:
    """One run of :func:`federate`; :meth:`run` calls the stages in order: check what needs no build, prepare the
    model and the shards, resume from a checkpoint, train the centralized reference, start the cluster and run the
    rounds (each evaluated and checkpointed as it completes), summarize."""

    def __init__(self, options: FederationOptions, model: Any, data: str | Dataset | None,
                 on_round: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.options = options
        self.model = model
        self.data = data
        self.on_round = on_round
        self.t_start = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.folder: CheckpointStore | None = None  # the locked --checkpoint-dir
        self.store: CheckpointStore | None = None  # the same folder with this federation's fingerprint
        self.rows: list[dict[str, Any]] = []
        self.start_round = 1
        self.resumed_from: int | None = None
        self.central: dict[str, Any] | None = None
        self.engine: dict[str, Any] = {}
        self.history: dict[int, dict[str, dict[str, np.ndarray]]] = {}  # global models by round (noise floor only)

    def run(self) -> FederateResult:
        """The whole federation; the checkpoint folder's lock, Ray and temporary files are released at the end."""
        o = self.options
        with contextlib.ExitStack() as stack:
            reuse = self.check_before_work(stack)
            self.prepare(stack, reuse)
            self.resume()
            self.train_centralized()
            if self.start_round <= o.rounds:
                self.run_rounds(stack)
            if len(self.rows) < o.rounds:
                raise UsageError(f"The federation stopped after {len(self.rows)} of {o.rounds} rounds.",
                                 hint="Run again with --verbose to see Flower's log.")
        return self.summarize()

    def check_before_work(self, stack: contextlib.ExitStack) -> bool:
        """Locks the checkpoint folder, loads the data, deals it once and checks the Ray address and Flower, all
        before the build; True to reuse the model built in the checkpoint folder."""
        o = self.options
        reuse = False
        if o.checkpoint_dir is not None:
            # One folder, one federation: locked from the first look at it to the last round's checkpoint.
            self.folder = stack.enter_context(CheckpointStore(Path(o.checkpoint_dir), fingerprint={}).session())
            reuse = _check_checkpoint_dir(self.folder, self.model, o.resume)
        self.dataset = load_dataset(self.data)
        built = Path(o.checkpoint_dir) / "model" if reuse and o.checkpoint_dir is not None else self.model
        _preflight_partition(self.dataset, o.clients, o.spec, o.seed, _known_batch(built, o.build["batch_size"]))
        check_ray_address(o.ray_address)  # an unreachable cluster fails here, not after the build
        from litetrain.federated.ray_worker import import_federated

        import_federated("flwr.simulation")  # fail before any work when the extra is missing (imports TensorFlow)
        with _quiet_flower(o.verbose):
            self.strategies = {rt: make_strategy(o.kind, proximal_mu=o.proximal_mu, server_lr=o.server_lr)
                               for rt in o.trained}
        import flwr
        import ray

        self.engine = {"flwr": flwr.__version__, "ray": ray.__version__, "backend": "ray",
                       "address": requested_address(o.ray_address) or "local", "cluster_cpus": None,
                       "cpus_per_actor": None, "actors": None}
        return reuse

    def prepare(self, stack: contextlib.ExitStack, reuse: bool) -> None:
        """Builds (or reuses) the model, fits the data to it, deals the shards and sets up the evaluators."""
        o = self.options
        if o.checkpoint_dir is not None:
            self.workdir = Path(o.checkpoint_dir)
        else:
            self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="litetrain-federate-")))
        t0 = time.perf_counter()
        self.prepared = prepared = load_built(self.workdir / "model") if reuse else prepare_model(
            self.model, self.workdir, **o.build, seed=o.seed, tensorflow_twin=o.uses_tensorflow)
        self.timings["prepare_model_s"] = time.perf_counter() - t0

        from litetrain.runtime.base import require_single_io_signatures
        from litetrain.runtime.litert import LiteRTRunner

        t0 = time.perf_counter()
        lite = LiteRTRunner(prepared.tflite)
        require_single_io_signatures(lite, "litetrain federate")
        probe = lite.infer(np.zeros((1, *lite.infer_input.shape[1:]), lite.infer_input.dtype))[lite.primary_output]
        self.fitted = fit_to_model(self.dataset, lite.train_inputs[0], lite.train_inputs[1],
                                   tuple(probe.shape[1:]), prepared.loss)
        self.labels = class_labels(self.fitted)
        # A client with fewer samples than a batch trains on partial batches (the train signature's n).
        self.shards = partition(len(self.fitted.x), o.clients, o.spec, labels=self.labels, seed=o.seed)
        self.full = lite.get_weights()
        self.initial = {n: self.full[n] for n in prepared.weight_names}
        self.evaluators = {RuntimeKind.TFLITE: Evaluator(lite, prepared.weight_names, self.fitted, prepared.loss)}
        self.tf_runner: Runner | None = None
        self.tf_eval: Evaluator | None = None
        if o.uses_tensorflow:
            from litetrain.runtime.tensorflow import SavedModelRunner

            self.tf_runner = SavedModelRunner(prepared.saved_model_dir)
            self.tf_eval = Evaluator(self.tf_runner, prepared.weight_names, self.fitted, prepared.loss)
        if RuntimeKind.TENSORFLOW in o.runtimes:
            assert self.tf_eval is not None
            self.evaluators[RuntimeKind.TENSORFLOW] = self.tf_eval
        first = self.shards[0][:prepared.batch_size]
        self.reverses_rows = (o.measures_floor
                              and row_order_is_noop(lite, self.fitted.x[first], self.fitted.y[first]))
        self.timings["setup_s"] = time.perf_counter() - t0
        self.settings = self.describe_settings()

    def describe_settings(self) -> dict[str, Any]:
        """The federation's settings as the result reports them (and its checkpoints' fingerprint reads them)."""
        o, prepared = self.options, self.prepared
        first = self.strategies[o.runtimes[0]]
        return {
            "model": prepared.source,
            "data": self.dataset.name,
            "clients": o.clients,
            "rounds": o.rounds,
            "local_epochs": o.local_epochs,
            "batch_size": prepared.batch_size,
            "partition": o.spec.describe(),
            "fraction_fit": o.fraction_fit,
            "strategy": o.kind.value,
            "proximal_mu": first.proximal_mu if o.kind is StrategyKind.FEDPROX else None,
            "server_lr": first.eta if o.kind is StrategyKind.FEDADAM else None,
            "runtime": o.choice.value,
            "runtimes": list(o.runtimes),
            "seed": o.seed,
            "client_failure_rate": o.faults.failure_rate,
            "straggler_rate": o.faults.straggler_rate,
            "round_timeout": o.round_timeout,
            "loss": prepared.build_info["settings"]["loss"],
            "optimizer": prepared.build_info["settings"]["optimizer"],
            "trainable": prepared.build_info["settings"].get("trainable"),
            "atol": o.tol.a,
            "rtol": o.tol.r,
            "noise_floor": o.measures_floor,
            "cpus_per_client": o.cpus,
            "what_travels": WHAT_TRAVELS,
            "tensorflow_clients_gradients": prepared.tf_gradients,
            "client_sampling": "seeded by (seed, round), identical for every runtime",
            "batch_order": "seeded by (seed, round, client), identical for every runtime",
        }

    def resume(self) -> None:
        """Starts from the initial weights, or from the newest checkpoint with ``--resume``."""
        o = self.options
        self.globals = {rt: dict(self.initial) for rt in o.trained}
        if o.measures_floor:
            self.globals[RuntimeKind.TFLITE_PERTURBED] = last_bit_perturbation(set(self.initial))(self.initial)
        self.init_eval = {rt: self.evaluators[rt](self.initial)[0] for rt in o.runtimes}
        if self.folder is None:
            return
        self.store = self.folder.with_fingerprint(_fingerprint(self.prepared, self.full, self.settings))
        latest = self.store.latest() if o.resume else None
        if latest is None:
            return
        self.resumed_from = int(latest.state["round"])
        if self.resumed_from > o.rounds:
            raise UsageError(
                f"{str(self.workdir)!r} already holds round {self.resumed_from} of this federation, more than "
                f"--rounds {o.rounds}.",
                hint=f"Pass --rounds {self.resumed_from} or more to continue it.",
            )
        self.start_round = self.resumed_from + 1
        self.rows = list(latest.state["rows"])
        for rt in o.trained:
            self.globals[rt] = {n: latest.arrays[f"{rt}.{n}"] for n in self.prepared.weight_names}
            restore_strategy_state(self.strategies[rt], f"server.{rt}", latest.arrays)
        self.history[self.resumed_from] = {rt: self.globals[rt] for rt in o.runtimes}

    def train_centralized(self) -> None:
        """The reference: TensorFlow on the pooled shards for rounds x local epochs (unless ``--no-centralized``)."""
        o = self.options
        if not o.centralized:
            return
        t0 = time.perf_counter()
        pooled = np.sort(np.concatenate(self.shards))
        assert self.tf_runner is not None and self.tf_eval is not None  # uses_tensorflow
        self.central = train_centralized(self.tf_runner, self.tf_eval, self.initial, self.fitted, pooled,
                                         self.prepared.batch_size, o.rounds, o.local_epochs, o.seed)
        self.timings["centralized_s"] = time.perf_counter() - t0

    def record_round(self, rnd: int, outcomes: dict[str, RuntimeRound]) -> None:
        """Evaluates and compares a round's global models, checkpoints them and reports the round."""
        row = _round_record(rnd, outcomes, self.evaluators, self.options.tol, self.central)
        self.rows.append(row)
        if self.options.measures_floor:  # where the runtimes part is located from the round before (locate_round)
            self.history[rnd] = {rt: outcomes[rt].weights for rt in self.options.runtimes}
        self.checkpoint(rnd, outcomes)
        if self.on_round is not None:
            self.on_round(row)

    def checkpoint(self, rnd: int, outcomes: dict[str, RuntimeRound]) -> None:
        """Writes the round's global models, the server state and the rows so far (with ``--checkpoint-dir``)."""
        if self.store is None:
            return
        arrays = {f"{rt}.{n}": w for rt, o in outcomes.items() for n, w in o.weights.items()}
        for rt in self.options.trained:
            arrays.update(strategy_state(self.strategies[rt], f"server.{rt}"))
        self.store.write(rnd, arrays, json_safe({"round": rnd, "rows": self.rows}))

    def client_data(self) -> ClientData:
        """What every client worker receives once through Ray's object store."""
        prepared = self.prepared
        return ClientData(
            key=uuid.uuid4().hex,
            tflite=prepared.tflite,
            saved_model=zip_folder(prepared.saved_model_dir) if RuntimeKind.TENSORFLOW in self.options.runtimes
            else None,
            x=self.fitted.x, y=self.fitted.y, shards=tuple(self.shards), weight_names=prepared.weight_names,
            batch_size=prepared.batch_size, learning_rate=prepared.learning_rate,
            noise_reverses_rows=self.reverses_rows,
        )

    def server_plan(self) -> ServerPlan:
        """The round loop the ServerApp runs, reporting each round to :meth:`record_round`."""
        o = self.options
        return ServerPlan(
            runtimes=o.trained, num_clients=o.clients, rounds=o.rounds, start_round=self.start_round,
            fraction_fit=o.fraction_fit, seed=o.seed, local_epochs=o.local_epochs, faults=o.faults,
            round_timeout=o.round_timeout, strategies=self.strategies, global_weights=self.globals,
            on_round=self.record_round,
        )

    def start_cluster(self, ray_mod: Any, existing: bool) -> float:
        """Sizes the client actors on the Ray cluster (recorded in ``engine``); returns the CPUs per actor.

        Raises:
            UsageError: no node has the CPUs of one client.
        """
        cpus = self.options.cpus
        if existing:
            self.engine["address"] = ray_mod.get_runtime_context().gcs_address
        # Flower starts node CPUs / num_cpus actors per node, however few the clients: ask for more CPUs per actor
        # when that would start idle actors (each one a Python process with its interpreters).
        per_actor, actors = plan_actors(node_cpus(ray_mod.nodes()), cpus, self.options.clients)
        self.engine.update(cluster_cpus=ray_mod.cluster_resources().get("CPU"), cpus_per_actor=per_actor,
                           actors=actors)
        if actors < 1:
            raise UsageError(
                f"No node of the Ray cluster has the {cpus:g} CPUs that --cpus-per-client asks for one client "
                f"(cluster: {self.engine['cluster_cpus']} CPUs).",
                hint="Lower --cpus-per-client.",
            )
        return per_actor

    def run_rounds(self, stack: contextlib.ExitStack) -> None:
        """Starts (or joins) Ray and runs the remaining rounds on Flower's simulation engine."""
        from litetrain.federated.ray_worker import import_federated

        o = self.options
        t0 = time.perf_counter()
        data = self.client_data()
        plan = self.server_plan()
        simulation = import_federated("flwr.simulation")
        stack.callback(shutil.rmtree, extraction_root(data.key), True)
        existing = ray_running()
        with _quiet_flower(o.verbose), ray_session(o.ray_address, o.verbose) as ray_mod:
            per_actor = self.start_cluster(ray_mod, existing)
            ref = ray_mod.put(data)
            try:
                with keep_ray_running(ray_mod):
                    simulation.run_simulation(
                        server_app=make_server_app(plan),
                        client_app=make_client_app(data.key, ref),
                        num_supernodes=o.clients,
                        backend_name="ray",
                        backend_config={"client_resources": {"num_cpus": per_actor, "num_gpus": 0.0}},
                        verbose_logging=o.verbose,
                    )
            finally:
                if data.saved_model is not None:
                    remove_remote_extractions(ray_mod, data.key)
        self.timings["simulation_s"] = time.perf_counter() - t0
        self.timings["ray_and_engine_overhead_s"] = self.timings["simulation_s"] - sum(
            r["wall_seconds"] for r in self.rows if r["round"] >= self.start_round)
        if o.measures_floor:  # inside the simulation: the server's time for the noise run, and its clients' time
            ran = [r["noise_floor"] for r in self.rows if r["round"] >= self.start_round and r.get("noise_floor")]
            self.timings["noise_floor_s"] = sum(f["seconds"] for f in ran)
            self.timings["noise_floor_clients_s"] = sum(f["client_seconds_total"] for f in ran)

    def locate_round(self, rnd: int) -> Location | None:
        """Where the runtimes part in round ``rnd``: its first participant's local steps in both runtimes from the
        TensorFlow global model of the round before, re-synchronized before every step (``check``'s locate);
        None when that global model is not at hand (a resumed federation) or nobody took part."""
        from litetrain.comparison.locate import locate
        from litetrain.data.batching import plan_batches
        from litetrain.federated.faults import order_seed

        o, row = self.options, self.rows[rnd - 1]
        start = self.initial if rnd == 1 else self.history.get(rnd - 1, {}).get(RuntimeKind.TENSORFLOW)
        if start is None or not row["participant_ids"] or self.tf_eval is None:
            return None
        client = int(row["participant_ids"][0])
        shard = self.shards[client]
        plan = plan_batches(len(shard), self.prepared.batch_size, epochs=o.local_epochs,
                            seed=order_seed(o.seed, rnd, client))
        names = self.prepared.weight_names
        tf_runner, lite = (_OwnOptimizer(e.runner, e.state, start, names)
                           for e in (self.tf_eval, self.evaluators[RuntimeKind.TFLITE]))
        return locate(tf_runner, lite, self.fitted.x[shard], self.fitted.y[shard], plan, 0,
                      {**self.tf_eval.state, **start}, list(names))

    def summarize(self) -> FederateResult:
        """The verdict and the result."""
        import flwr
        import ray

        o, prepared = self.options, self.prepared
        floor = _FleetFloor.of(self.rows) if o.measures_floor else None
        if floor is not None:
            t0 = time.perf_counter()
            first = floor.divergence.first_step_beyond_floor or 1
            floor = dataclasses.replace(floor, location=self.locate_round(first), located_round=first)
            self.timings["locate_s"] = time.perf_counter() - t0
        verdict, explanation = _verdict(self.rows, self.init_eval, o.runtimes, o.tol, self.central, floor)
        self.timings["total_s"] = time.perf_counter() - self.t_start
        return FederateResult(
            verdict=verdict,
            passed=verdict is None or verdict not in o.fail,
            explanation=explanation,
            fail_on=tuple(sorted(v.value for v in o.fail)),
            settings=self.settings,
            model={
                "source": prepared.source,
                "size_bytes": len(prepared.tflite),
                "variables": prepared.build_info.get("variables", []),
                "exchanged_variables": len(prepared.weight_names),
                "exchanged_names": list(prepared.weight_names),
                "exchanged_bytes": int(sum(v.nbytes for v in self.initial.values())),
                "frozen_layers": prepared.build_info.get("frozen_layers", []),
            },
            data={**self.dataset.describe(),
                  "partition": describe_partition(self.shards, self.labels, len(self.fitted.x))},
            initial=self.init_eval,
            rounds=tuple(self.rows),
            centralized=self.central,
            checkpoint=None if o.checkpoint_dir is None else {
                "directory": str(o.checkpoint_dir), "resumed_from_round": self.resumed_from,
                "files": [str(p) for p in self.store.paths()] if self.store is not None else [],
            },
            engine=self.engine,
            environment={**environment(), "flwr": flwr.__version__, "ray": ray.__version__},
            timings=self.timings,
            noise_floor=None if floor is None else {
                **NOISE_RUN, "runtime": RuntimeKind.TFLITE.value, "reversed_rows": self.reverses_rows,
                "seconds": self.timings.get("noise_floor_s"),
                **({} if self.reverses_rows else {"description": NOISE_RUN_ORDERED})},
            divergence=None if floor is None else floor.to_json(),
        )


class _OwnOptimizer(Runner):
    """A runtime that takes only the model weights from ``set_weights`` and keeps its own optimizer state, as a
    device does: locate re-synchronizes the weights of both runtimes before every step, never their optimizers
    (a TFLite model built with another learning rate must show up as another update)."""

    def __init__(self, inner: Runner, state: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                 names: tuple[str, ...]) -> None:
        super().__init__()
        self.inner, self.names = inner, set(names)
        self.name = inner.name
        self.train_inputs, self.infer_input, self.infer_outputs = (inner.train_inputs, inner.infer_input,
                                                                   inner.infer_outputs)
        self.weight_infos, self.count_input = inner.weight_infos, inner.count_input
        inner.set_weights({**state, **weights})  # the round's start: the runtime's own initial optimizer state

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        return self.inner.train_step(x[:n], y[:n])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.inner.infer(x)

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return self.inner.get_weights()

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        own = self.inner.get_weights()
        self.inner.set_weights({k: weights[k] if k in self.names else v for k, v in own.items()})


NOISE_RUN_ORDERED = ("the same federation with TFLite clients from initial weights moved by one unit in the last "
                     "place (the rows of each batch keep their order: this train step draws random masks by "
                     "position in the batch, so reversing them would train another model)")
NOISE_RUN = {
    "name": RuntimeKind.TFLITE_PERTURBED.value,
    "description": "the same federation with TFLite clients that train every batch with its rows reversed (same "
                   "mean, other summation order), from initial weights moved by one unit in the last place",
}


def _round_record(
    rnd: int, outcomes: dict[str, RuntimeRound], evaluators: dict[str, Evaluator], tol: Tolerances,
    central: dict[str, Any] | None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    noise = outcomes.get(RuntimeKind.TFLITE_PERTURBED)
    compared = {rt: o for rt, o in outcomes.items() if rt != RuntimeKind.TFLITE_PERTURBED}
    runtimes = list(compared)
    first = compared[runtimes[0]]
    evals, outputs = {}, {}
    for rt, outcome in compared.items():
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
        "train_loss": {rt: o.train_loss for rt, o in compared.items()},
        "centralized_accuracy": (central["accuracy_by_round"][rnd - 1]
                                 if central and len(central["accuracy_by_round"]) >= rnd else None),
        "bytes": {rt: {"down": o.bytes_down, "up": o.bytes_up} for rt, o in compared.items()},
        "seconds": {rt: o.seconds for rt, o in compared.items()},
        "client_seconds": {rt: o.client_seconds for rt, o in compared.items()},
        "client_seconds_total": {rt: o.client_seconds_total for rt, o in compared.items()},
        "participants_by_runtime": {rt: len(o.participants) for rt, o in compared.items()},
        "agreement": None,  # TFLite against TensorFlow: with both runtimes only
        "verdict": None,
        "noise_floor": None,  # the noise run against TFLite: with both runtimes, unless --no-noise-floor
    }
    if len(runtimes) == 2:
        tfl, tf_ = compared[RuntimeKind.TFLITE], compared[RuntimeKind.TENSORFLOW]
        same = tfl.participants == tf_.participants
        usable = noise is not None and noise.participants == tfl.participants
        agreement = compare_round(rnd, tfl.weights, tf_.weights, outputs[RuntimeKind.TFLITE],
                                  outputs[RuntimeKind.TENSORFLOW], tol, same, noise.weights if usable else None)
        row["agreement"] = agreement.to_json()
        row["verdict"] = agreement.verdict.value
        if noise is not None:
            row["noise_floor"] = _noise_record(noise, tfl, evaluators[RuntimeKind.TFLITE],
                                               outputs[RuntimeKind.TFLITE])
    row["wall_seconds"] = sum(o.seconds for o in outcomes.values()) + time.perf_counter() - t0
    return row


def _noise_record(noise: RuntimeRound, tflite: RuntimeRound, evaluator: Evaluator,
                  tflite_out: np.ndarray) -> dict[str, Any]:
    """The noise run after a round: its distance from the TFLite federation, evaluated in TFLite."""
    from litetrain.comparison import metrics

    ev, out = evaluator(noise.weights)
    return {
        "weight_distance": weight_distance(noise.weights, tflite.weights, sorted(tflite.weights)),
        "output_diff": metrics.max_abs(out, tflite_out),
        "accuracy": ev["accuracy"],
        "loss": ev["loss"],
        "participants": len(noise.participants),
        "same_participants": noise.participants == tflite.participants,
        "seconds": noise.seconds,
        "client_seconds_total": noise.client_seconds_total,
    }


@dataclasses.dataclass(frozen=True)
class _FleetFloor:
    """The federation's distance against its noise floor over the rounds, and what the verdict reads of it."""

    divergence: Divergence
    output_floor: float
    accuracy: dict[str, list[float | None]]
    location: Location | None = None
    located_round: int | None = None

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _FleetFloor | None:
        """None when some round has no usable noise run (it trained other participants, or a resumed federation's
        earlier rounds were run without one): the fixed tolerance then judges."""
        if not rows or not all(r.get("noise_floor") and r["noise_floor"]["same_participants"] for r in rows):
            return None
        floors = [r["noise_floor"] for r in rows]
        loss = {"tflite": [r["loss"]["tflite"] for r in rows], "tensorflow": [r["loss"]["tensorflow"] for r in rows],
                "noise": [f["loss"] for f in floors]}
        divergence = fleet_divergence(_agreements(rows), [f["weight_distance"] for f in floors], loss)
        accuracy = {"tflite": [r["accuracy"]["tflite"] for r in rows],
                    "tensorflow": [r["accuracy"]["tensorflow"] for r in rows], "noise": [f["accuracy"] for f in floors]}
        return cls(divergence, float(np.nan_to_num(floors[-1]["output_diff"])), accuracy)

    def to_json(self) -> dict[str, Any]:
        return {**self.divergence.to_json(), "unit": "round", "accuracy": self.accuracy,
                "accuracy_gaps": accuracy_gaps(self.accuracy), "output_floor_after": self.output_floor,
                "ratio_growth": self.divergence.ratio_growth(),
                "location": None if self.location is None else {**self.location.to_json(),
                                                                "round": self.located_round}}


def _agreements(rows: list[dict[str, Any]]) -> list[RoundAgreement]:
    return [RoundAgreement(**{**r["agreement"], "verdict": Verdict(r["agreement"]["verdict"])}) for r in rows]


def _verdict(
    rows: list[dict[str, Any]], initial: dict[str, dict[str, Any]], runtimes: tuple[str, ...], tol: Tolerances,
    central: dict[str, Any] | None, floor: _FleetFloor | None = None,
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
    if floor is not None:
        verdict, text = floor_verdict(_agreements(rows), healthy, floor.divergence, floor.output_floor,
                                      floor.accuracy, floor.location)
    else:
        verdict, text = overall_verdict(_agreements(rows), healthy, tol)
    accs = ", ".join(f"{rt} {final['accuracy'][rt]:.1%}" for rt in runtimes if final["accuracy"][rt] is not None)
    return verdict, f"{text} Final held-out accuracy: {accs}{ref}."


__all__ = ["DEFAULT_FAIL_ON", "Federation", "FederationOptions", "RuntimeChoice", "check_build_options",
           "class_labels", "federate", "heldout_loss", "load_built", "prepare_model"]
