"""Per-op profile of a trainable model's ``train`` signature: op kinds by time, and which ops XNNPACK takes.

The LiteRT Python API (ai-edge-litert 2.3.0) has no op profiler: the Interpreter's
``experimental_force_delegate_node_profiling`` only matters to a profiler installed from C++, the wheel ships no
``benchmark_model`` binary, and CompiledModel's profiler is not exposed to Python. So ops are timed one at a time:

1. step: ``--steps`` train steps of the whole model on the default Interpreter (XNNPACK), best of 3 blocks;
2. capture: one train step on an Interpreter with ``experimental_preserve_all_tensors`` and the builtin kernels
   (no delegate) keeps every intermediate tensor of the train subgraph;
3. one-op models: each op of the train subgraph is copied into a model of its own (constant inputs kept, every
   other input fed its captured value, every shape static), which runs on the default Interpreter. A DELEGATE node
   in that interpreter says XNNPACK took the op; otherwise TFLite's builtin kernel (optimized or reference) runs it.
   Its time is the best of several rounds of repeated invokes, minus the invoke overhead of a trivial one-op
   model. Ops with the same kind, options, shapes and small constants are timed once and counted as often as
   they occur.

Variable ops (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE) and CALL_ONCE hold state and are not timed alone; the
step time minus the sum of the timed ops ("not attributed") is their cost plus the interpreter's work between
ops. An op alone can be faster than inside the step (its inputs stay in cache), so the table is a ranking, and
the coverage line says how much of the step it explains. Confirm a rewrite by timing whole steps of the model
before and after, interleaved: on resnet_small an im2col input gradient (one BATCH_MATMUL on XNNPACK) timed at
half a TRANSPOSE_CONV op for op, yet made the whole step ~5% slower.
"""

from __future__ import annotations

import argparse
import collections
import copy
import os
import sys
import time
from typing import Any

import numpy as np

STATEFUL = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL"}
MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL"}


def schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def op_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_")}


class TrainGraph:
    """The train subgraph of a .tflite model with every tensor's value from one captured train step."""

    def __init__(self, tflite: bytes, feed: dict[str, np.ndarray]) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.model = schema().ModelT.InitFromPackedBuf(tflite, 0)
        self.capture = Interpreter(
            model_content=tflite, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.capture.get_signature_runner("train")(**feed)
        self.index = self.capture._interpreter.GetSubgraphIndexFromSignature("train")
        self.graph = self.model.subgraphs[self.index]
        names = op_names()
        self.kinds = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
                      for c in self.model.operatorCodes]

    def kind(self, op: Any) -> str:
        return self.kinds[op.opcodeIndex]

    def value(self, tensor: int) -> np.ndarray | None:
        try:
            return self.capture.get_tensor(tensor, self.index)
        except (ValueError, RuntimeError):
            return None

    def constant(self, tensor: int) -> bytes | None:
        data = self.model.buffers[self.graph.tensors[tensor].buffer].data
        return None if data is None or len(data) == 0 else bytes(np.asarray(data, np.uint8))

    def shape(self, tensor: int) -> tuple[int, ...]:
        value = self.value(tensor)
        return tuple(value.shape) if value is not None else tuple(self.graph.tensors[tensor].shape or ())

    def key(self, op: Any) -> tuple:
        """What an op's time depends on: kind, options, shapes, dtypes and its small constants."""
        parts: list[Any] = [self.kind(op), op.builtinOptionsType, repr(vars(op.builtinOptions)) if op.builtinOptions is not None else None]
        for t in [*op.inputs, *op.outputs]:
            if t < 0:
                parts.append(None)
                continue
            const = self.constant(t)
            parts.append((self.shape(t), self.graph.tensors[t].type,
                          None if const is None else (const if len(const) <= 256 else len(const))))
        return tuple(parts)

    def macs(self, op: Any) -> int:
        """Multiply-accumulates of a convolution or matrix product (0 for other ops)."""
        kind = self.kind(op)
        if kind not in MAC_OPS:
            return 0
        out = int(np.prod(self.shape(op.outputs[0])))
        if kind == "CONV_2D":
            kh, kw, cin = self.shape(op.inputs[1])[1:]
            return out * kh * kw * cin
        if kind == "DEPTHWISE_CONV_2D":
            return out * int(np.prod(self.shape(op.inputs[1])[1:3]))
        if kind == "TRANSPOSE_CONV":  # inputs: output_shape, filter [O, kh, kw, I], input
            return int(np.prod(self.shape(op.inputs[2]))) * int(np.prod(self.shape(op.inputs[1])[:3]))
        if kind == "FULLY_CONNECTED":
            return out * self.shape(op.inputs[1])[-1]
        a = self.shape(op.inputs[0])
        return out * a[-2 if getattr(op.builtinOptions, "adjX", False) else -1]

    def step_flops(self) -> int:
        """FLOPs of one train step in its convolutions and matrix products (2 per multiply-accumulate)."""
        return 2 * sum(self.macs(op) for op in self.graph.operators)


def one_op_model(g: TrainGraph, op: Any) -> tuple[bytes, list[np.ndarray]] | None:
    """A model that runs ``op`` alone, and the values of its non-constant inputs (None if it cannot be cut out)."""
    s = schema()
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [g.model.operatorCodes[op.opcodeIndex]]
    model.buffers = [s.BufferT()]
    sub = s.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs = [], [], []
    feeds, remap = [], {}

    def add(t: int) -> int | None:
        if t in remap:
            return remap[t]
        src = g.graph.tensors[t]
        if src.type in (s.TensorType.RESOURCE, s.TensorType.VARIANT):
            return None
        new = copy.copy(src)
        new.shapeSignature = None
        const = g.constant(t)
        if const is not None:
            buf = s.BufferT()
            buf.data = np.frombuffer(const, np.uint8)
            model.buffers.append(buf)
            new.buffer = len(model.buffers) - 1
        else:
            value = g.value(t)
            if value is None:
                return None
            new.shape, new.buffer = list(value.shape), 0
            if t in op.inputs:
                sub.inputs.append(len(sub.tensors))
                feeds.append(value)
        sub.tensors.append(new)
        remap[t] = len(sub.tensors) - 1
        return remap[t]

    new_op = copy.copy(op)
    new_op.opcodeIndex = 0
    new_op.inputs = [-1 if t < 0 else add(t) for t in op.inputs]
    new_op.outputs = [add(t) for t in op.outputs]
    if None in new_op.inputs or None in new_op.outputs:
        return None
    sub.outputs = list(new_op.outputs)
    sub.operators = [new_op]
    model.subgraphs = [sub]
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), feeds


def time_model(content: bytes, feeds: list[np.ndarray], threads: int, budget_s: float) -> tuple[float, bool]:
    """Seconds per invoke (best of 3 rounds) of a one-op model, and whether XNNPACK delegated it."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content, num_threads=threads)
    interp.allocate_tensors()
    wrapper = interp._interpreter
    delegated = any(wrapper.NodeName(i) == "DELEGATE" for i in range(wrapper.NumNodes()))
    for detail, value in zip(interp.get_input_details(), feeds, strict=True):
        interp.set_tensor(detail["index"], value)
    invoke = wrapper.Invoke
    start = time.perf_counter()
    invoke()
    once = time.perf_counter() - start
    reps = max(1, min(200, int(budget_s / 3 / max(once, 1e-6))))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            invoke()
        best = min(best, (time.perf_counter() - start) / reps)
    return best, delegated


def invoke_overhead(threads: int) -> float:
    """Seconds per invoke of a one-op model that adds two one-element tensors (the floor of every timing)."""
    import flatbuffers

    s = schema()
    model = s.ModelT()
    model.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    model.operatorCodes, model.buffers = [code], [s.BufferT()]
    sub = s.SubGraphT()
    sub.tensors = []
    for name in ("a", "b", "c"):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), [1], s.TensorType.FLOAT32, 0
        sub.tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    sub.inputs, sub.outputs, sub.operators = [0, 1], [2], [op]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    one = np.ones([1], np.float32)
    return min(time_model(bytes(builder.Output()), [one, one], threads, 0.05)[0] for _ in range(3))


def step_seconds(tflite: bytes, feed: dict[str, np.ndarray], steps: int, threads: int) -> float:
    """Seconds per train step of the whole model (default Interpreter), best of 3 blocks of ``steps``."""
    from ai_edge_litert.interpreter import Interpreter

    train = Interpreter(model_content=tflite, num_threads=threads).get_signature_runner("train")
    train(**feed)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            train(**feed)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


class Profile:
    """Per-kind totals of the timed ops."""

    def __init__(self) -> None:
        self.time: dict[str, float] = collections.defaultdict(float)
        self.count: collections.Counter[str] = collections.Counter()
        self.xnnpack: collections.Counter[str] = collections.Counter()
        self.instances: list[tuple[float, int, str, bool, str]] = []  # total s, count, kind, delegated, shapes
        self.untimed: collections.Counter[str] = collections.Counter()


def profile_ops(g: TrainGraph, threads: int, budget_s: float) -> Profile:
    overhead = invoke_overhead(threads)
    groups: dict[tuple, list[Any]] = collections.defaultdict(list)
    prof = Profile()
    for op in g.graph.operators:
        if g.kind(op) in STATEFUL:
            prof.untimed[g.kind(op)] += 1
        else:
            groups[g.key(op)].append(op)
    for ops in groups.values():
        op, kind = ops[0], g.kind(ops[0])
        cut = one_op_model(g, op)
        if cut is None:
            prof.untimed[kind] += len(ops)
            continue
        seconds, delegated = time_model(*cut, threads, budget_s)
        seconds = max(seconds - overhead, 0.0)
        prof.time[kind] += seconds * len(ops)
        prof.count[kind] += len(ops)
        prof.xnnpack[kind] += len(ops) if delegated else 0
        shapes = " ".join("x".join(map(str, g.shape(t))) for t in op.inputs if t >= 0 and g.constant(t) is None)
        prof.instances.append((seconds * len(ops), len(ops), kind, delegated, shapes))
    return prof


def print_profile(prof: Profile, step_s: float, flops: int, top: int) -> None:
    total = sum(prof.time.values())
    print(f"\n{'op kind':<22}{'count':>7}{'XNNPACK':>9}{'builtin':>9}{'total ms':>10}{'share':>8}{'us/op':>9}")
    print("-" * 74)
    for kind, seconds in sorted(prof.time.items(), key=lambda kv: -kv[1]):
        n, x = prof.count[kind], prof.xnnpack[kind]
        print(f"{kind:<22}{n:>7}{x:>9}{n - x:>9}{seconds * 1e3:>10.2f}{seconds / total:>8.1%}{seconds / n * 1e6:>9.1f}")
    print("-" * 74)
    n, x = sum(prof.count.values()), sum(prof.xnnpack.values())
    print(f"{'timed ops':<22}{n:>7}{x:>9}{n - x:>9}{total * 1e3:>10.2f}")
    if prof.untimed:
        print("not timed alone: " + ", ".join(f"{k} {v}" for k, v in sorted(prof.untimed.items())))
    print(f"\nwhole train step: {step_s * 1e3:.2f} ms; timed ops add up to {total * 1e3:.2f} ms "
          f"({total / step_s:.0%} of the step); not attributed {max(step_s - total, 0) * 1e3:.2f} ms")
    print(f"convolutions and matrix products: {flops / 1e9:.3f} GFLOP per step -> {flops / step_s / 1e9:.1f} GFLOP/s")
    not_delegated = {k: t for k, t in prof.time.items() if prof.count[k] > prof.xnnpack[k]}
    share = sum(t for t, _, _, delegated, _ in prof.instances if not delegated)
    print(f"ops XNNPACK did not take: {', '.join(sorted(not_delegated))}; {share / total:.0%} of the timed time")
    print(f"\nslowest op configurations (top {top}; total = time x count):")
    print(f"{'total ms':>9}{'count':>6}  {'kind':<20}{'kernel':<9}non-constant input shapes")
    for seconds, count, kind, delegated, shapes in sorted(prof.instances, key=lambda r: -r[0])[:top]:
        print(f"{seconds * 1e3:>9.2f}{count:>6}  {kind:<20}{'XNNPACK' if delegated else 'builtin':<9}{shapes}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/op_profile.py", description=__doc__.splitlines()[0],
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a zoo entry (tests/zoo.py), e.g. mobilenet_v2-finetune, or a .keras path")
    src.add_argument("--tflite", help="an existing trainable .tflite (with --inputs)")
    p.add_argument("--inputs", help="with --tflite: an .npz of the train signature's inputs by name")
    p.add_argument("--image-size", type=int, help="image size of the Keras application entries (zoo: 32)")
    p.add_argument("--batch", type=int, help="train batch size (default: the zoo entry's)")
    p.add_argument("--trainable", help="--trainable spec (default: the zoo entry's)")
    p.add_argument("--steps", type=int, default=10, help="train steps per timed block of the whole step (10)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1, LiteRT's default)")
    p.add_argument("--op-budget", type=float, default=0.03, help="seconds of repeated invokes per op (0.03)")
    p.add_argument("--top", type=int, default=15, help="slowest op configurations to list (15)")
    p.add_argument("--save", help="also write the built .tflite and an .npz of its train inputs (PREFIX.*)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.tflite:
        if not args.inputs:
            print("op_profile: --tflite needs --inputs FILE.npz (the train signature's inputs by name)",
                  file=sys.stderr)
            return 2
        with open(args.tflite, "rb") as f:
            tflite = f.read()
        feed = dict(np.load(args.inputs))
        print(f"op_profile: {args.tflite}")
    else:
        from _models import build_model

        built = build_model(args.model, image_size=args.image_size, batch=args.batch, trainable=args.trainable)
        tflite = built.result.tflite
        feed = built.feed(built.runners()[1])
        print(f"op_profile: {args.model} batch {built.batch}, built in {built.build_s:.1f} s; "
              f"{sum(built.result.census.by_signature.get('train', {}).values())} ops in train")
        if args.save:
            with open(args.save + ".tflite", "wb") as f:
                f.write(tflite)
            np.savez(args.save + ".npz", **feed)
    start = time.perf_counter()
    step_s = step_seconds(tflite, feed, args.steps, args.threads)
    graph = TrainGraph(tflite, feed)
    prof = profile_ops(graph, args.threads, args.op_budget)
    print_profile(prof, step_s, graph.step_flops(), args.top)
    print(f"\n{args.threads} thread(s); profiling took {time.perf_counter() - start:.1f} s; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
