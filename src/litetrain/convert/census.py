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
    uninitialized_variables: tuple[str, ...] = ()
    """Resource variables read by a signature but assigned by no initializer (``CALL_ONCE``) subgraph."""

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
            "uninitialized_variables": list(self.uninitialized_variables),
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
        variables: list[set[str]] = []  # shared names of the VAR_HANDLEs of each subgraph
        init_subgraphs: set[int] = set()
        for s in range(root.SubgraphsLength()):
            sg = root.Subgraphs(s)
            ops = [sg.Operators(o) for o in range(sg.OperatorsLength())]
            per_subgraph.append(collections.Counter(codes[op.OpcodeIndex()] for op in ops))
            variables.append(set())
            for op in ops:
                kind = codes[op.OpcodeIndex()][1]
                if kind == "VAR_HANDLE":
                    variables[-1].add(_options(op, schema.VarHandleOptions).SharedName().decode())
                elif kind == "CALL_ONCE":
                    init_subgraphs.add(_options(op, schema.CallOnceOptions).InitSubgraphIndex())
        sig_of = {}
        for i in range(root.SignatureDefsLength()):
            sd = root.SignatureDefs(i)
            sig_of[sd.SubgraphIndex()] = (sd.SignatureKey() or b"").decode()
    except Exception as exc:  # flatbuffers raises plain errors on garbage
        raise ConversionError(
            f"The data is not a valid TFLite model ({type(exc).__name__}: {exc}).",
            hint="Pass a .tflite file written by the TFLite converter.",
        ) from exc
    initialized = set().union(*(variables[i] for i in init_subgraphs if i < len(variables)))
    used = set().union(*(v for i, v in enumerate(variables) if i not in init_subgraphs))
    totals: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in ("builtin", "flex", "custom")}
    by_signature: dict[str, dict[str, int]] = {}
    for index, counts in enumerate(per_subgraph):
        for (kind, name), n in counts.items():
            totals[kind][name] += n
        if index in sig_of:
            by_signature[sig_of[index]] = {name: n for (_, name), n in counts.items()}
    return OpCensus(dict(totals["builtin"]), dict(totals["flex"]), dict(totals["custom"]), by_signature,
                    tuple(sorted(used - initialized)))


def _options(op: Any, cls: Any) -> Any:
    table = op.BuiltinOptions()
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


def check_variables_initialized(census: OpCensus) -> None:
    """Raises ConversionError for variables that no initializer assigns (the Keras 3 weight-loss trap).

    LiteRT does not fail on reading such a variable: it returns whatever memory holds, so without this check
    a model would train from garbage.
    """
    if census.uninitialized_variables:
        names = list(census.uninitialized_variables)
        raise ConversionError(
            f"{len(names)} variable(s) of the TFLite model are not initialized: the weights were lost in conversion "
            f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}).",
            hint="With Keras 3, every tf.Variable inside the Keras variables (variable.value) and the optimizer's "
            "must be tracked by the exported tf.Module (FACTS: Keras 3 silently loses the weights); "
            "'litetrain build' does this. Rebuild the model with litetrain or track them.",
        )
