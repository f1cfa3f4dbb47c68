"""``litetrain demo``: the main job on the bundled digits, writing report.json and report.html."""

from __future__ import annotations

import argparse

from litetrain.cli import options
from litetrain.cli.common import finish_comparison

HELP = ("the 2021 on-device training post's model (Flatten 28x28 -> Dense 128 ReLU -> Dense 10, SGD) on the "
        "bundled digits: build, convert, twin-train, verdict, report.json and report.html")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--steps", type=int, default=None, help="train steps (default 300)")
    p.add_argument("--seed", type=options.seed, default=None, help="seeds initialization and batch order (default 0)")
    options.add_repeats_option(p)
    options.add_output_options(p, default_json="report.json", default_html="report.html")
    options.add_float64_option(p)
    options.add_runtimes_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options.check_output_path(args.json_out)
    from litetrain.api import demo

    result = demo(steps=args.steps, seed=args.seed, tolerances=options.tolerances(args),
                  repeats=options.repeats(args), runtimes=args.runtimes, **options.verdict_options(args))
    return finish_comparison(result, args)
