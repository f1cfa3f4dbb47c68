"""``litetrain build MODEL -o DIR``: DIR/model.tflite, DIR/saved_model/, DIR/build.json."""

from __future__ import annotations

import argparse

from litetrain.cli import options
from litetrain.config import DATA_FORMS

HELP = "build a trainable TFLite model (train/infer/save/restore signatures) from a Keras model"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help=HELP, description=HELP)
    options.add_model_options(p)
    options.add_batch_size(p)
    options.add_layers_option(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--seed", type=options.seed, default=None, help="seeds the weight initialization of factories (default 0)")
    p.add_argument("--data", default=None, help=f"data whose first samples the post-conversion check compares "
                   f"TensorFlow and TFLite on (default: seeded synthetic inputs): {DATA_FORMS}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options.check_output_folder(args.output)
    from litetrain.api import build, seed_everything

    seed_everything(0 if args.seed is None else args.seed)
    result = build(
        args.model,
        loss=options.loss_config(args),
        optimizer=options.optimizer_config(args),
        batch_size=args.batch_size,
        trainable=options.trainable_spec(args),
        select_tf_ops=args.select_tf_ops,
        layers=args.layers,
        output_dir=args.output,
        data=args.data,
    )
    census = result.census
    print(f"wrote {args.output}/model.tflite ({len(result.tflite) / 1024:.1f} KiB), saved_model/, build.json")
    print(f"ops: {sum(census.builtin.values())} builtin, {sum(census.flex.values())} flex "
          f"{sorted(census.flex) if census.flex else ''}, {sum(census.custom.values())} custom")
    print(f"variables: {len(result.variables)} exchanged by save/restore "
          f"({sum(v.size_bytes for v in result.variables) / 1024:.1f} KiB)")
    if result.rewritten_gradients:
        print(f"builtin-only gradients for: {', '.join(result.rewritten_gradients)}")
    for adaptation in result.adaptations:
        print(f"adapted: {adaptation}")
    if census.flex:
        print("note: this model needs the select-TF-ops library on the phone, and current desktop interpreters "
              "(ai-edge-litert, tf.lite) cannot run it.")
    return 0
