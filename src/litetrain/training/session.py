"""The on-device training loop: epochs of the model's own ``train`` signature, checkpoints, resume, evaluation.

A phone trains in the background, is killed by the OS at any moment and resumes from its last checkpoint; this
module runs exactly that loop on any :class:`~litetrain.runtime.base.Runner` (the in-process LiteRT interpreter,
or the isolated worker). Everything that decides the next update lives in the checkpoint, so a session killed at
any moment and resumed ends with weights bit-identical to an uninterrupted one:

- the ``save`` signature's outputs: weights and optimizer state, including the optimizer's iteration count;
- the step, the epoch and the position in it, the shuffle seed (epoch ``e``'s order is the ``e``-th
  permutation of ``numpy.random.default_rng(seed)``, the same batches ``litetrain check`` plans), and the
  settings that shape the batches (batch size, a digest of the data), which a resume must match;
- the partial sum of the epoch's losses and the completed epochs' records, so the report is the same too.

Learning-rate schedules are pure functions of the global step, applied through ``opt_learning_rate``.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.config import DEFAULT_BATCH_SIZE
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.errors import DataError, RuntimeCrashError, RuntimeUnavailableError, SignatureError, UsageError
from litetrain.runtime.base import Runner
from litetrain.training.budget import Budget, process_peak_rss_bytes, project
from litetrain.training.checkpoint import Checkpoint, CheckpointError, CheckpointStore, model_fingerprint
from litetrain.training.progress import Progress
from litetrain.training.result import EpochRecord, EpochTiming, TrainResult
from litetrain.training.schedule import LEARNING_RATE_VARIABLE, LRSchedule

DEFAULT_KEEP = 3
DEFAULT_SHUFFLE_SEED = 0

# Settings a resumed session must share with the checkpoint, or its batches (and so its weights) would differ.
_RESUME_KEYS = ("batch_size", "shuffle_seed", "num_samples", "data_sha256", "lr_schedule", "base_learning_rate")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a training session.

    Args:
        epochs: Epochs to have completed at the end (a resumed session continues up to this count).
        checkpoint_dir: Folder of the session's checkpoints.
        batch_size: Must equal the train signature's fixed batch if given (None: read from the model).
        shuffle_seed: Seed of the per-epoch data order (None: 0).
        checkpoint_every: Also checkpoint every N steps (None: at the end of each epoch only).
        keep: Checkpoints to keep (None: 3).
        resume: Continue from the newest checkpoint in ``checkpoint_dir`` (from the start if there is none).
        lr_schedule: Learning-rate schedule (None: the model's constant rate).
        project_samples: Also project the budget to a dataset of this many training samples.
        feature_cache: Train the head on cached bottlenecks when the model has the ``bottleneck``/``train_head``
            signatures of a frozen base (:mod:`litetrain.training.feature_cache`); False: always ``train``.
    """

    epochs: int
    checkpoint_dir: Path
    batch_size: int | None = None
    shuffle_seed: int | None = None
    checkpoint_every: int | None = None
    keep: int | None = None
    resume: bool = False
    lr_schedule: LRSchedule = dataclasses.field(default_factory=LRSchedule)
    project_samples: int | None = None
    feature_cache: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("checkpoint_every", 1), ("keep", 1),
                              ("project_samples", 1)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | np.integer) or value < minimum):
                raise UsageError(f"--{name.replace('_', '-')} must be an integer of at least {minimum}; "
                                 f"received {value!r}.")
        if self.shuffle_seed is not None and not isinstance(self.shuffle_seed, int | np.integer):
            raise UsageError(f"--shuffle-seed must be an integer; received {self.shuffle_seed!r}.")
        object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        object.__setattr__(self, "lr_schedule", LRSchedule.parse(self.lr_schedule))

    @property
    def seed(self) -> int:
        return DEFAULT_SHUFFLE_SEED if self.shuffle_seed is None else int(self.shuffle_seed)

    @property
    def keep_count(self) -> int:
        return DEFAULT_KEEP if self.keep is None else int(self.keep)


def epoch_orders(num_samples: int, seed: int, start_epoch: int = 0) -> Iterator[np.ndarray]:
    """The sample order of every epoch from ``start_epoch`` on: the permutations of
    :func:`litetrain.data.batching.plan_batches` (one ``default_rng(seed)``, one permutation per epoch), so a
    session and ``litetrain check`` with the same seed see the same batches."""
    rng = np.random.default_rng(seed)
    for _ in range(start_epoch):
        rng.permutation(num_samples)
    while True:
        yield rng.permutation(num_samples)


def _steps_per_epoch(runner: Any, samples: int, batch: int) -> int:
    """Every sample once, the last batch partial; full batches only for a model without the count input ``n``.

    Raises:
        DataError: fewer samples than one batch for a model without ``n``.
    """
    if runner.takes_partial_batches:
        return math.ceil(samples / batch)
    if samples < batch:
        raise DataError(f"The training data has {samples} samples, fewer than one batch of {batch}, and the model's "
                        "train signature has no count input n for a partial batch.",
                        hint="Use more data, or rebuild the model with litetrain build.")
    return samples // batch


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the training arrays as the model sees them (shape, dtype and bytes)."""
    h = hashlib.sha256()
    for arr in (x, y):
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a session trains on: the fitted data, its batches per epoch, and the schedule's base rate."""

    fitted: Any
    batch: int
    steps_per_epoch: int
    total_steps: int
    base_lr: float | None
    session: dict[str, Any]  # the settings a resume must match (checkpoint state "session")


@dataclasses.dataclass
class _Cursor:
    """Where a session stands (step, epoch, position in it, the epoch's loss sum) and what it has recorded."""

    step: int = 0
    epoch: int = 0  # the epoch the session started (or resumed) in, 0-based
    position: int = 0
    loss_sum: float = 0.0
    history: list[EpochRecord] = dataclasses.field(default_factory=list)
    resumed: dict[str, Any] | None = None
    steps_run: int = 0
    lr_now: np.float32 | None = None
    lr_last: float | None = None
    eval_seconds: float = 0.0
    evals: int = 0
    epoch_timings: dict[int, EpochTiming] = dataclasses.field(default_factory=dict)


class TrainSession:
    """One training session of a model over a dataset, on a runner, with checkpoints in a folder.

    Args:
        runner: The runtime (must have ``save``/``restore``); the session does not close it.
        dataset: The data; fitted to the model's train signature.
        config: The session's settings.
        model_bytes: The model's flatbuffer, which checkpoints are fingerprinted with.
        model_path: Where the model came from, for the report.
        settings: Extra settings for the report (e.g. how the runner was made).
        progress: The progress display (default: none).
        log: Called with a line per epoch and for notable events (default: silent).
        started: ``time.perf_counter()`` when the session began, e.g. before loading the model and data (default:
            now); the budget's wall time counts from it.
    """

    def __init__(
        self,
        runner: Runner,
        dataset: Dataset,
        config: TrainConfig,
        *,
        model_bytes: bytes,
        model_path: str | Path | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
        started: float | None = None,
    ) -> None:
        self.started = time.perf_counter() if started is None else started
        self.runner = runner
        self.dataset = dataset
        self.config = config
        self.model_bytes = model_bytes
        self.model_path = model_path
        self.extra_settings = dict(settings or {})
        self.progress = progress or Progress(enabled=False)
        self.log = log or (lambda line: None)
        self._written: list[float] = []
        self._last_checkpoint: Path | None = None
        self._cache: Any = None  # a FeatureCache while the session trains the head on cached bottlenecks
        self._cache_status = "off (--no-feature-cache)"

    # -- set-up ---------------------------------------------------------------------------------------------

    def _batch_size(self) -> int:
        fixed = self.runner.train_batch_size
        asked = self.config.batch_size
        if fixed is not None and asked is not None and asked != fixed:
            raise UsageError(
                f"--batch-size {asked} differs from the batch size {fixed} the model's train signature was built "
                "with.",
                hint=f"Omit --batch-size (it is read from the model), or rebuild with 'litetrain build "
                f"--batch-size {asked}'.",
            )
        return fixed or asked or DEFAULT_BATCH_SIZE

    def _fit(self) -> Any:
        from litetrain.data.fit import fit_to_model

        runner = self.runner
        in_shape = tuple(d or 1 for d in runner.infer_input.shape[1:])
        probe = runner.infer(np.zeros((1, *in_shape), runner.infer_input.dtype))[runner.primary_output]
        x_info, y_info = runner.train_inputs
        return fit_to_model(self.dataset, x_info, y_info, tuple(probe.shape[1:]), None)

    def _session_settings(self, fitted: Any, batch: int, base_lr: float | None, total_steps: int) -> dict[str, Any]:
        s = {
            "batch_size": batch,
            "shuffle_seed": self.config.seed,
            "num_samples": len(fitted.x),
            "steps_per_epoch": _steps_per_epoch(self.runner, len(fitted.x), batch),
            "data_sha256": data_digest(fitted.x, fitted.y),
            "lr_schedule": self.config.lr_schedule.spec,
            "base_learning_rate": base_lr,
            "epochs": self.config.epochs,
        }
        if self.config.lr_schedule.kind.value == "cosine":  # its rates depend on the session's length
            s["total_steps"] = total_steps
        return s

    def _check_resumable(self, ckpt: Checkpoint, now: Mapping[str, Any]) -> None:
        missing = [k for k in ("epoch", "position", "epoch_loss_sum", "history", "session") if k not in ckpt.state]
        if missing:
            raise CheckpointError(
                f"Checkpoint {str(ckpt.path)!r} was not written by a training session (its state lacks {missing}).",
                hint="Resume in the folder of a 'litetrain train' session, or start one in an empty --checkpoint-dir.",
            )
        then = ckpt.state["session"]
        keys = _RESUME_KEYS + (("total_steps",) if "total_steps" in now or "total_steps" in then else ())
        for key in keys:
            if then.get(key) != now.get(key):
                what = {"data_sha256": "the training data", "num_samples": "the number of training samples",
                        "total_steps": "the session length (--epochs, with a cosine schedule)",
                        "base_learning_rate": "the model's learning rate"}.get(key, f"--{key.replace('_', '-')}")
                shown = (then.get(key), now.get(key)) if key != "data_sha256" else ("another digest", "this data")
                raise UsageError(
                    f"Cannot resume from {str(ckpt.path)!r}: it was written with {what} {shown[0]!r}, this session "
                    f"has {shown[1]!r}; the resumed batches would differ from the interrupted session's.",
                    hint="Resume with the same --data, --batch-size, --shuffle-seed and --lr-schedule, or start "
                    "a new session in an empty --checkpoint-dir.",
                )

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Trains until ``config.epochs`` epochs are complete, checkpointing as it goes.

        Raises:
            SignatureError: the model lacks ``save``/``restore`` (needed for checkpoints) or exposes no learning
                rate for a schedule.
            UsageError: settings that contradict the model or the checkpoint being resumed, or another session
                training into the same checkpoint folder.
            DataError: data that does not fit the model, or a loss that becomes NaN/Inf.
            CheckpointError: an unwritable checkpoint folder, a corrupt or foreign checkpoint.
        """
        runner, config = self.runner, self.config
        if not runner.weight_infos:
            raise SignatureError(
                "The model has no save/restore signatures, so its weights and optimizer state cannot be "
                "checkpointed.",
                hint="Build it with 'litetrain build', which adds save() and restore().",
            )
        store = CheckpointStore(config.checkpoint_dir, fingerprint=model_fingerprint(self.model_bytes,
                                                                                     runner.weight_infos),
                                keep=config.keep_count)
        # One folder, one session: held from before the first look at the folder to the last checkpoint, so a
        # second session into the same folder is refused here instead of overwriting and pruning this one's files.
        with store.session():
            return self._run(store)

    def _run(self, store: CheckpointStore) -> TrainResult:
        """:meth:`run` with the checkpoint folder held: plan, find the start, train the epochs, sum up."""
        runner = self.runner
        store.check_writable()
        plan = self._plan()
        cursor = self._start(store, plan.session)
        cursor.lr_last = None if plan.base_lr is None else float(np.float32(plan.base_lr))
        self._open_cache()
        train_seconds_before, calls_before = runner.train_seconds, runner.train_calls
        self._train_epochs(store, plan, cursor)
        budget = self._budget(plan, cursor, runner.train_seconds - train_seconds_before,
                              runner.train_calls - calls_before)
        return TrainResult(
            model=self._model_info(),
            data=self.dataset.describe(),
            settings=self._settings(plan.batch),
            environment=_environment(),
            steps=cursor.step,
            steps_per_epoch=plan.steps_per_epoch,
            epochs=tuple(cursor.history),
            final_checkpoint=self._last_checkpoint,
            checkpoints=tuple(store.paths()),
            resumed_from=cursor.resumed,
            budget=budget,
            epoch_timings=cursor.epoch_timings,
        )

    def _plan(self) -> _Plan:
        """The data fitted to the model, the batches per epoch and the learning rate the schedule starts from."""
        runner, config = self.runner, self.config
        batch = self._batch_size()
        fitted = self._fit()
        spe = _steps_per_epoch(runner, len(fitted.x), batch)
        total_steps = config.epochs * spe

        schedule = config.lr_schedule
        initial = runner.get_weights()
        base_lr = (float(np.ravel(initial[LEARNING_RATE_VARIABLE])[0]) if LEARNING_RATE_VARIABLE in initial
                   else None)  # shape [1] (portable models) or 0-d (older ones)
        if not schedule.is_constant and base_lr is None:
            raise SignatureError(
                f"--lr-schedule {schedule.spec} needs a model that exchanges its learning rate through "
                f"save/restore as {LEARNING_RATE_VARIABLE!r}; this model's variables are "
                f"{sorted(initial)[:8]}.",
                hint="Build the model with 'litetrain build' (Keras optimizers expose it), or omit --lr-schedule.",
            )
        session = self._session_settings(fitted, batch, base_lr, total_steps)
        return _Plan(fitted, batch, spe, total_steps, base_lr, session)

    def _start(self, store: CheckpointStore, session: Mapping[str, Any]) -> _Cursor:
        """Where to start: a verified checkpoint (with ``resume``), or step 0 in an empty folder."""
        config = self.config
        existing = store.paths()
        if config.resume:
            ckpt = store.latest()  # raises on a corrupt or foreign checkpoint: never skipped silently
            if ckpt is None:
                self.log(f"no checkpoint in {config.checkpoint_dir}; starting from step 0")
                return _Cursor()
            self._check_resumable(ckpt, session)
            st = ckpt.state
            epoch, position = int(st["epoch"]), int(st["position"])
            history = [EpochRecord.from_json(e) for e in st["history"]]
            if len(history) > config.epochs:
                raise UsageError(
                    f"The checkpoint {str(ckpt.path)!r} has {len(history)} completed epochs, more than "
                    f"--epochs {config.epochs}.",
                    hint=f"Pass --epochs {len(history)} or more.",
                )
            self.runner.set_weights(ckpt.arrays)
            self._last_checkpoint = ckpt.path
            resumed = {"path": str(ckpt.path), "step": ckpt.step, "epoch": epoch, "position": position}
            self.log(f"resumed from {ckpt.path.name}: step {ckpt.step}, epoch {epoch + 1}, batch {position}")
            return _Cursor(ckpt.step, epoch, position, float(st["epoch_loss_sum"]), history, resumed)
        if existing:
            raise UsageError(
                f"The checkpoint folder {str(config.checkpoint_dir)!r} already holds checkpoints (newest: "
                f"{existing[-1].name}).",
                hint="Pass --resume to continue that session, or choose an empty --checkpoint-dir.",
            )
        return _Cursor()

    def _train_epochs(self, store: CheckpointStore, plan: _Plan, c: _Cursor) -> None:
        """Trains from ``c`` until ``config.epochs`` are complete; a crashed interpreter names the checkpoint."""
        runner, config = self.runner, self.config
        inside_before = _interpreter_train_totals(runner)
        epoch_started = time.perf_counter()
        self.progress.start(plan.total_steps, initial=c.step)
        if self._cache is not None:  # in the first epoch's time: computing the features is part of the session
            self._cache.fill(plan.fitted.x, plan.fitted.x_test)
            self.log(f"feature cache: {len(plan.fitted.x) + len(plan.fitted.x_test)} bottlenecks, "
                     f"{self._cache.nbytes / 2**20:.2f} MiB, "
                     f"{self._cache.seconds:.2f} s")
        try:
            orders = epoch_orders(len(plan.fitted.x), config.seed, c.epoch)
            for e in range(c.epoch, config.epochs):
                order = next(orders)
                first = c.position if e == c.epoch else 0
                if e != c.epoch:
                    c.loss_sum = 0.0
                epoch_train_seconds, epoch_calls = runner.train_seconds, runner.train_calls
                self._train_steps(store, plan, c, e, order, first)
                record = self._end_epoch(store, plan, c, e)
                now = time.perf_counter()
                calls = runner.train_calls - epoch_calls
                inside = _interpreter_train_totals(runner)
                c.epoch_timings[e + 1] = EpochTiming(
                    seconds=now - epoch_started,
                    seconds_per_step=(runner.train_seconds - epoch_train_seconds) / calls if calls else None,
                    interpreter_seconds_per_step=(inside[0] - inside_before[0]) / (inside[1] - inside_before[1])
                    if inside and inside_before and inside[1] > inside_before[1] else None,
                    steps_this_session=plan.steps_per_epoch - first,
                )
                inside_before = inside
                acc_text = "-" if record.accuracy is None else f"{record.accuracy:.1%}"
                self.log(f"epoch {e + 1}/{config.epochs}: loss {record.loss:.6g}, test accuracy {acc_text}, "
                         f"{now - epoch_started:.2f} s")
                # Asking the worker for its timings is not part of any epoch.
                epoch_started = time.perf_counter()
        except RuntimeCrashError as exc:
            # The interpreter died (the isolated worker reports it); every checkpoint written so far is complete.
            last = (f"the last checkpoint, {str(self._last_checkpoint)!r}, is intact" if self._last_checkpoint
                    else "no checkpoint was written yet")
            exc.hint = f"{exc.hint + ' ' if exc.hint else ''}Training stopped after step {c.step}; {last}: " \
                "continue with --resume."
            raise
        finally:
            self.progress.close()

    def _train_steps(self, store: CheckpointStore, plan: _Plan, c: _Cursor, e: int, order: np.ndarray,
                     first: int) -> None:
        """The train steps of epoch ``e`` from position ``first``, with the schedule's rate and step checkpoints."""
        runner, config, schedule = self.runner, self.config, self.config.lr_schedule
        x, y, batch, spe = plan.fitted.x, plan.fitted.y, plan.batch, plan.steps_per_epoch
        for pos in range(first, spe):
            if not schedule.is_constant:
                assert plan.base_lr is not None
                lr = schedule.rate(plan.base_lr, step=c.step, epoch=e, total_steps=plan.total_steps)
                if lr != c.lr_now:
                    self._set_learning_rate(lr)
                    c.lr_now = lr
                c.lr_last = float(lr)
            idx = order[pos * batch:(pos + 1) * batch]
            loss = self._cache.train_step(idx, y[idx]) if self._cache else runner.train_step(x[idx], y[idx])
            if not math.isfinite(loss):
                raise self._non_finite(loss, c.step + 1, e + 1)
            c.loss_sum += loss
            c.step += 1
            c.steps_run += 1
            self.progress.step(loss, e + 1)
            if config.checkpoint_every and c.step % config.checkpoint_every == 0 and pos + 1 < spe:
                self._checkpoint(store, c.step, self._state(plan.session, e, pos + 1, c.loss_sum, c.history))

    def _end_epoch(self, store: CheckpointStore, plan: _Plan, c: _Cursor, e: int) -> EpochRecord:
        """Evaluates on the held-out split, records epoch ``e`` and checkpoints at its end."""
        t0 = time.perf_counter()
        accuracy = self._evaluate(plan.fitted)
        c.eval_seconds += time.perf_counter() - t0
        c.evals += 1
        record = EpochRecord(e + 1, c.loss_sum / plan.steps_per_epoch, accuracy, c.lr_last, plan.steps_per_epoch)
        c.history.append(record)
        self._checkpoint(store, c.step, self._state(plan.session, e + 1, 0, 0.0, c.history))
        return record

    def _budget(self, plan: _Plan, c: _Cursor, train_seconds: float, calls: int) -> Budget:
        """What the session cost (time, memory, checkpoints), and optionally a projection to more data."""
        config, fitted = self.config, plan.fitted
        seconds_per_step = train_seconds / calls if calls else None
        peak, source, worker_timings = self._memory()
        interpreter_per_step = _interpreter_seconds_per_step(worker_timings)
        ckpt_size = self._last_checkpoint.stat().st_size if self._last_checkpoint else None
        sample_bytes = int(fitted.x[0].nbytes + fitted.y[0].nbytes)
        projection = None
        if config.project_samples and seconds_per_step:
            # A device pays the interpreter's time, not the worker's IPC round trip.
            eval_per_sample = c.eval_seconds / (c.evals * len(fitted.x_test)) if c.evals else 0.0
            projection = project(
                config.project_samples, epochs=config.epochs, batch_size=plan.batch,
                seconds_per_step=interpreter_per_step or seconds_per_step,
                checkpoint_every=config.checkpoint_every,
                checkpoint_seconds=sum(self._written) / len(self._written) if self._written else None,
                eval_seconds_per_sample=eval_per_sample, test_ratio=len(fitted.x_test) / len(fitted.x),
                sample_bytes=sample_bytes,
            )
        return Budget(
            steps=c.steps_run,
            total_steps=c.step,
            wall_seconds=time.perf_counter() - self.started,
            train_seconds=train_seconds,
            seconds_per_step=seconds_per_step,
            interpreter_seconds_per_step=interpreter_per_step,
            eval_seconds=c.eval_seconds,
            checkpoint_writes=len(self._written),
            checkpoint_seconds_mean=sum(self._written) / len(self._written) if self._written else None,
            checkpoint_size_bytes=ckpt_size,
            peak_rss_bytes=peak,
            rss_source=source,
            model_size_bytes=len(self.model_bytes),
            data_bytes=int(sum(a.nbytes for a in (fitted.x, fitted.y, fitted.x_test, fitted.y_test))),
            feature_cache_bytes=self._cache.nbytes if self._cache is not None else None,
            feature_cache_seconds=self._cache.seconds if self._cache is not None else None,
            worker_timings=worker_timings,
            projection=projection,
        )

    # -- helpers ----------------------------------------------------------------------------------------------

    def _open_cache(self) -> None:
        """Trains on cached bottlenecks from here on when the config allows it and the model can."""
        if not self.config.feature_cache:
            return
        from litetrain.training.feature_cache import FeatureCache

        self._cache, why = FeatureCache.open(self.runner)
        self._cache_status = why if self._cache is None else "on"
        if self._cache is None:
            self.log(f"feature cache off: {why}")

    @staticmethod
    def _state(session: Mapping[str, Any], epoch: int, position: int, loss_sum: float,
               history: Sequence[EpochRecord]) -> dict[str, Any]:
        """Checkpoint state: ``epoch`` (0-based, in progress) and ``position`` (steps done in it)."""
        return {
            "epoch": epoch,
            "position": position,
            "epoch_loss_sum": loss_sum,
            "history": [h.to_json() for h in history],
            "session": dict(session),
        }

    def _checkpoint(self, store: CheckpointStore, step: int, state: Mapping[str, Any]) -> None:
        t0 = time.perf_counter()
        self._last_checkpoint = store.write(step, self.runner.get_weights(), state)
        self._written.append(time.perf_counter() - t0)

    def _set_learning_rate(self, lr: np.float32) -> None:
        # restore() assigns every exchanged variable, so read them all and change only the rate.
        weights = self.runner.get_weights()
        current = weights[LEARNING_RATE_VARIABLE]
        weights[LEARNING_RATE_VARIABLE] = np.full(np.shape(current), lr, dtype=current.dtype)
        self.runner.set_weights(weights)

    def _evaluate(self, fitted: Any) -> float | None:
        if self._cache is not None and self._cache.test_features is not None:
            outputs = self._cache.infer_test()[self.runner.primary_output]
        else:
            outputs = self.runner.infer(fitted.x_test)[self.runner.primary_output]
        return fitted.accuracy(outputs, None)

    def _non_finite(self, loss: float, step: int, epoch: int) -> DataError:
        last = f"the last good checkpoint is {str(self._last_checkpoint)!r}" if self._last_checkpoint else \
            "no checkpoint was written yet"
        return DataError(
            f"The training loss became {loss} at step {step} (epoch {epoch}); training stopped without "
            f"checkpointing the broken weights ({last}).",
            hint="Lower the learning rate (e.g. --lr-schedule step:1:0.5, or rebuild with a smaller --lr) or check "
            "the data for extreme values; then resume with --resume.",
        )

    def _memory(self) -> tuple[int | None, str, dict[str, Any] | None]:
        peak_fn = getattr(self.runner, "peak_rss_bytes", None)
        if callable(peak_fn):
            timings_fn = getattr(self.runner, "timings", None)
            return int(peak_fn()), "worker", (dict(timings_fn()) if callable(timings_fn) else None)
        return process_peak_rss_bytes(), "in-process", None

    def _model_info(self) -> dict[str, Any]:
        infos = self.runner.weight_infos
        return {
            "path": str(self.model_path) if self.model_path is not None else None,
            "size_bytes": len(self.model_bytes),
            "sha256": hashlib.sha256(self.model_bytes).hexdigest(),
            "train_inputs": [t.to_json() for t in self.runner.train_inputs],
            "variables": len(infos),
            "variables_size_bytes": int(sum(int(np.prod(t.shape or (), dtype=np.int64)) * t.dtype.itemsize
                                            for t in infos.values())),
            "learning_rate_variable": LEARNING_RATE_VARIABLE in infos,
        }

    def _settings(self, batch: int) -> dict[str, Any]:
        c = self.config
        return {
            "model": str(self.model_path) if self.model_path is not None else None,
            "data": self.dataset.name,
            "epochs": c.epochs,
            "batch_size": batch,
            "shuffle_seed": c.seed,
            "checkpoint_dir": str(c.checkpoint_dir),
            "checkpoint_every": c.checkpoint_every,
            "keep": c.keep_count,
            "resume": c.resume,
            "lr_schedule": c.lr_schedule.to_json(),
            "project_samples": c.project_samples,
            "feature_cache": self._cache_status,
            "runner": self.runner.name,
            **self.extra_settings,
        }


def _interpreter_seconds_per_step(worker_timings: Mapping[str, Any] | None) -> float | None:
    """Mean time of a train call inside the worker's interpreter, from :meth:`WorkerRunner.timings`."""
    if not worker_timings:
        return None
    train = (worker_timings.get("signatures") or {}).get("train") or {}
    calls, seconds = train.get("calls"), train.get("interpreter_s")
    return float(seconds) / int(calls) if calls and seconds is not None else None


def _interpreter_train_totals(runner: Runner) -> tuple[float, int] | None:
    """(seconds, calls) of ``train`` inside the isolated worker's interpreter so far; None for in-process runners,
    whose train call is the interpreter call."""
    timings_fn = getattr(runner, "timings", None)
    if not callable(timings_fn):
        return None
    train = (timings_fn().get("signatures") or {}).get("train") or {}
    return float(train.get("interpreter_s") or 0.0), int(train.get("calls") or 0)


def _environment() -> dict[str, Any]:
    from litetrain._env import environment

    return environment()


def make_runner(model: bytes | str | Path, *, isolated: bool = False, runtime_python: str | None = None,
                num_threads: int | None = None, runtimes: str | Sequence[str] | None = None) -> Runner:
    """The in-process LiteRT runner, or the isolated worker when ``isolated`` or ``runtime_python`` is given, or
    the runtime(s) ``runtimes`` names (:mod:`litetrain.training.runtimes`)."""
    from litetrain.runtime.registry import open_runner, runner_class

    if runtimes is not None:
        from litetrain.training.runtimes import open_train_runtimes, parse_train_runtimes

        if isolated or runtime_python:
            raise UsageError("--runtimes cannot be combined with --isolated/--runtime-python.",
                             hint="Name the worker runtime in --runtimes (--runtimes worker), or omit --runtimes.")
        return open_train_runtimes(parse_train_runtimes(runtimes), model, num_threads=num_threads)
    if isolated or runtime_python:
        try:
            runner_class("worker")
        except ImportError as exc:
            raise RuntimeUnavailableError(
                f"The isolated runtime worker is not available in this installation ({exc}).",
                hint="Train in-process (omit --isolated/--runtime-python).",
            ) from exc
        return open_runner("worker", model, runtime_python=runtime_python, num_threads=num_threads)
    return open_runner("interpreter", model, num_threads=num_threads)


def train(
    model: str | Path | bytes,
    data: str | Path | Dataset | None,
    *,
    epochs: int,
    checkpoint_dir: str | Path,
    labels: str | Path | None = None,
    batch_size: int | None = None,
    shuffle_seed: int | None = None,
    checkpoint_every: int | None = None,
    keep: int | None = None,
    resume: bool = False,
    lr_schedule: str | LRSchedule | None = None,
    isolated: bool = False,
    runtime_python: str | None = None,
    num_threads: int | None = None,
    runtimes: str | Sequence[str] | None = None,
    project_samples: int | None = None,
    feature_cache: bool = True,
    progress: Progress | bool | None = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Trains a trainable .tflite model with its own ``train`` signature, as a phone would, with checkpoints.

    Args:
        model: Path to the .tflite (what ``litetrain build`` writes) or its bytes.
        data: Anything :func:`~litetrain.data.dataset.load_dataset` accepts (``digits:28x28``, ``.npz``, ``.npy``
            with ``labels``, ``.csv``, an image folder, a :class:`~litetrain.data.dataset.Dataset`); image folders
            are resized to the model's input.
        epochs, checkpoint_dir, batch_size, shuffle_seed, checkpoint_every, keep, resume, lr_schedule,
            project_samples, feature_cache: See :class:`TrainConfig`.
        labels: Labels ``.npy`` for a ``.npy`` of inputs.
        isolated: Run the interpreter in a separate worker process (measures its own memory and time).
        runtime_python: Python interpreter for the worker (implies ``isolated``).
        num_threads: Interpreter threads (None: the interpreter's default).
        runtimes: The LiteRT runtime(s) to train on, comma-separated (:mod:`litetrain.training.runtimes`): the
            first leads the session, the others follow it in lockstep; the result's ``runtimes`` has a row each.
            None: the Interpreter (or the worker with ``isolated``) and no ``runtimes`` rows.
        progress: A :class:`Progress`, or True/None for a bar on a terminal, False for none.
        log: Receives a line per epoch and notable events.

    Returns:
        The :class:`TrainResult` (truthy when every epoch is complete).

    Raises:
        LitetrainError: for every user-facing problem (see :meth:`TrainSession.run`).
    """
    from litetrain.runtime.base import require_single_io_signatures
    from litetrain.runtime.litert import read_model

    started = time.perf_counter()
    config = TrainConfig(
        epochs=epochs, checkpoint_dir=Path(checkpoint_dir), batch_size=batch_size, shuffle_seed=shuffle_seed,
        checkpoint_every=checkpoint_every, keep=keep, resume=resume, lr_schedule=LRSchedule.parse(lr_schedule),
        project_samples=project_samples, feature_cache=feature_cache,
    )
    model_bytes = read_model(model)
    model_path = None if isinstance(model, bytes | bytearray) else Path(model)
    if not isinstance(progress, Progress):
        progress = Progress(enabled=None if progress is True else progress)
    with make_runner(model_path or model_bytes, isolated=isolated, runtime_python=runtime_python,
                     num_threads=num_threads, runtimes=runtimes) as runner:
        require_single_io_signatures(runner, "litetrain train")
        dataset = load_dataset(data, labels=labels, input_shape=runner.infer_input.shape[1:])
        settings = {"labels": None if labels is None else str(labels), "isolated": bool(isolated or runtime_python),
                    "runtime_python": runtime_python, "num_threads": num_threads}
        session = TrainSession(runner, dataset, config, model_bytes=model_bytes, model_path=model_path,
                               settings=settings, progress=progress, log=log, started=started)
        result = session.run()
        if runtimes is None:
            return result
        from litetrain.training.runtimes import runtime_rows

        return dataclasses.replace(result, runtimes=runtime_rows(runner))
