"""``litetrain quantize MODEL``: every quantization mode measured for size, error, latency and trainability."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from litetrain.cli import options
from litetrain.config import DATA_FORMS
from litetrain.errors import ExitCode

HELP = ("quantize a model in every mode (none, dynamic, float16, int8, int16x8) and measure size, error against "
        "float32, accuracy, latency and whether the quantized model still trains")
EPILOG = """what each mode does to a trainable model (train/infer/save/restore):
  none      float32, the reference
  dynamic   quantizes constant weights only: a no-op when every layer trains (reported as such); with a frozen
            base (--trainable last:N) the frozen weights become int8 and training still works
  float16   stores the initial values of the variables as float16: training works from rounded weights (drift)
  int8      turns the whole train step into int8: the model stops learning like float32. Refused unless
  int16x8   --allow-untrainable is given (then built and measured)
The deploy section quantizes an inference-only model (infer alone) exported from the weights after on-device
training: the usual path to a small int8 model that was trained on the phone.

a mode that fails (the converter cannot build it, the interpreter cannot run it, or it cannot train) is a row
with status 'failed' naming the model (trainable, inference or deploy) and the reason; the other modes still run,
and the JSON and HTML are written. Each failure is also printed on stderr.

exit codes of quantize:
  0  at least one requested mode was measured (in the trainable, inference or deploy model), even if others
     failed or were refused ('none', the float32 reference, counts only when it is the only mode asked for)
  4  no requested mode could be measured: each failed or was refused (e.g. a single --mode that fails); the
     reasons are printed, the JSON and HTML are still written
  2  bad arguments, model or data (nothing measured, no JSON); 3 and 70 as for every command"""

EVERY_MODE_FAILED = int(ExitCode.EVERY_MODE_FAILED)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_model_options(p)
    options.add_batch_size(p)
    g = p.add_argument_group("quantization")
    modes = g.add_mutually_exclusive_group()
    modes.add_argument("--mode", metavar="MODE",
                       help="one mode: none | dynamic | float16 | int8 | int16x8 (measured next to float32)")
    modes.add_argument("--modes", metavar="MODES", default=None,
                       help="all (default) or a comma-separated list of modes")
    kind = g.add_mutually_exclusive_group()
    kind.add_argument("--inference-only", dest="inference_only", action="store_true", default=None,
                      help="quantize the inference model (infer only, weights as given)")
    kind.add_argument("--trainable-model", dest="inference_only", action="store_false",
                      help="quantize the whole trainable model, then the deploy path (default when the model has a "
                      "loss: --loss or compiled)")
    g.add_argument("--representative-data", metavar="DATA", default=None,
                   help="calibration inputs for int8/int16x8: an .npz with x, or digits[:HxW] (default: the "
                   "training split of --data)")
    g.add_argument("--samples", type=int, default=None, metavar="N", help="calibration samples (default 100)")
    g.add_argument("--max-accuracy-drop", type=float, default=None, metavar="PP",
                   help="accuracy budget in percentage points for the recommendation and selective int8 "
                   "(default 1)")
    g.add_argument("--no-per-layer", dest="per_layer", action="store_false",
                   help="skip the per-layer error table and selective quantization")
    g.add_argument("--allow-untrainable", action="store_true",
                   help="build int8/int16x8 trainable models instead of refusing them, to measure that they do "
                   "not train")
    t = p.add_argument_group("training and output")
    t.add_argument("--data", default="digits",
                   help=f"held-out data and training data: {DATA_FORMS} (default: digits)")
    t.add_argument("--steps", type=int, default=None,
                   help="twin training steps per mode of a trainable model (default 100, at least 20)")
    t.add_argument("--seed", type=options.seed, default=None, help="seeds initialization, batch order, calibration samples")
    t.add_argument("--no-noise-floor", dest="noise_floor", action="store_false",
                   help="judge the twins with fixed tolerances instead of the float32 noise floor (faster)")
    t.add_argument("-o", "--output", metavar="DIR", default=None, help="also write every quantized .tflite to DIR")
    t.add_argument("--json", dest="json_out", metavar="OUT", default=None, help="write the result as JSON")
    t.add_argument("--html", dest="html_out", metavar="OUT", default=None, help="write the result as HTML")
    t.add_argument("-q", "--quiet", action="store_true", help="print only the recommendation")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.select_tf_ops:
        from litetrain.errors import UsageError

        raise UsageError("quantize builds builtin-only models; --select-tf-ops does not apply.",
                         hint="Drop --select-tf-ops.")
    options.check_output_path(args.json_out)
    options.check_output_path(args.html_out)
    if args.output:
        options.check_output_folder(args.output)
    from litetrain.quantization.api import quantize
    from litetrain.quantization.modes import parse_mode

    modes = args.modes if args.mode is None else parse_mode(args.mode).value
    result = quantize(
        args.model,
        args.data,
        modes=modes,
        inference_only=args.inference_only,
        representative=args.representative_data,
        samples=args.samples,
        loss=options.loss_config(args),
        optimizer=options.optimizer_config(args),
        batch_size=args.batch_size,
        trainable=options.trainable_spec(args),
        steps=args.steps,
        seed=args.seed,
        max_accuracy_drop=args.max_accuracy_drop,
        per_layer=args.per_layer,
        allow_untrainable=args.allow_untrainable,
        noise_floor=args.noise_floor,
        output_dir=args.output,
    )
    if args.json_out:
        result.save(args.json_out)
    if args.html_out:
        from litetrain.reporting.html import write_html

        write_html(result.to_json(), args.html_out)
    if args.quiet:
        rec = result.recommendation
        print(f"recommendation: {rec['label'] if rec else 'none'}")
        for warning in (rec or {}).get("warnings") or ():
            print(f"warning: {warning}")
    else:
        print(result)
        for label, path in (("report", args.json_out), ("html", args.html_out), ("models", args.output)):
            if path:
                print(f"{label}: {path}")
    sys.stdout.flush()
    return exit_code(result)


def exit_code(result: Any) -> int:
    """0 when a requested mode was measured, else ``EVERY_MODE_FAILED``; every failure is one line on stderr."""
    measured = result.requested_measured()
    level = "warning" if measured else "error"
    for line in result.failures():
        print(f"litetrain: {level}: {line}", file=sys.stderr)
    if measured:
        return 0
    asked = ", ".join(result.requested_modes())
    refused = [f"{r.mode.value} ({model} model)" for model, r in result.rows() if r.status == "refused"]
    print(f"litetrain: error: no requested mode could be measured ({asked})"
          + (f"; refused: {', '.join(refused)} (--allow-untrainable builds them)" if refused else "") + ".",
          file=sys.stderr)
    print("  what to do: read the reasons above (each failed mode's failure.detail in the JSON has the full error); "
          "try another mode, or --inference-only / the deploy section for int8 and int16x8.", file=sys.stderr)
    return EVERY_MODE_FAILED
