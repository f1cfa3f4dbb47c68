"""``litetrain federate MODEL``: federated training of the TFLite model by simulated devices on Flower."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from litetrain.cli import options

HELP = ("simulate a fleet of devices fine-tuning the TFLite model with federated averaging (Flower on Ray), "
        "and compare it with the same federation in TensorFlow")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("federate", help=HELP, description=HELP)
    options.add_model_options(p, verbose=False)
    options.add_batch_size(p)
    g = p.add_argument_group("federation")
    g.add_argument("--data", default="digits",
                   help="digits (default), digits:HxW, or a .npz; the training split is dealt to the clients, the "
                   "held-out split evaluates the global model")
    g.add_argument("--clients", type=int, default=None, metavar="N", help="simulated devices (default 10)")
    g.add_argument("--rounds", type=int, default=None, metavar="R", help="federated rounds (default 3)")
    g.add_argument("--local-epochs", type=int, default=None, metavar="E",
                   help="epochs each sampled client trains on its shard per round (default 1)")
    g.add_argument("--partition", default=None, metavar="SPEC",
                   help="iid (default), dirichlet:ALPHA (label skew; smaller is more skewed) or by-class:K (each "
                   "client holds K classes)")
    g.add_argument("--fraction-fit", type=float, default=None, metavar="F",
                   help="fraction of clients sampled per round (default 1.0)")
    g.add_argument("--runtime", choices=["tflite", "tensorflow", "both"], default=None,
                   help="clients train the .tflite in LiteRT, the SavedModel in TensorFlow, or both federations "
                   "side by side, compared round by round (default both)")
    g.add_argument("--strategy", choices=["fedavg", "fedadam", "fedprox"], default=None,
                   help="server strategy (Flower's; default fedavg)")
    g.add_argument("--proximal-mu", type=float, default=None, help="fedprox: weight of the proximal term (0.01)")
    g.add_argument("--server-lr", type=float, default=None, help="fedadam: the server learning rate eta (0.1)")
    g.add_argument("--seed", type=options.seed, default=None,
                   help="seeds initialization, partition, client sampling, faults and batch order (default 0)")
    f = p.add_argument_group("faults")
    f.add_argument("--client-failure-rate", type=float, default=None, metavar="P",
                   help="probability that a sampled client fails mid-round and sends nothing (default 0)")
    f.add_argument("--straggler-rate", type=float, default=None, metavar="P",
                   help="probability that a sampled client's update arrives after the round's deadline and is "
                   "discarded (default 0)")
    f.add_argument("--round-timeout", type=float, default=None, metavar="S",
                   help="wall-clock seconds the server waits for updates each round (default: no limit)")
    c = p.add_argument_group("checkpoints and engine")
    c.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="checkpoint the global model(s) there after every round (crash-safe), with the built model")
    c.add_argument("--resume", action="store_true",
                   help="continue the federation in --checkpoint-dir from its last round (pass the same MODEL and "
                   "options; a folder without checkpoints starts afresh)")
    c.add_argument("--no-centralized", dest="centralized", action="store_false",
                   help="skip the centralized TensorFlow reference on the pooled data")
    c.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="run on this Ray cluster: host:port, ray://host:port or auto (default: $RAY_ADDRESS, else "
                   "a local Ray on this machine); an unreachable one fails before the build (exit 3)")
    c.add_argument("--cpus-per-client", type=float, default=None,
                   help="Ray CPUs per client (default 1: as many clients train at once as there are cores; with "
                   "fewer clients than that, each client actor gets more, so no actor sits idle)")
    c.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs, and the converter's full diagnostics on a failed conversion")
    o = p.add_argument_group("verdict and output")
    o.add_argument("--no-noise-floor", dest="noise_floor", action="store_false",
                   help="skip the noise run (a third federation, TFLite with a no-op perturbation, that measures "
                   "the float32 noise floor of the federation); the fixed tolerances --atol/--rtol decide instead")
    o.add_argument("--atol", type=float, help="absolute tolerance for the global models without a noise floor "
                   "(default 1e-05)")
    o.add_argument("--rtol", type=float, help="relative tolerance for the global models without a noise floor "
                   "(default 0.0001)")
    o.add_argument("--fail-on", default=None, metavar="VERDICTS",
                   help="verdicts that exit with code 1 (default: inconsistent,unhealthy; 'none' never fails)")
    o.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="write the result as JSON")
    o.add_argument("--html", dest="html_out", default=None, metavar="OUT", help="write an HTML report with plots")
    o.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options.check_output_path(args.json_out)
    options.check_output_path(args.html_out)
    from litetrain.comparison.verdict import parse_fail_on
    from litetrain.errors import ExitCode
    from litetrain.federated.federation import federate

    def progress(row: dict[str, Any]) -> None:
        if args.quiet:
            return
        accs = ", ".join(f"{rt} {v:.1%}" if v is not None else f"{rt} -" for rt, v in row["accuracy"].items())
        print(f"round {row['round']}: {row['participants']}/{row['sampled']} clients, accuracy {accs}, "
              f"{sum(row['seconds'].values()):.2f} s", flush=True)

    result = federate(
        args.model,
        args.data,
        clients=args.clients,
        rounds=args.rounds,
        local_epochs=args.local_epochs,
        batch_size=args.batch_size,
        partition_spec=args.partition,
        fraction_fit=args.fraction_fit,
        runtime=args.runtime,
        strategy=args.strategy,
        proximal_mu=args.proximal_mu,
        server_lr=args.server_lr,
        client_failure_rate=args.client_failure_rate,
        straggler_rate=args.straggler_rate,
        round_timeout=args.round_timeout,
        seed=args.seed,
        loss=options.loss_config(args),
        optimizer=options.optimizer_config(args),
        trainable=args.trainable,
        select_tf_ops=args.select_tf_ops,
        centralized=args.centralized,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        tolerances=options.tolerances(args),
        noise_floor=args.noise_floor,
        fail_on=parse_fail_on(args.fail_on),
        ray_address=args.ray_address,
        cpus_per_client=args.cpus_per_client,
        verbose=args.verbose,
        on_round=progress,
    )
    if args.json_out:
        result.save(args.json_out)
    if args.html_out:
        from litetrain.reporting.html import write_html

        write_html(result.to_json(), args.html_out)
    if args.quiet:
        print(f"verdict: {result.verdict.value if result.verdict else 'none (one runtime)'}")
    else:
        print()
        print(result)
        for label, path in (("report", args.json_out), ("html", args.html_out)):
            if path:
                print(f"{label}: {path}")
    sys.stdout.flush()
    return int(ExitCode.OK if result.passed else ExitCode.VERDICT_FAILED)
