"""Option groups shared by several subcommands, and turning parsed options into configs."""

from __future__ import annotations

import argparse
from pathlib import Path

from litetrain._io import check_output_dir, check_output_file
from litetrain.config import (
    DATA_FORMS,
    MAX_SEED,
    LossConfig,
    Optimizer,
    OptimizerConfig,
    Tolerances,
    TrainableSpec,
    check_seed,
)
from litetrain.errors import UsageError


def add_model_options(p: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    """MODEL, loss, optimizer, --trainable and --select-tf-ops; ``verbose`` adds ``--verbose`` (a command that has
    its own, such as federate's, passes False)."""
    g = p.add_argument_group("model, loss and optimizer")
    g.add_argument("model", metavar="MODEL",
                   help="a .keras file, a tf_keras .h5 or SavedModel folder, or a factory 'package.module:function'")
    g.add_argument("--loss", help="sparse_categorical_crossentropy | categorical_crossentropy | binary_crossentropy "
                   "| mse | mae (default: the compiled model's loss)")
    logits = g.add_mutually_exclusive_group()
    logits.add_argument("--from-logits", dest="from_logits", action="store_true", default=None,
                        help="the model outputs logits (default: inferred from the output activation)")
    logits.add_argument("--from-probabilities", dest="from_logits", action="store_false",
                        help="the model outputs probabilities (softmax/sigmoid)")
    g.add_argument("--optimizer", choices=[o.value for o in Optimizer],
                   help="default: the compiled model's optimizer, else sgd")
    g.add_argument("--lr", "--learning-rate", dest="lr", type=float,
                   help="learning rate (default: the compiled optimizer's, else the Keras default); without "
                   "--optimizer this and the options below override the compiled optimizer's hyperparameters")
    g.add_argument("--momentum", type=float, help="sgd, rmsprop")
    g.add_argument("--nesterov", action="store_true", default=None, help="sgd: Nesterov momentum")
    g.add_argument("--beta1", type=float, help="adam, adamw")
    g.add_argument("--beta2", type=float, help="adam, adamw")
    g.add_argument("--epsilon", type=float, help="adam, adamw, rmsprop")
    g.add_argument("--weight-decay", type=float, help="adamw")
    g.add_argument("--rho", type=float, help="rmsprop")
    g.add_argument("--trainable", default=None,
                   help="all (default), last:N (the last N layers that have weights) or layer names a,b; the rest "
                   "are frozen and folded into constants")
    g.add_argument("--select-tf-ops", action="store_true",
                   help="reproduce the 2021 recipe with select-TF (Flex) ops instead of builtin-only gradients; "
                   "current desktop interpreters cannot run such a model")
    if verbose:
        g.add_argument("--verbose", action="store_true",
                       help="on a failed conversion, also print the converter's full diagnostics")


def add_layers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", choices=["fit", "inference"], default=None,
                   help="fit (default): train runs the layers as model.fit does (BatchNormalization on batch "
                   "statistics, updating its moving ones; Dropout and noise layers active, with masks both twins "
                   "draw alike); inference: every layer as in infer (frozen statistics, no dropout)")


def add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=None, help="fixed batch size of the train signature (default 32)")


def add_training_options(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    g = p.add_argument_group("training")
    if data:
        g.add_argument("--data", default="digits", help=f"{DATA_FORMS} (default: digits)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="train steps (default 100)")
    length.add_argument("--epochs", type=int, help="full passes over the training data instead of --steps")
    g.add_argument("--seed", type=seed, default=None, help="seeds initialization and batch order (default 0)")
    add_repeats_option(g)


def add_repeats_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--repeats", type=int, default=None, metavar="K",
                   help="also train the twins over K more seeds (data order and, for check/demo, initialization) "
                   "and report the spread of the final accuracy and a 95%% interval of the difference")


def repeats(args: argparse.Namespace) -> int | None:
    """``--repeats`` as given (None: off); 0 or negative is a UsageError (exit code 2)."""
    from litetrain.comparison.repeats import repeats_count

    return repeats_count(getattr(args, "repeats", None))


def add_output_options(
    p: argparse.ArgumentParser, *, default_json: str | None = None, default_html: str | None = None
) -> None:
    g = p.add_argument_group("verdict and output")
    g.add_argument("--atol", type=float, help=f"absolute tolerance (default {Tolerances.DEFAULT_ATOL:g})")
    g.add_argument("--rtol", type=float, help=f"relative tolerance (default {Tolerances.DEFAULT_RTOL:g})")
    g.add_argument("--fail-on", default=None, metavar="VERDICTS",
                   help="comma-separated verdicts that exit with code 1: consistent-sensitive, drift, inconsistent, "
                   "unhealthy (default: inconsistent,unhealthy; 'none' never fails)")
    g.add_argument("--no-noise-floor", dest="noise_floor", action="store_false",
                   help="skip the noise-floor runs; the fixed tolerances --atol/--rtol decide instead")
    g.add_argument("--json", dest="json_out", default=default_json, metavar="OUT",
                   help="write the result as JSON" + (f" (default {default_json})" if default_json else ""))
    add_html_option(g, default=default_html)
    g.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")


def add_html_option(p: argparse.ArgumentParser | argparse._ArgumentGroup, *, default: str | None = None) -> None:
    """``--html OUT``: the result as one self-contained HTML report with plots (checked before any work)."""
    p.add_argument("--html", dest="html_out", default=default, metavar="OUT", type=output_file,
                   help="also write a self-contained HTML report with plots (no network needed to view it)"
                   + (f" (default {default})" if default else ""))


def output_file(path: str) -> str:
    """An argparse ``type``: the path must be writable as a file, so a bad path fails before the work starts."""
    try:
        check_output_file(Path(path))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return path


def loss_config(args: argparse.Namespace) -> LossConfig | None:
    if args.loss is None:
        if args.from_logits is not None:
            raise UsageError("--from-logits/--from-probabilities need --loss.")
        return None
    return LossConfig.parse(args.loss, args.from_logits)


def optimizer_config(args: argparse.Namespace) -> OptimizerConfig | None:
    extra = {
        "momentum": args.momentum, "nesterov": args.nesterov, "beta_1": args.beta1, "beta_2": args.beta2,
        "epsilon": args.epsilon, "weight_decay": args.weight_decay, "rho": args.rho,
    }
    name = None if args.optimizer is None else Optimizer(args.optimizer)
    if name is None and args.lr is None and all(v is None for v in extra.values()):
        return None
    # Without --optimizer the hyperparameters override the compiled optimizer's (resolved when the model is loaded).
    return OptimizerConfig(name, learning_rate=args.lr, **extra)


def trainable_spec(args: argparse.Namespace) -> TrainableSpec:
    return TrainableSpec.parse(args.trainable)


def verdict_options(args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments of check/compare/demo for the verdict (noise floor, float64, --fail-on)."""
    from litetrain.comparison.verdict import parse_fail_on

    out: dict[str, object] = {"noise_floor": args.noise_floor, "fail_on": parse_fail_on(args.fail_on)}
    if hasattr(args, "float64"):
        out["float64"] = args.float64
    return out


def add_float64_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-float64", dest="float64", action="store_false",
                   help="skip the float64 reference twin")


def tolerances(args: argparse.Namespace) -> Tolerances:
    return Tolerances(args.atol, args.rtol)


def check_output_path(path: str | None) -> None:
    """Fails before any work if an output file could not be written."""
    if path:
        check_output_file(Path(path))


def check_output_folder(path: str) -> None:
    """Fails before any work if an output folder could not be created or filled."""
    check_output_dir(Path(path))


def seed(text: str) -> int:
    """argparse type of --seed/--shuffle-seed: an integer numpy and TensorFlow accept (0 to 2**32 - 1)."""
    try:
        return check_seed(int(text))
    except (ValueError, UsageError) as exc:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}; received {text!r}") from exc


def add_runtimes_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--runtimes", default=None, metavar="NAMES",
                   help="LiteRT runtimes that train next to TensorFlow, comma-separated: interpreter (the Python "
                   "Interpreter, always), compiled (LiteRT 2.x CompiledModel API), worker (the interpreter in a child "
                   "process), arm64 (ARM64 kernels under qemu) and wasm (LiteRT.js in Node), both after 'litetrain "
                   "runtimes install', or all (every one that can run here); each extra one trains the same batches "
                   "from the same weights and gets its own row and verdict (default: interpreter)")
