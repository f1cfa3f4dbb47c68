"""``TfliteFromSavedModel``: TFLite conversion settings for training graphs, with readable failures."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from litetrain._lazy import import_module, quiet_native_output
from litetrain.errors import ConversionError, LitetrainError, UnsupportedModelError

# The converter's summary lines ("TF Select ops: A, B" / "Custom ops: C") and per-op errors name the ops; the
# MLIR locations (fused["Op:", "scope/layer/.../Op@__inference_fn"]) name the name scope each op was traced in.
_SUMMARY_RE = re.compile(r"^(TF Select ops|Custom ops): (.+)$", re.MULTILINE)
_NEITHER_RE = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_OP_LOC_RE = re.compile(r'fused\["(\w+):",\s*"([^"@]+)(?:@[^"]*)?"\]')
# A diagnostic names the failing op as 'tf.Op' and the traced function (hence the signature) as __inference_<fn>_N.
_TF_OP_ERROR_RE = re.compile(r"'tf\.(\w+)' op (.+)$", re.MULTILINE)
_SIGNATURE_RE = re.compile(r"__inference_(train_step|train|infer|save|restore)\w*?_\d+")


def tflite_from_saved_model(
    saved_model_dir: str | Path,
    signature_keys: list[str],
    *,
    select_tf_ops: bool = False,
    layer_names: Sequence[str] = (),
    suffixed_scopes: bool = False,
) -> bytes:
    """Converts the given signatures of a SavedModel to a .tflite flatbuffer with resource variables.

    Args:
        saved_model_dir: The SavedModel folder.
        signature_keys: Signatures to convert (all four of litetrain's convention for a trainable model).
        select_tf_ops: Allow Flex ops (needs the select-TF-ops library at run time). Default: builtins only.
        layer_names: The Keras model's layer names, to name the layer of an op that cannot be converted.
        suffixed_scopes: Layers were traced in name scopes ``<name>_<n>`` (Keras 3) instead of ``<name>``.

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
        with quiet_native_output():  # the converter prints its MLIR diagnostics; the exception carries them too
            return bytes(converter.convert())
    except Exception as exc:
        error = _conversion_error(exc, layer_names, suffixed_scopes, select_tf_ops)
        error.detail = str(exc).strip() or None
        raise error from exc


def _conversion_error(
    exc: Exception, layer_names: Sequence[str] = (), suffixed_scopes: bool = False, select_tf_ops: bool = False
) -> LitetrainError:
    text = str(exc)
    flex: list[str] = []
    custom: list[str] = []
    for kind, names in _SUMMARY_RE.findall(text):
        (flex if kind.startswith("TF Select") else custom).extend(n.strip() for n in names.split(",") if n.strip())
    if not flex and not custom and ("not supported by the native TFLite runtime" in text
                                    or "Select TensorFlow op" in text or "failed to legalize operation" in text):
        flex = _NEITHER_RE.findall(text)
    if not flex and not custom:
        return _other_failure(text, type(exc).__name__, layer_names, suffixed_scopes)
    ops = sorted(set(flex) | set(custom))
    described, layers, forward = [], [], False
    for op in ops:
        found = {_where(scope, layer_names, suffixed_scopes) for name, scope in _OP_LOC_RE.findall(text) if name == op}
        where = sorted(phrase for phrase, _, _ in found)
        described.append(f"{op} (in the {' and the '.join(where)})" if where else op)
        layers += [layer for _, layer, _ in found if layer]
        forward = forward or not found or not all(gradient for _, _, gradient in found)
    layers = sorted(set(layers))
    them = ", ".join(repr(n) for n in layers) if layers else "the layer(s) that use them"
    it = "it" if len(layers) == 1 else "them"
    if forward:  # the forward pass itself needs the op: freezing cannot remove it
        hint = f"Replace {them} with layers made of ops that TFLite has as builtins"
    else:
        hint = (f"Freeze {them} with --trainable, training only layers after {it} (--trainable last:N or "
                f"--trainable NAME,...), so no gradient flows through {it}; or replace {it} with a supported layer")
    if flex and not select_tf_ops:
        hint += ("; or allow select TF ops with --select-tf-ops (then the phone needs the select-tf-ops library "
                 "and desktop interpreters cannot run the model)")
    return UnsupportedModelError(
        f"The model needs TensorFlow ops that TFLite has no builtin for: {', '.join(described)}."
        + ("" if flex else " They have no select-TF (Flex) kernel either."),
        hint=hint + ".",
    )


def _where(scope: str, layer_names: Sequence[str], suffixed: bool) -> tuple[str, str | None, bool]:
    """(phrase, layer, in a gradient) for an op's name scope: ``("gradient of layer 'x'", "x", True)``."""
    parts = [p for p in scope.split("/") if p]
    gradient = bool(parts) and parts[0] in ("gradient_tape", "gradients")
    for part in parts[1:] if len(parts) > 1 else parts:  # the first part is the tape or the model's scope
        layer = _layer_of(part, layer_names, suffixed)
        if layer:
            return (f"gradient of layer {layer!r}" if gradient else f"layer {layer!r}"), layer, gradient
    return f"name scope {scope!r}", None, gradient


def _layer_of(part: str, layer_names: Sequence[str], suffixed: bool) -> str | None:
    exact = part if part in layer_names else None
    with_suffix = [n for n in layer_names if re.fullmatch(re.escape(n) + r"_\d+", part)]
    best_suffix = max(with_suffix, key=len) if with_suffix else None
    return (best_suffix or exact) if suffixed else (exact or best_suffix)


def _other_failure(text: str, kind: str, layer_names: Sequence[str], suffixed: bool) -> LitetrainError:
    """One line for a failure that is not a missing op: the op, its layer and signature, and what to do."""
    found = _TF_OP_ERROR_RE.search(text)
    if found is None:
        lines = [line.strip() for line in text.splitlines() if line.strip() and "loc(" not in line]
        return ConversionError(
            f"TFLite conversion failed ({kind}): {(lines[0] if lines else 'no message')[:300]}",
            hint="Run again with --verbose for the converter's full output, and report the model to litetrain.",
        )
    op, reason = found.group(1), found.group(2).strip().rstrip(".")
    scopes = [scope for name, scope in _OP_LOC_RE.findall(text) if name == op]
    where = _where(scopes[0], layer_names, suffixed)[0] if scopes else "the model"
    signature = _SIGNATURE_RE.search(text)
    in_signature = f" of the {signature.group(1).replace('train_step', 'train')} signature" if signature else ""
    return UnsupportedModelError(
        f"TFLite cannot convert {op} in {where}{in_signature}: {reason[:200]}.",
        hint=_hint_for(op, reason),
    )


def _hint_for(op: str, reason: str) -> str:
    if op.startswith("TensorList") or "element_shape" in reason:
        return ("A loop over a TensorList (a recurrent layer's, or a tf.while_loop/TensorArray in a custom layer) "
                "needs static shapes: give keras.Input a full shape including the sequence length, or write the "
                "loop over a fixed number of steps.")
    if "shape" in reason or "dynamic" in reason:
        return ("Give keras.Input a full static shape (every dimension but the batch), and avoid layers that "
                "compute shapes at run time.")
    return (f"Replace or freeze (--trainable) the layer that uses {op}; run again with --verbose for the "
            "converter's full output.")
