"""``litetrain compare``: verify an existing SavedModel / .tflite pair built by any means."""

from __future__ import annotations

import argparse

from litetrain.cli import options
from litetrain.cli.common import finish_comparison

HELP = "compare an existing pair: a reference SavedModel and a candidate .tflite following the signature convention"
CONVENTION = """signature convention (both models):
  train(x, y) -> {loss}            one optimizer step on a batch
  infer(x) -> {output | logits}    outputs, compared and used for accuracy
  save() -> {name: tensor}         every trainable weight and optimizer state variable (optional)
  restore(name=tensor, ...)        assigns them; matched by name with save (optional)
The candidate's weights as converted are first compared with the reference's; then both are set to the
reference's weights and trained on identical batches."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=HELP, epilog=CONVENTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, metavar="SAVED_MODEL_DIR", help="the TensorFlow SavedModel")
    p.add_argument("--candidate", required=True, metavar="MODEL.tflite", help="the converted TFLite model")
    options.add_batch_size(p)
    options.add_training_options(p)
    options.add_output_options(p)
    options.add_runtimes_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options.check_output_path(args.json_out)
    from litetrain.api import compare

    result = compare(
        args.reference, args.candidate, args.data, batch_size=args.batch_size, steps=args.steps,
        epochs=args.epochs, seed=args.seed, tolerances=options.tolerances(args), repeats=options.repeats(args),
        runtimes=args.runtimes, **options.verdict_options(args),
    )
    return finish_comparison(result, args)
