"""Configuration records and enums shared by every stage (cf. ai-edge-quantizer's ``qtyping.py``).

Every parameter that has a default is ``None`` here and resolved once where it is used.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from litetrain.errors import UsageError


class Loss(enum.StrEnum):
    """Losses that litetrain builds into the train signature."""

    SPARSE_CATEGORICAL_CROSSENTROPY = "sparse_categorical_crossentropy"
    CATEGORICAL_CROSSENTROPY = "categorical_crossentropy"
    BINARY_CROSSENTROPY = "binary_crossentropy"
    MSE = "mse"
    MAE = "mae"

    @property
    def is_classification(self) -> bool:
        return self in (Loss.SPARSE_CATEGORICAL_CROSSENTROPY, Loss.CATEGORICAL_CROSSENTROPY, Loss.BINARY_CROSSENTROPY)

    @property
    def has_from_logits(self) -> bool:
        return self.is_classification


DATA_FORMS = (
    "'digits', 'digits:28x28' (resized digits), a .npz file with arrays x and y (optionally x_test and y_test), "
    "a .npy file of inputs (labels with --labels), a .csv file, or a folder of images with one subfolder per class "
    "(or train/ and test/ folders with one each)"
)
"""Every form of ``--data`` that :func:`litetrain.data.dataset.load_dataset` accepts, for help texts and hints."""

MAX_SEED = 2**32 - 1
"""numpy's and TensorFlow's seeds are unsigned 32-bit integers."""


def check_seed(seed: int) -> int:
    """Returns ``seed`` if numpy and TensorFlow accept it (0 to 2**32 - 1); raises UsageError otherwise."""
    from litetrain.errors import UsageError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"A seed must be an integer from 0 to {MAX_SEED}; received {seed!r}.")
    return seed


DEFAULT_BATCH_SIZE = 32
"""The train signature's fixed batch when none is asked for (build, check, federate; train reads the model's)."""

_LOSS_ALIASES = {
    "sparse_categorical_crossentropy": Loss.SPARSE_CATEGORICAL_CROSSENTROPY,
    "sparse-ce": Loss.SPARSE_CATEGORICAL_CROSSENTROPY,
    "sparse_ce": Loss.SPARSE_CATEGORICAL_CROSSENTROPY,
    "categorical_crossentropy": Loss.CATEGORICAL_CROSSENTROPY,
    "categorical-ce": Loss.CATEGORICAL_CROSSENTROPY,
    "ce": Loss.CATEGORICAL_CROSSENTROPY,
    "binary_crossentropy": Loss.BINARY_CROSSENTROPY,
    "binary-ce": Loss.BINARY_CROSSENTROPY,
    "bce": Loss.BINARY_CROSSENTROPY,
    "mse": Loss.MSE,
    "mean_squared_error": Loss.MSE,
    "mae": Loss.MAE,
    "mean_absolute_error": Loss.MAE,
}


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """A loss and, for cross-entropies, whether the model outputs logits (None: inferred from the model)."""

    name: Loss
    from_logits: bool | None = None

    @classmethod
    def parse(cls, text: str, from_logits: bool | None = None) -> LossConfig:
        key = text.strip().lower().replace(" ", "_")
        if key not in _LOSS_ALIASES:
            raise UsageError(
                f"Unknown loss {text!r}.", hint=f"Choose one of: {', '.join(sorted({str(v) for v in Loss}))}."
            )
        return cls(_LOSS_ALIASES[key], from_logits)


class Optimizer(enum.StrEnum):
    """Optimizers that litetrain builds into the train signature (Keras implementations)."""

    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"
    RMSPROP = "rmsprop"


_FLAGS = {"beta_1": "--beta1", "beta_2": "--beta2"}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer and its hyperparameters; None means the Keras default of that optimizer.

    ``name`` None means the compiled model's optimizer (else SGD), with the hyperparameters that are set here
    overriding its own (``--lr`` without ``--optimizer``).
    """

    name: Optimizer | None
    learning_rate: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    weight_decay: float | None = None
    rho: float | None = None

    def __post_init__(self) -> None:
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"The learning rate must be positive; received {self.learning_rate}.")
        if self.name is None:
            return  # checked against the compiled optimizer when it is known
        allowed = {
            Optimizer.SGD: {"momentum", "nesterov"},
            Optimizer.ADAM: {"beta_1", "beta_2", "epsilon"},
            Optimizer.ADAMW: {"beta_1", "beta_2", "epsilon", "weight_decay"},
            Optimizer.RMSPROP: {"rho", "momentum", "epsilon"},
        }[self.name]
        for field in ("momentum", "nesterov", "beta_1", "beta_2", "epsilon", "weight_decay", "rho"):
            if getattr(self, field) is not None and field not in allowed:
                raise UsageError(
                    f"{_FLAGS.get(field, '--' + field.replace('_', '-'))} does not apply to the "
                    f"{self.name.value} optimizer.",
                    hint=f"{self.name.value} takes: {', '.join(sorted(allowed)) or 'only the learning rate'}.",
                )

    def keras_kwargs(self) -> dict[str, float | bool]:
        """Keyword arguments for the Keras optimizer class (only those that were set)."""
        out: dict[str, float | bool] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "name" and value is not None:
                out[field.name] = value
        return out


@dataclasses.dataclass(frozen=True)
class TrainableSpec:
    """Which layers train: all, the last N, or named ones; the rest are frozen and folded into constants."""

    mode: str = "all"  # "all" | "last" | "names"
    last: int = 0
    names: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> TrainableSpec:
        """Parses ``all``, ``last:N`` (or a bare ``N``), or ``name1,name2``."""
        if text is None or text.strip() in ("", "all"):
            return cls()
        text = text.strip()
        m = re.fullmatch(r"(?:last:)?(\d+)", text)
        if m:
            n = int(m.group(1))
            if n < 1:
                raise UsageError(f"--trainable last:N needs N >= 1; received {text!r}.")
            return cls("last", last=n)
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        if not names:
            raise UsageError(f"Cannot read --trainable {text!r}.", hint="Use all, last:N, or layer names a,b,c.")
        return cls("names", names=names)

    def describe(self) -> str:
        if self.mode == "all":
            return "all"
        if self.mode == "last":
            return f"last:{self.last}"
        return ",".join(self.names)


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """Absolute and relative tolerances: ``|a - b| <= atol + rtol * scale`` (scale: the reference's magnitude).

    The defaults sit two orders of magnitude above the float32 rounding differences measured between TensorFlow
    and LiteRT on stable training (~2e-7 in loss, FACTS.md), and far below any real defect seen.
    """

    atol: float | None = None
    rtol: float | None = None

    DEFAULT_ATOL = 1e-5
    DEFAULT_RTOL = 1e-4

    @property
    def a(self) -> float:
        return self.DEFAULT_ATOL if self.atol is None else self.atol

    @property
    def r(self) -> float:
        return self.DEFAULT_RTOL if self.rtol is None else self.rtol

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise UsageError(f"--{name} must be >= 0; received {value}.")

    def allows(self, diff: float, scale: float) -> bool:
        """True when ``diff`` is within tolerance of a reference of magnitude ``scale`` (NaN never passes)."""
        return bool(diff <= self.a + self.r * abs(scale))  # NaN compares False
