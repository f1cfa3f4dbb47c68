"""Op census read straight from the .tflite flatbuffer (no interpreter, no TensorFlow needed)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from litetrain.errors import ConversionError


@dataclasses.dataclass(frozen=True)
class OpCensus:
    """Operator counts of a .tflite model by kind, overall and per signature.

    ``flex`` holds select-TF ops (custom code ``Flex<Op>``), which need the select-tf-ops library on a phone and
    cannot run in current desktop interpreters; ``custom`` holds other custom ops.
    """

    builtin: dict[str, int]
    flex: dict[str, int]
    custom: dict[str, int]
    by_signature: dict[str, dict[str, int]]

    @property
    def builtin_only(self) -> bool:
        return not self.flex and not self.custom

    def to_json(self) -> dict[str, Any]:
        return {
            "builtin": dict(sorted(self.builtin.items())),
            "flex": dict(sorted(self.flex.items())),
            "custom": dict(sorted(self.custom.items())),
            "total": {"builtin": sum(self.builtin.values()), "flex": sum(self.flex.values()),
                      "custom": sum(self.custom.values())},
            "builtin_only": self.builtin_only,
            "by_signature": {k: dict(sorted(v.items())) for k, v in sorted(self.by_signature.items())},
        }


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    ops = schema.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def op_census(model: bytes) -> OpCensus:
    """Counts the operators of every subgraph of ``model``.

    Raises:
        ConversionError: ``model`` is not a TFLite flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema

    try:
        if len(model) < 8 or model[4:8] != b"TFL3":
            raise ValueError("missing the TFL3 file identifier")
        root = schema.Model.GetRootAs(model, 0)
        names = _builtin_names()
        codes: list[tuple[str, str]] = []
        for i in range(root.OperatorCodesLength()):
            oc = root.OperatorCodes(i)
            # Builtin codes >= 127 live in BuiltinCode; older files only fill DeprecatedBuiltinCode.
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if code == schema.BuiltinOperator.CUSTOM:
                custom = (oc.CustomCode() or b"").decode("utf-8", "replace")
                codes.append(("flex", custom) if custom.startswith("Flex") else ("custom", custom))
            else:
                codes.append(("builtin", names.get(code, f"BUILTIN_{code}")))
        per_subgraph: list[collections.Counter[tuple[str, str]]] = []
        for s in range(root.SubgraphsLength()):
            sg = root.Subgraphs(s)
            per_subgraph.append(collections.Counter(codes[sg.Operators(o).OpcodeIndex()]
                                                    for o in range(sg.OperatorsLength())))
        sig_of = {}
        for i in range(root.SignatureDefsLength()):
            sd = root.SignatureDefs(i)
            sig_of[sd.SubgraphIndex()] = (sd.SignatureKey() or b"").decode()
    except Exception as exc:  # flatbuffers raises plain errors on garbage
        raise ConversionError(
            f"The data is not a valid TFLite model ({type(exc).__name__}: {exc}).",
            hint="Pass a .tflite file written by the TFLite converter.",
        ) from exc
    totals: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in ("builtin", "flex", "custom")}
    by_signature: dict[str, dict[str, int]] = {}
    for index, counts in enumerate(per_subgraph):
        for (kind, name), n in counts.items():
            totals[kind][name] += n
        if index in sig_of:
            by_signature[sig_of[index]] = {name: n for (_, name), n in counts.items()}
    return OpCensus(dict(totals["builtin"]), dict(totals["flex"]), dict(totals["custom"]), by_signature)
