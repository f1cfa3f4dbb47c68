"""The losses of a model with several outputs: per-output losses and ``loss_weights`` as compiled.

A :class:`PerOutputLoss` is a :class:`~litetrain.config.LossConfig` (its ``name`` and ``from_logits`` are the first
output's, for reports) that also carries every output's loss and weight, so it travels wherever a loss config does
(the builder, the float64 twin) and :class:`~litetrain.trainable.module.TrainableModule` builds the weighted sum.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from litetrain.config import LossConfig
from litetrain.errors import UnsupportedModelError, UsageError
from litetrain.trainable.loss_configs import loss_config_of, with_from_logits


@dataclasses.dataclass(frozen=True)
class OutputLoss:
    """The loss of one output and its weight in the total."""

    output: str  # the Keras output name
    loss: LossConfig
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "name": self.loss.name.value, "from_logits": self.loss.from_logits,
                "weight": self.weight}


@dataclasses.dataclass(frozen=True)
class PerOutputLoss(LossConfig):
    """Losses of a model with several outputs; the total is ``sum(weight * loss)`` as Keras computes it."""

    outputs: tuple[OutputLoss, ...] = ()


def output_names(model: Any) -> list[str]:
    return [str(n) for n in (getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])]


def resolve_output_losses(config: LossConfig | None, model: Any) -> PerOutputLoss:
    """Every output's loss: ``config`` for each (``--loss``), else the compiled per-output losses; the weights are
    the compiled ``loss_weights`` (default 1); ``from_logits`` follows each output's activation when not given.

    Raises:
        UsageError: no loss given and the model was not compiled with one.
        UnsupportedModelError: compiled losses or weights that do not name every output.
    """
    names = output_names(model)
    if config is None:
        compiled = getattr(model, "loss", None)
        if compiled is None:
            raise UsageError(
                f"No loss given and the model with outputs {names} was not compiled with one.",
                hint="Compile it with a loss per output, e.g. model.compile(loss={'a': 'mse', 'b': ...}), or pass "
                "--loss to use one loss for every output.",
            )
        losses = [loss_config_of(v) for v in _per_output(compiled, names, "loss")]
    else:
        losses = [config] * len(names)
    weights = _per_output(_compiled_loss_weights(model), names, "loss_weights", default=1.0)
    heads = []
    for name, loss, weight, tensor in zip(names, losses, weights, model.outputs, strict=True):
        if not isinstance(weight, numbers.Real):
            raise UnsupportedModelError(f"The loss weight of output {name!r} is {weight!r}; a number is needed.")
        heads.append(OutputLoss(name, with_from_logits(loss, _producer(tensor)), float(weight)))
    first = heads[0].loss
    return PerOutputLoss(first.name, first.from_logits, tuple(heads))


def _compiled_loss_weights(model: Any) -> Any:
    # Keras 3 keeps them on model._compile_loss, tf_keras on model.compiled_loss; neither exposes them publicly.
    holder = getattr(model, "_compile_loss", None) or getattr(model, "compiled_loss", None)
    return getattr(holder, "_user_loss_weights", None)


def _per_output(value: Any, names: list[str], what: str, default: Any = None) -> list[Any]:
    """``value`` spread over the outputs: a dict by output name, a list by position, or one value for all."""
    if value is None:
        return [default] * len(names)
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing and default is None:
            raise UnsupportedModelError(
                f"The model's compiled {what} names outputs {sorted(value)}; outputs {missing} have none.",
                hint=f"Compile it with a {what} for every output (litetrain trains every output).",
            )
        return [value.get(n, default) for n in names]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(names):
            raise UnsupportedModelError(
                f"The model's compiled {what} has {len(value)} entries for {len(names)} outputs {names}.",
                hint=f"Give one {what} per output, or a dict by output name.",
            )
        return list(value)
    return [value] * len(names)


def _producer(tensor: Any) -> Any:
    """The layer whose output ``tensor`` is (Keras 3 and tf_keras both record it in ``_keras_history``)."""
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None
