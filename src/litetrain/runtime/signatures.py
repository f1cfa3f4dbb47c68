"""Reading litetrain's signature convention from a TFLite interpreter's signature details.

Shared by :class:`~litetrain.runtime.litert.LiteRTRunner` (details from signature runners in this process) and
:class:`~litetrain.runtime.worker.WorkerRunner` (the same details sent as JSON by a worker process), so both
runners accept and reject exactly the same models with the same messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from litetrain.errors import ConversionError, RuntimeUnavailableError, SignatureError
from litetrain.runtime.base import TensorInfo, record_info

CONVENTION_KEYS = ("train", "infer", "save", "restore")
COUNT = "n"
"""The train signature's count of real rows (see :mod:`litetrain.trainable.real_rows`)."""
FLEX_ISSUE = "google-ai-edge/LiteRT#6458"

SignatureDetails = Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]
"""``{signature: {"inputs": {name: detail}, "outputs": {name: detail}}}``; a detail has ``shape``,
optionally ``shape_signature`` (-1 for a dynamic dimension) and ``dtype`` (a numpy dtype or its name)."""


def tensor_info(name: str, detail: Mapping[str, Any]) -> TensorInfo:
    """The :class:`TensorInfo` of one interpreter tensor detail (dynamic dimensions become None)."""
    sig = detail.get("shape_signature", detail["shape"])
    return TensorInfo(name, tuple(None if int(d) < 0 else int(d) for d in sig), np.dtype(detail["dtype"]))


@dataclasses.dataclass(frozen=True)
class SignatureLayout:
    """The tensors of the train/infer/save/restore signatures, checked against the convention."""

    keys: tuple[str, ...]
    """The convention's signatures that the model has (a subset of train, infer, save, restore)."""
    train_inputs: tuple[TensorInfo, TensorInfo]
    count_input: TensorInfo | None
    """The train signature's ``n`` (how many rows of the batch are real), or None for a model without it."""
    infer_input: TensorInfo
    infer_outputs: tuple[str, ...]
    has_weights: bool
    weight_infos: dict[str, TensorInfo]


def signature_layout(
    details: SignatureDetails, *, require_weights: bool = True, names: Iterable[str] | None = None
) -> SignatureLayout:
    """Checks the signature details against litetrain's convention and returns the tensors of each.

    Args:
        details: The convention's signatures that the model has, with their input and output details.
        require_weights: Also require the ``save``/``restore`` signatures.
        names: Every signature name of the model, for the error message (default: the keys of ``details``).

    Raises:
        SignatureError: a required signature, input or output is missing.
    """
    required = ["train", "infer"] + (["save", "restore"] if require_weights else [])
    missing = [k for k in required if k not in details]
    if missing:
        raise SignatureError(
            f"The TFLite model lacks the signature(s) {missing}; it has {sorted(names or details)}.",
            hint="A trainable model needs train(x, y) -> loss, infer(x) -> output, save() -> weights and "
            "restore(weights) (see 'litetrain build').",
        )
    train_in, train_out = details["train"]["inputs"], details["train"]["outputs"]
    xs, ys = _named(train_in, "x"), _named(train_in, "y")
    count = tensor_info(COUNT, train_in[COUNT]) if COUNT in train_in else None
    if not xs or not ys or len(xs) + len(ys) + (count is not None) != len(train_in) or "loss" not in train_out:
        raise SignatureError(
            f"The train signature must take x and y (or x_<input>... and y_<output>... for several), optionally "
            f"n, and return loss; it takes {sorted(train_in)} and returns {sorted(train_out)}.",
            hint="Rename the signature's inputs/outputs to the convention (see 'litetrain compare --help').",
        )
    infer_in = details["infer"]["inputs"]
    if len(xs) == 1 and len(infer_in) != 1:
        raise SignatureError(f"The infer signature must take one input; it takes {sorted(infer_in)}.")
    if len(xs) > 1 and set(infer_in) != set(xs):
        raise SignatureError(f"The infer signature must take the train signature's inputs {sorted(xs)}; it takes "
                             f"{sorted(infer_in)}.")
    if count is not None and (count.shape != (1,) or count.dtype != np.int32):
        raise SignatureError(f"The train signature's count input n must be int32 of shape [1]; it is {count.dtype} "
                             f"of shape {list(count.shape)}.")
    has_weights = "save" in details and "restore" in details
    return SignatureLayout(
        keys=tuple(k for k in details if k in CONVENTION_KEYS),
        train_inputs=(
            record_info("x", [tensor_info(n, train_in[n]) for n in xs]),
            record_info("y", [tensor_info(n, train_in[n]) for n in ys]),
        ),
        count_input=count,
        infer_input=record_info("x", [tensor_info(n, d) for n, d in infer_in.items()]),
        infer_outputs=tuple(details["infer"]["outputs"]),
        has_weights=has_weights,
        weight_infos=(
            {n: tensor_info(n, d) for n, d in details["restore"]["inputs"].items()} if has_weights else {}
        ),
    )


def _named(inputs: Iterable[str], prefix: str) -> list[str]:
    """The signature inputs called ``prefix`` or ``prefix_<name>``."""
    return sorted(n for n in inputs if n == prefix or n.startswith(prefix + "_"))


def flex_unavailable_error(flex_ops: Iterable[str], *, extra_hint: str = "") -> RuntimeUnavailableError:
    """The error for a model with select-TF (Flex) ops in an interpreter without the Flex delegate."""
    return RuntimeUnavailableError(
        f"The model contains select-TF (Flex) ops {sorted(flex_ops)}; the LiteRT and TensorFlow "
        f"interpreters for desktop Python no longer include the Flex delegate ({FLEX_ISSUE}), "
        "so it cannot be run or compared here.",
        hint="Build it builtin-only (the default of 'litetrain build'), or run it on a device that links "
        "the select-tf-ops library" + extra_hint + ".",
    )


def signature_call_error(interpreter: str, key: str, detail: object) -> ConversionError:
    """The error for a signature call that the interpreter rejected (wrong input, failed kernel), from any runner."""
    return ConversionError(f"The {interpreter} interpreter failed in the {key!r} signature: {detail}")
