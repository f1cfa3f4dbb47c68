"""``litetrain train --runtimes``: which LiteRT runtime(s) a training session runs on.

One name (``--runtimes arm64``): the session trains, checkpoints and evaluates on that runtime, as the phone (or
the web page) would. Several (``--runtimes arm64,interpreter,wasm``): the first leads the session and the others
train the same batches from the same weights in lockstep (:class:`~litetrain.training.lockstep.LockstepRunner`);
the result's ``runtimes.<name>`` says how far each follower's losses and final weights are from the leader's and how
fast each one trained. Default: the Python ``Interpreter``, alone, exactly as without the option.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

from litetrain.errors import UsageError
from litetrain.runtime.base import Runner


def parse_train_runtimes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The runtimes of ``--runtimes`` in the order given (the first leads); ``all``: every one that runs here.

    Raises:
        UsageError: an unknown name.
        RuntimeUnavailableError: a named runtime is not installed (exit code 3), naming the command that installs it.
    """
    from litetrain.comparison.runtimes import INTERPRETER, parse_runtimes

    if value is None:
        return (INTERPRETER,)
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value) if p and p.strip()]
    usable = parse_runtimes(parts)  # checks every name; the Interpreter first, then the others as given
    if "all" in parts:
        return usable
    return tuple(dict.fromkeys(p for p in parts if p in usable))


def open_train_runtimes(names: Sequence[str], model: bytes | str | Path, *, num_threads: int | None = None) -> Runner:
    """The session's runner: the one runtime named, or a lockstep of them led by the first.

    Raises:
        UsageError: ``num_threads`` for a runtime that does not take a thread count.
        LitetrainError: a runtime cannot load the model (each runner's own refusal).
    """
    from litetrain.runtime.registry import runner_class
    from litetrain.training.lockstep import LockstepRunner

    opened: list[Runner] = []
    try:
        for name in names:
            cls = runner_class(name)
            options = {}
            if num_threads is not None:
                if "num_threads" not in inspect.signature(cls).parameters:
                    raise UsageError(f"--threads {num_threads}: the {name} runtime does not take a thread count.",
                                     hint=f"Omit --threads, or train on another runtime than {name}.")
                options["num_threads"] = num_threads
            opened.append(cls(model, name=name, **options))
    except BaseException:
        for runner in opened:
            runner.close()
        raise
    return opened[0] if len(opened) == 1 else LockstepRunner(opened)


def runtime_rows(runner: Runner) -> dict[str, dict[str, object]]:
    """The result's ``runtimes``: a row per runtime (see :meth:`LockstepRunner.rows`); one runtime alone has its
    steps, steps/s and whether that speed is an emulator's."""
    from litetrain.runtime.registry import EMULATED
    from litetrain.training.lockstep import LockstepRunner

    if isinstance(runner, LockstepRunner):
        return runner.rows()
    speed = runner.train_calls / runner.train_seconds if runner.train_seconds else None
    return {runner.name: {"leader": True, "steps": runner.train_calls, "steps_per_second": speed,
                          "emulated": runner.name in EMULATED, "final_loss": None, "max_abs_loss_diff": None,
                          "max_abs_weight_diff": None, "identical_to_leader": None}}
