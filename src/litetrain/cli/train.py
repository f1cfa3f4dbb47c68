"""``litetrain train MODEL.tflite``: train with the model's own signatures, checkpoint, resume, report the budget.

This command never imports TensorFlow: like a phone, it needs only numpy and the LiteRT interpreter.
"""

from __future__ import annotations

import argparse
import sys

from litetrain.cli import options
from litetrain.config import DATA_FORMS

HELP = "train a trainable .tflite with its own train signature, as a phone would: checkpoints, resume, budget"
EPILOG = """data (--data):
  digits, digits:HxW     scikit-learn's bundled digits (resized)
  FILE.npz               arrays x, y [, x_test, y_test]
  FILE.npy --labels Y    inputs and labels as two .npy files
  FILE.csv               one sample per row; label column 'label' (or y/class/target), else the last
  FOLDER/                images, one subfolder per class (FOLDER/train/ and FOLDER/test/ if split);
                         converted to the model's input size and channels, pixels scaled to [0, 1]

checkpoints: DIR/ckpt-<step>.npz (weights, optimizer state, data position; checksummed; see
docs/checkpoints.md). A killed session continues with --resume and ends bit-identical to an uninterrupted one."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.tflite", help="a trainable model, e.g. what 'litetrain build' writes")
    g = p.add_argument_group("data and training")
    g.add_argument("--data", required=True, help=f"the training data, detailed below: {DATA_FORMS}")
    g.add_argument("--labels", metavar="Y.npy", help="labels for a .npy of inputs")
    g.add_argument("--epochs", type=int, required=True, help="epochs to have completed (a resume continues to it)")
    g.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="the train signature's fixed batch (default: read from the model; another value is refused)")
    g.add_argument("--shuffle-seed", type=options.seed, default=None, metavar="S",
                   help="seed of the per-epoch data order (default 0)")
    g.add_argument("--lr-schedule", default=None, metavar="SPEC",
                   help="constant (default: the model's rate), cosine (to 0 over the session) or step:EVERY:FACTOR "
                   "(times FACTOR every EVERY epochs); needs a model that exchanges opt_learning_rate")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", required=True, metavar="DIR", help="folder of this session's checkpoints")
    c.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="also checkpoint every N steps (default: at the end of each epoch)")
    c.add_argument("--keep", type=int, default=None, metavar="K", help="keep the last K checkpoints (default 3)")
    c.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in DIR (from the start if there is none)")
    r = p.add_argument_group("runtime")
    r.add_argument("--isolated", action="store_true",
                   help="run the interpreter in a separate worker process and measure its memory and time")
    r.add_argument("--runtime-python", metavar="PATH", help="Python interpreter of the worker (implies --isolated)")
    r.add_argument("--threads", type=int, default=None, metavar="N", help="interpreter threads (default: its own)")
    r.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                   help="always run train(x, y); by default a model with a frozen base (bottleneck/train_head "
                   "signatures) computes each sample's bottleneck once and trains the head on the cached ones")
    r.add_argument("--runtimes", default=None, metavar="NAMES",
                   help="the LiteRT runtime(s) to train on, comma-separated: interpreter, compiled, worker, arm64 "
                   "(ARM64 kernels under qemu, emulated: slow), wasm (LiteRT.js in Node), or all; the first trains "
                   "the session (checkpoints, evaluation, budget), every other one trains the same batches from the "
                   "same weights in lockstep, and the result gets a row per runtime (runtimes.<name> in the JSON: "
                   "differences to the first, steps/s). arm64 and wasm need 'litetrain runtimes install' "
                   "(default: the interpreter alone)")
    o = p.add_argument_group("output")
    o.add_argument("--project-samples", type=int, default=None, metavar="N",
                   help="project the time and memory of a session over N training samples")
    o.add_argument("--json", dest="json_out", metavar="OUT", type=options.output_file,
                   help="write the result as JSON")
    options.add_html_option(o)
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no per-epoch lines, one summary line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from litetrain.training.progress import Progress
    from litetrain.training.session import train

    def log(line: str) -> None:
        progress.write(line)

    progress = Progress(enabled=False if args.quiet else None)
    result = train(
        args.model, args.data, labels=args.labels, epochs=args.epochs, checkpoint_dir=args.checkpoint_dir,
        batch_size=args.batch_size, shuffle_seed=args.shuffle_seed, checkpoint_every=args.checkpoint_every,
        keep=args.keep, resume=args.resume, lr_schedule=args.lr_schedule, isolated=args.isolated,
        runtime_python=args.runtime_python, num_threads=args.threads, runtimes=args.runtimes,
        project_samples=args.project_samples, feature_cache=args.feature_cache,
        progress=progress, log=None if args.quiet else log,
    )
    if args.json_out:
        result.save(args.json_out)
    if args.html_out:
        from litetrain.reporting.html import write_html

        write_html(result.to_json(), args.html_out)
    if args.quiet:
        acc = result.final_accuracy
        print(f"trained {result.steps} steps, loss {result.final_loss:.6g}"
              + (f", test accuracy {acc:.1%}" if acc is not None else "") + f"; checkpoint {result.final_checkpoint}")
    else:
        print(result)
        for label, path in (("report", args.json_out), ("html", args.html_out)):
            if path:
                print(f"{label}: {path}")
    sys.stdout.flush()
    return 0
