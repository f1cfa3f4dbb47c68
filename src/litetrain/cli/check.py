"""``litetrain check MODEL``: build + convert + twin training + comparison + verdict."""

from __future__ import annotations

import argparse

from litetrain.cli import options
from litetrain.cli.common import finish_comparison

HELP = "build, convert, train TensorFlow and TFLite twins on identical batches, and compare them"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help=HELP, description=HELP)
    options.add_model_options(p)
    options.add_batch_size(p)
    options.add_layers_option(p)
    options.add_training_options(p)
    options.add_output_options(p)
    options.add_float64_option(p)
    options.add_runtimes_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options.check_output_path(args.json_out)
    from litetrain.api import check

    result = check(
        args.model,
        args.data,
        loss=options.loss_config(args),
        optimizer=options.optimizer_config(args),
        batch_size=args.batch_size,
        steps=args.steps,
        epochs=args.epochs,
        seed=args.seed,
        trainable=options.trainable_spec(args),
        tolerances=options.tolerances(args),
        select_tf_ops=args.select_tf_ops,
        layers=args.layers,
        repeats=options.repeats(args),
        runtimes=args.runtimes,
        **options.verdict_options(args),
    )
    return finish_comparison(result, args)
