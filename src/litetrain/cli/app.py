"""Entry point: ``parse_args -> run -> exit code``; user errors print a message, bugs a traceback."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from litetrain import __version__
from litetrain.cli import build, check, compare, demo, export, federate, quantize, report, runtimes, train
from litetrain.errors import ExitCode, LitetrainError

EXIT_CODES = """exit codes:
  0  success; for check/compare/demo the verdict passed
  1  the verdict failed (the twins are inconsistent)
  2  usage or input error (bad option, missing/corrupt file, data that does not fit the model)
  3  the model is valid but cannot run here (e.g. select-TF ops) or a package is missing
  4  quantize: no requested mode could be measured (each failed or was refused; the JSON says why)
  70 a bug in litetrain (a traceback is printed; please report it)"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litetrain",
        description="Build on-device-trainable TFLite models from Keras and verify they train like TensorFlow.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"litetrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (demo, build, check, compare, quantize, train, export, federate, report, runtimes):
        module.add_parser(sub)
    return parser


def _quiet_logs() -> None:
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    _quiet_logs()
    try:
        return int(args.run(args))
    except LitetrainError as exc:
        print(f"litetrain: error: {exc.message}", file=sys.stderr)
        verbose = bool(exc.detail) and getattr(args, "verbose", False)
        hint = exc.hint
        if exc.detail and not verbose:
            hint = f"{hint.rstrip('.')}; " if hint else ""
            hint += "run again with --verbose for the converter's full output."
        if hint:
            print(f"  what to do: {hint}", file=sys.stderr)
        if verbose:
            print(exc.detail, file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("litetrain: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("litetrain: internal error: this is a bug in litetrain; please report it with the traceback above.",
              file=sys.stderr)
        return int(ExitCode.INTERNAL_ERROR)


if __name__ == "__main__":
    sys.exit(main())
