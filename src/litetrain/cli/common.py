"""Printing a comparison result and writing its JSON: shared by check, compare and demo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from litetrain.errors import ExitCode


def finish_comparison(result: Any, args: argparse.Namespace) -> int:
    """Writes JSON if asked, prints the table (or only the verdict with --quiet), returns the exit code."""
    if args.json_out:
        result.save(args.json_out)
    if args.quiet:
        print(f"verdict: {result.verdict.value}")
    else:
        print(result)
        if args.json_out:
            print(f"\nreport: {args.json_out}")
    sys.stdout.flush()
    return int(ExitCode.OK if result.passed else ExitCode.VERDICT_FAILED)
