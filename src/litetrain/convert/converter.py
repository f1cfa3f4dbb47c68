"""``TfliteFromSavedModel``: TFLite conversion settings for training graphs, with readable failures."""

from __future__ import annotations

import re
from pathlib import Path

from litetrain._lazy import import_module
from litetrain.errors import ConversionError, UnsupportedModelError

_FLEX_OP_RE = re.compile(r"tf\.(\w+)\s*\{[^}]*\}|tf\.(\w+)\b")
_LOC_RE = re.compile(r'loc\(callsite\("([^"]+)"|loc\(fused\[[^\]]*"([^"]+)"')


def tflite_from_saved_model(
    saved_model_dir: str | Path, signature_keys: list[str], *, select_tf_ops: bool = False
) -> bytes:
    """Converts the given signatures of a SavedModel to a .tflite flatbuffer with resource variables.

    Args:
        saved_model_dir: The SavedModel folder.
        signature_keys: Signatures to convert (all four of litetrain's convention for a trainable model).
        select_tf_ops: Allow Flex ops (needs the select-TF-ops library at run time). Default: builtins only.

    Raises:
        UnsupportedModelError: an op has no builtin equivalent (names the op and the layer where known).
        ConversionError: any other converter failure.
    """
    tf = import_module("tensorflow")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=signature_keys)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    # Variables live in the model as resource variables shared by all signatures; without this they are frozen.
    converter.experimental_enable_resource_variables = True
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise _conversion_error(exc) from exc


def _conversion_error(exc: Exception) -> Exception:
    text = str(exc)
    if "not supported by the native TFLite runtime" in text or "Select TensorFlow op" in text or \
            "failed to legalize operation" in text:
        ops = sorted({a or b for a, b in _FLEX_OP_RE.findall(text)} - {"function"})
        where = sorted({a or b for a, b in _LOC_RE.findall(text)})
        layers = sorted({_layer_of(w) for w in where if _layer_of(w)})
        return UnsupportedModelError(
            f"The model needs TensorFlow ops that TFLite has no builtin for: {', '.join(ops) or '(unknown)'}"
            + (f", in layer(s) {', '.join(layers)}" if layers else "")
            + ".",
            hint="Freeze the layer(s) with --trainable so no gradient flows through them, replace them with a "
            "supported layer, or allow select TF ops with --select-tf-ops (then the phone needs the "
            "select-tf-ops library and desktop interpreters cannot run the model).",
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ConversionError(f"TFLite conversion failed: {first[:600]}")


def _layer_of(location: str) -> str | None:
    parts = [p for p in re.split(r"[/@]", location) if p]
    skip = {"gradient_tape", "StatefulPartitionedCall", "inference", "sequential", "functional"}
    for p in parts:
        if p not in skip and not p.startswith(("__inference", "StatefulPartitionedCall", "gradients")):
            return p
    return None
