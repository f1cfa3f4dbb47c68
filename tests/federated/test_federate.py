"""Real Flower simulations (Ray backend) of 10 devices on the bundled digits, TFLite and TensorFlow clients.

Ray start-up dominates the cost, so one federation (3 rounds, non-IID, with failures and stragglers, both
runtimes, checkpointed) serves every test here. FedAdam and a real ``kill -9`` with ``--resume`` are in
test_kill_resume.py; bad options (no Ray) in test_bad_input.py; the round-timeout accounting in test_server.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from litetrain.config import Optimizer, OptimizerConfig
from tests.models import mlp

pytest.importorskip("flwr")

CLIENTS, ROUNDS, EPOCHS, BATCH = 10, 3, 2, 16
SETTINGS: dict[str, Any] = {
    "clients": CLIENTS, "rounds": ROUNDS, "local_epochs": EPOCHS, "partition_spec": "dirichlet:0.5",
    "client_failure_rate": 0.2, "straggler_rate": 0.2, "runtime": "both", "seed": 0,
}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, list[dict[str, Any]]]:
    import keras

    from litetrain.federated.federation import federate

    keras.utils.set_random_seed(7)
    ckpt = tmp_path_factory.mktemp("federation")
    progress: list[dict[str, Any]] = []
    with pytest.MonkeyPatch.context() as mp:
        # The TensorFlow clients unpack their SavedModel in the temp folder: this test's own, to see it cleaned.
        # Ray's session folder stays where it always is (socket paths have a length limit).
        mp.setenv("RAY_TMPDIR", os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
        mp.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
        mp.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        result = federate(
            mlp(16), "digits", batch_size=BATCH, loss="sparse_categorical_crossentropy",
            optimizer=OptimizerConfig(Optimizer.SGD, learning_rate=0.2), checkpoint_dir=ckpt,
            on_round=progress.append, **SETTINGS,
        )
        assert tempfile.gettempdir() == os.environ["TMPDIR"]
        assert not list(Path(os.environ["TMPDIR"]).iterdir())  # the unpacked SavedModels are gone
    return result, ckpt, progress


def test_federation_learns(federation) -> None:
    result, _, progress = federation
    assert [r["round"] for r in result.rounds] == [1, 2, 3]
    assert [r["round"] for r in progress] == [1, 2, 3]  # reported as each round completed
    for rt in ("tflite", "tensorflow"):
        acc = [result.initial[rt]["accuracy"]] + [r["accuracy"][rt] for r in result.rounds]
        loss = [result.initial[rt]["loss"]] + [r["loss"][rt] for r in result.rounds]
        assert acc[0] < 0.2  # an untrained 10-class model
        # Non-IID FedAvg with failures and stragglers need not improve every round (with every sample trained,
        # partial batches included, round 2 dips here): the last round is the best, and far above the start.
        assert acc[-1] == max(acc) and acc[-1] > acc[0] + 0.3, acc
        assert loss[-1] == min(loss), loss
        assert acc[-1] > 0.5
    # The reference: TensorFlow on the pooled shards for rounds x local epochs beats non-IID FedAvg here.
    assert result.centralized["epochs"] == ROUNDS * EPOCHS
    assert result.centralized_accuracy > 0.85
    assert result.centralized_accuracy >= result.final_accuracy["tflite"]


def test_tflite_and_tensorflow_federations_agree(federation) -> None:
    result, _, _ = federation
    assert result.verdict.value == "consistent" and result.passed
    for r in result.rounds:
        a = r["agreement"]
        assert a["same_participants"]
        assert a["max_abs_weight_diff"] < 1e-5  # float32 rounding of two runtimes, not different training
        assert a["argmax_agreement"] == 1.0
        assert r["accuracy"]["tflite"] == r["accuracy"]["tensorflow"]
        assert abs(r["loss"]["tflite"] - r["loss"]["tensorflow"]) < 1e-5
        assert r["participants_by_runtime"]["tflite"] == r["participants_by_runtime"]["tensorflow"]
    assert "within the tolerance" in result.explanation


def test_failures_and_stragglers_leave_the_round_to_the_rest(federation) -> None:
    from litetrain.federated.faults import FaultSettings, client_fault

    result, _, _ = federation
    sizes = result.data["partition"]["sizes"]
    settings = FaultSettings(SETTINGS["client_failure_rate"], SETTINGS["straggler_rate"])
    total_failed = total_late = 0
    for r in result.rounds:
        assert r["sampled"] == CLIENTS
        expected = [client_fault(settings, 0, r["round"], c, EPOCHS * (sizes[c] // BATCH)) for c in range(CLIENTS)]
        assert r["failed"] == [c for c in range(CLIENTS) if expected[c].fails_at_step is not None]
        assert r["stragglers"] == [c for c in range(CLIENTS) if expected[c].straggler]
        assert r["participant_ids"] == sorted(set(range(CLIENTS)) - set(r["failed"]) - set(r["stragglers"]))
        assert r["participants"] + len(r["failed"]) + len(r["stragglers"]) == r["sampled"]
        assert r["timed_out"] == []
        total_failed += len(r["failed"])
        total_late += len(r["stragglers"])
    assert total_failed > 0 and total_late > 0
    assert any(r["participants"] < r["sampled"] for r in result.rounds)


def test_bytes_count_only_the_trainable_weights(federation) -> None:
    result, _, _ = federation
    exchanged = result.model["exchanged_bytes"]
    weights = [v for v in result.model["variables"] if v["role"] == "weight"]
    assert exchanged == sum(v["size_bytes"] for v in weights) == (64 * 16 + 16 + 16 * 10 + 10) * 4
    assert not any(n.startswith("opt_") for n in result.model["exchanged_names"])
    for r in result.rounds:
        for b in r["bytes"].values():
            assert b["down"] == exchanged * r["sampled"]
            assert b["up"] == exchanged * (r["participants"] + len(r["stragglers"]))


def test_json_report(federation, tmp_path: Path) -> None:
    result, _, _ = federation
    path = result.save(tmp_path / "federate.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "federate" and data["schema_version"] == "1.0"
    assert data["verdict"] == "consistent"
    assert data["centralized_accuracy"] == pytest.approx(result.centralized_accuracy)
    assert data["settings"]["partition"] == "dirichlet:0.5" and data["settings"]["runtimes"] == ["tflite", "tensorflow"]
    assert "python" in data["environment"]
    for r in data["rounds"]:
        assert {"round", "participants", "accuracy", "loss", "bytes", "seconds", "verdict"} <= set(r)
        assert set(r["accuracy"]) == {"tflite", "tensorflow"}
    assert data["engine"]["flwr"].startswith("1.41") and data["engine"]["address"] == "local"
    cpus = os.cpu_count() or 1
    assert data["engine"]["actors"] == min(CLIENTS, cpus) and data["engine"]["cluster_cpus"] == cpus
    for r in data["rounds"]:  # the mean over participants, not the sum
        for rt in ("tflite", "tensorflow"):
            assert r["client_seconds"][rt] * r["participants"] == pytest.approx(r["client_seconds_total"][rt])
    text = str(result)
    assert "verdict: CONSISTENT" in text and "dirichlet:0.5" in text


def test_the_ray_litetrain_started_is_shut_down(federation) -> None:
    import ray

    assert not ray.is_initialized()


def test_the_result_has_the_documented_keys(federation) -> None:
    """Every field docs/report-schema.md gives a federate result is there, and nothing it does not name."""
    from tests.reporting.schema_doc import assert_documented

    result, _, _ = federation
    data = result.to_json()
    assert data["schema_version"] == "1.0" and data["verdict"] in ("consistent", "consistent-sensitive")
    for r in data["rounds"]:
        assert {"round", "participants"} <= set(r) and set(r["accuracy"]) == {"tflite", "tensorflow"}
    assert isinstance(data["centralized_accuracy"], float)
    assert_documented(data)


def test_each_round_is_checkpointed(federation) -> None:
    from litetrain.training.checkpoint import load_checkpoint

    result, ckpt, _ = federation
    files = sorted(ckpt.glob("ckpt-*.npz"))
    assert len(files) == ROUNDS
    last = load_checkpoint(files[-1])
    assert last.step == ROUNDS and last.state["round"] == ROUNDS
    # Both federations and the noise floor's (TFLite, perturbed), so that a resumed one keeps its floor.
    assert {k.split(".", 1)[0] for k in last.arrays} == {"tflite", "tensorflow", "tflite-perturbed"}
    assert len(last.state["rows"]) == ROUNDS
