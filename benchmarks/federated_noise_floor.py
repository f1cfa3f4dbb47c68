"""The fleet verdict against the noise floor on issue 16's federation: a small CNN at an aggressive learning rate.

Model: Conv2D 32 and 64 (3x3, ReLU, same padding), Dense 128 (ReLU), Dense 10 on the bundled digits (8x8x1);
10 clients, 3 rounds, 2 local epochs, SGD at 0.1, ``dirichlet:0.5``, batch 32, both runtimes. Before the noise
floor, ``federate`` judged the two fleets with fixed tolerances and exited 1 ("part by more than 1% of the
weights' scale") although both learned to the same accuracy. Printed: each round's TFLite-vs-TensorFlow distance,
the noise floor, their ratio, the round's verdict; the fleet verdict, what the fixed tolerances alone would have
said of the same rounds, and the cost of the noise run.

Run from the repository root: ``.venv/bin/python benchmarks/federated_noise_floor.py [--clients 10] [--rounds 3]
[--local-epochs 2] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import time


def cnn():
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--local-epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--partition", default="dirichlet:0.5")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import keras

    from litetrain.config import Optimizer, OptimizerConfig
    from litetrain.federated.federation import federate

    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    result = federate(cnn(), "digits", clients=args.clients, rounds=args.rounds, local_epochs=args.local_epochs,
                      partition_spec=args.partition, loss="sparse_categorical_crossentropy",
                      optimizer=OptimizerConfig(Optimizer.SGD, learning_rate=args.lr), runtime="both",
                      centralized=False)
    wall = time.perf_counter() - t0
    print(result)
    print()
    print("round  |dw| max   floor      ratio   rel.scale  acc tflite  acc tf  acc noise  round verdict")
    for r in result.rounds:
        a, f = r["agreement"], r["noise_floor"]
        print(f"{r['round']:>5}  {a['max_abs_weight_diff']:<9.3g}  {a['noise_floor']:<9.3g}  {a['floor_ratio']:<6.2g}"
              f"  {a['max_rel_weight_diff']:<9.3g}  {r['accuracy']['tflite']:<10.1%}  {r['accuracy']['tensorflow']:<6.1%}"
              f"  {f['accuracy']:<9.1%}  {r['verdict']}")
    # What --no-noise-floor decides on the same rounds: within the tolerance, else within 1% of the scale, else not.
    fixed = max((("consistent" if a["within_tolerance"] else "drift" if a["max_rel_weight_diff"] <= 0.01
                  else "inconsistent") for a in (r["agreement"] for r in result.rounds)),
                key=["consistent", "drift", "inconsistent"].index)
    print(f"\nfleet verdict: {result.verdict}, exit {0 if result.passed else 1}; fixed tolerances alone on the same "
          f"rounds: {fixed}")
    print(f"comparable until round: {result.divergence['comparable_until']}; growth per round: distance "
          f"{result.divergence['growth']['rate_per_step']}, floor {result.divergence['floor_growth']['rate_per_step']}")
    t = result.timings
    print(f"timings: total {t['total_s']:.1f} s (wall {wall:.1f} s), simulation {t['simulation_s']:.1f} s, noise run "
          f"{t['noise_floor_s']:.1f} s of it ({t['noise_floor_clients_s']:.1f} s of client training), TFLite "
          f"{sum(r['seconds']['tflite'] for r in result.rounds):.1f} s, TensorFlow "
          f"{sum(r['seconds']['tensorflow'] for r in result.rounds):.1f} s")
    if args.json:
        result.save(args.json)


if __name__ == "__main__":
    main()
