"""Per-layer errors as a node-data overlay for Google's Model Explorer (``ai-edge-model-explorer``).

Model Explorer colours a graph's nodes from a JSON file of node data: per graph (a TFLite subgraph, by name),
``results`` keyed by a node's output tensor name, each ``{"value": number}``, plus a colour ``gradient`` from the
smallest value (stop 0) to the largest (stop 1). Load the .tflite in Model Explorer, then this file under "Node
data", and the layers where TFLite and TensorFlow (or a quantized model and float32) part show up in red.

TFLite tensor names carry the Keras layer scope (``model_1/dense_1_1/MatMul``; Keras 3 adds ``_1`` to every scope
while tracing), so each op is matched to a layer through its output tensor names. Quantization results that give
errors per tensor name are used as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litetrain._io import atomic_write_text
from litetrain.errors import DataError

GRADIENT = [
    {"stop": 0, "bgColor": "#e6f4ea"},
    {"stop": 0.5, "bgColor": "#fdd663"},
    {"stop": 1, "bgColor": "#ea4335"},
]


def graph_tensors(tflite: bytes) -> dict[str, list[list[str]]]:
    """Output tensor names of every op, per subgraph (named as Model Explorer names graphs).

    Raises:
        DataError: ``tflite`` is not a TFLite flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema

    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise DataError("The model is not a .tflite flatbuffer (no TFL3 identifier).",
                        hint="Give the .tflite the result was measured on (litetrain build -o DIR writes one).")
    root = schema.Model.GetRootAs(tflite, 0)
    graphs: dict[str, list[list[str]]] = {}
    for s in range(root.SubgraphsLength()):
        sg = root.Subgraphs(s)
        raw = sg.Name()
        # Model Explorer's TFLite adapter names unnamed subgraphs "main" (the first) and "subgraph_<i>".
        name = raw.decode() if raw else ("main" if s == 0 else f"subgraph_{s}")
        ops = []
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            ops.append([sg.Tensors(op.Outputs(i)).Name().decode("utf-8", "replace")
                        for i in range(op.OutputsLength()) if op.Outputs(i) >= 0])
        graphs[name] = ops
    return graphs


def layer_of_tensor(tensor: str, layers: set[str], model_name: str | None = None) -> str | None:
    """The Keras layer a TFLite tensor name belongs to, or None.

    The component after the model's scope names the layer. When the scope was traced with a suffix
    (``model_1``), layer scopes carry one too (``dense_1_1`` is layer ``dense_1``).
    """
    for part in tensor.split(";"):
        comps = [c for c in part.split("/") if c]
        if model_name:
            for i, comp in enumerate(comps[:-1]):
                if comp == model_name or re.fullmatch(re.escape(model_name) + r"_\d+", comp):
                    cand = comps[i + 1]
                    if comp != model_name:
                        base = re.sub(r"_\d+$", "", cand)
                        if base in layers:
                            return base
                    if cand in layers:
                        return cand
        for comp in comps:
            if comp in layers:
                return comp
        for comp in comps:
            base = re.sub(r"_\d+$", "", comp)
            if base in layers:
                return base
    return None


def per_layer_errors(result: Mapping[str, Any], mode: str | None = None) -> tuple[str, dict[str, float]]:
    """(what the values are, {layer or tensor name: value}) from a result.

    Comparison: the forward pass's per-layer difference if the twins parted there, else the single-step update
    difference per variable where they parted, else each variable's relative weight difference after training
    (per layer, the largest of its variables). Quantization: the per-layer errors of ``mode`` (default: the
    recommended mode, else the mode with the largest error).
    """
    from litetrain.reporting.page import Source

    src = Source(result)
    kind = src.get("kind")
    if kind == "quantize":
        return _quantization_errors(src, mode)
    # Optimizer state (role "optimizer", e.g. sgd/iteration) belongs to no layer of the graph.
    layer_of = {v.get("name"): v.get("path", "").split("/")[-2] for v in src.sequence("model", "variables")
                if isinstance(v, Mapping) and "/" in v.get("path", "") and v.get("role", "weight") == "weight"}
    forward = src.get("location", "forward", "per_layer")
    if isinstance(forward, Mapping) and forward:
        return "forward pass: |TFLite - TensorFlow| of each layer's output", {
            str(k): _finite(v) for k, v in forward.items()}
    per_var = src.get("location", "per_variable")
    step = src.get("location", "step")
    if isinstance(per_var, Mapping) and per_var:
        return (f"step {step}: relative difference of the single-step update", _by_layer(per_var, layer_of))
    recorded = src.mapping("train", "weights")
    if recorded:
        last = max(recorded, key=int)
        return (f"step {last}: relative weight difference TFLite vs TensorFlow",
                _by_layer({k: v.get("max_rel") for k, v in recorded[last].items() if isinstance(v, Mapping)},
                          layer_of))
    return "no per-layer errors", {}


def _quantization_errors(src: Any, mode: str | None) -> tuple[str, dict[str, float]]:
    """Per-op errors of a quantize result: trainable modes first, then the inference-only (deploy) models.

    Trainable models are usually measured as a whole; the per-op errors come from their inference-only exports,
    whose ops carry the same tensor names.
    """
    from litetrain.reporting.quantize_page import per_layer, recommended_mode

    groups = [("", src.mapping("modes")), ("deploy ", src.mapping("deploy", "modes"))]
    names = {m for _, g in groups for m in g}
    if mode is not None and mode not in names:
        raise DataError(f"No quantization mode {mode!r} in the result; it has {sorted(names)}.",
                        hint="Choose one of them with --mode.")
    # (mode, look in the deploy models first): the recommendation, the deploy recommendation, then every mode,
    # worst output error first (the one with the most to show).
    wanted: list[tuple[str, bool]] = [(mode, False)] if mode else [
        (m, deploy_first) for m, deploy_first in ((recommended_mode(src)[0], False),
                                                  (src.get("deploy", "recommendation", "mode"), True))
        if isinstance(m, str)]
    wanted += [(m, False) for m in sorted(names - {m for m, _ in wanted}, key=lambda m: -max(
        (_finite(g[m].get("max_abs_error")) for _, g in groups if isinstance(g.get(m), Mapping)), default=0.0))]
    for m, deploy_first in wanted:
        for prefix, group in (groups[::-1] if deploy_first else groups):
            entry = group.get(m)
            if isinstance(entry, Mapping):
                key, values = per_layer(entry)
                if values:
                    return f"{prefix}{m}: error of each op output against float32", values
    return "no per-layer errors", {}


def _finite(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.inf if v == "Infinity" else math.nan
    return float(v)


def _by_layer(per_var: Mapping[str, Any], layer_of: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in per_var.items():
        layer = layer_of.get(name)
        v = _finite(value)
        if layer is None or v != v:
            continue  # optimizer state (no layer) is not a node of the graph
        out[layer] = max(out.get(layer, 0.0), v)
    return out


def node_data(result: Mapping[str, Any], tflite: bytes, *, mode: str | None = None) -> dict[str, Any]:
    """Model Explorer node data (``{graph: {results, gradient}}``) of ``result``'s per-layer errors on ``tflite``.

    Raises:
        DataError: the result has no per-layer errors, or none of them matches a tensor of the model.
    """
    _, values = per_layer_errors(result, mode)
    if not values:
        raise DataError("The result has no per-layer errors to overlay.",
                        hint="Per-layer errors come from check/demo/compare with weights, or quantize.")
    values = {k: (1e300 if v == math.inf else v) for k, v in values.items() if v == v}
    layers = set(values)
    paths = [v.get("path", "") for v in (result.get("model") or {}).get("variables") or [] if isinstance(v, Mapping)]
    model_name = paths[0].split("/")[0] if paths and "/" in paths[0] else None
    # Per-tensor errors (quantization) match by name; a fused op's name joins several with ';' and the two
    # models may fuse differently, so any shared part matches.
    by_part: dict[str, float] = {}
    for key, v in values.items():
        for part in key.split(";"):
            by_part[part] = max(by_part.get(part, v), v)
    out: dict[str, Any] = {}
    for graph, ops in graph_tensors(tflite).items():
        results: dict[str, dict[str, float]] = {}
        for outputs in ops:
            for tensor in outputs:
                shared = [by_part[p] for p in tensor.split(";") if p in by_part]
                if shared:
                    results[tensor] = {"value": max(shared)}
                    continue
                layer = layer_of_tensor(tensor, layers, model_name)
                if layer is not None:
                    results[tensor] = {"value": values[layer]}
        if results:
            out[graph] = {"results": results, "gradient": GRADIENT}
    if not out:
        raise DataError(
            f"None of the {len(values)} per-layer errors ({', '.join(sorted(values)[:5])}) matches a tensor of the "
            "model.", hint="Give the .tflite the result was measured on.")
    return out


def write_node_data(result: Mapping[str, Any], tflite: bytes, path: str | Path, *, mode: str | None = None
                    ) -> tuple[Path, dict[str, Any]]:
    """Writes :func:`node_data` to ``path`` atomically; returns the path and the data."""
    data = node_data(result, tflite, mode=mode)
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n"), data
