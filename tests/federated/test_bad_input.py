"""Bad input to ``litetrain federate``: exit 2, a message that names what was received, no traceback, no Ray.

Every case goes through ``litetrain.cli.app.main``. ``ray_session`` is replaced by a function that fails the
test, so a check that ran only after Ray started would show up here as a wrong exit code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

MODEL = "tests.models:mlp"


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    from litetrain.federated import federation

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("bad input must be rejected before Ray starts")

    monkeypatch.setattr(federation, "ray_session", refuse)


@pytest.fixture
def no_flower(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if federate gets as far as importing Flower (which imports TensorFlow: seconds)."""
    from litetrain.federated import ray_worker

    def refuse(name: str) -> None:
        raise AssertionError(f"checked only after importing {name}")

    monkeypatch.setattr(ray_worker, "import_federated", refuse)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from litetrain.cli.app import main

    code = main(["federate", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


@pytest.mark.parametrize(("args", "message"), [
    (["--clients", "0"], "--clients must be at least 1; received 0"),
    (["--rounds", "0"], "--rounds must be at least 1; received 0"),
    (["--local-epochs", "-1"], "--local-epochs must be at least 1; received -1"),
    (["--partition", "dirichlet:-1"], "needs a number ALPHA > 0; received 'dirichlet:-1'"),
    (["--partition", "dirichlet:nan"], "needs a number ALPHA > 0"),
    (["--partition", "by-class:x"], "needs a whole number K >= 1"),
    (["--partition", "by-class:11"], "asks for 11 classes per client, but the training data has only 10"),
    (["--partition", "shards"], "Unknown --partition 'shards'"),
    (["--fraction-fit", "1.5"], "--fraction-fit must be in (0, 1]; received 1.5"),
    (["--fraction-fit", "0"], "--fraction-fit must be in (0, 1]"),
    (["--client-failure-rate", "1.0"], "--client-failure-rate must be in [0, 1); received 1.0"),
    (["--straggler-rate", "-0.1"], "--straggler-rate must be in [0, 1)"),
    (["--round-timeout", "0"], "--round-timeout must be positive"),
    # A client with fewer samples than a batch trains on partial batches; one without any samples cannot train.
    (["--clients", "1500"], "1437 training samples cannot give 1500 clients at least 1 sample(s) each"),
    # Skewed enough that some client is left without samples in every one of the 1,000 draws.
    (["--clients", "40", "--partition", "dirichlet:0.01"], "gives client"),
    (["--server-lr", "0.1"], "--server-lr applies to --strategy fedadam only"),
    (["--strategy", "fedadam", "--server-lr", "0"], "--server-lr must be a positive number; received 0.0"),
    (["--strategy", "fedprox", "--proximal-mu", "-1"], "--proximal-mu must be a finite number >= 0"),
    (["--proximal-mu", "0.1"], "--proximal-mu applies to --strategy fedprox only"),
    (["--cpus-per-client", "4096"], "more than the"),
    (["--resume"], "--resume needs --checkpoint-dir"),
    (["--batch-size", "0"], "--batch-size must be at least 1; received 0"),
    (["--ray-address", "head-without-a-port"], "--ray-address 'head-without-a-port' is not a Ray address"),
    (["--ray-address", "http://head:6379"], "is not a Ray address"),
])
def test_bad_option_exits_2_before_any_work(capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    code, err = _run(capsys, MODEL, *args)
    assert code == 2, err
    assert err.startswith("litetrain: error: ") and message in err, err


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model built by federate's own preparation (what DIR/model holds after a federation of MODEL)."""
    from litetrain.federated.federation import prepare_model

    return prepare_model(MODEL, tmp_path_factory.mktemp("built"), batch_size=16,
                         loss="sparse_categorical_crossentropy").directory


def _foreign_checkpoint(folder: Path) -> None:
    """A round-1 checkpoint of some other model's federation, written by the real checkpoint writer."""
    from litetrain.training.checkpoint import CheckpointStore, model_fingerprint

    other = {"dense_kernel": np.zeros((3, 2), np.float32)}
    store = CheckpointStore(folder, fingerprint=model_fingerprint(b"another model", other))
    store.write(1, {f"tflite.{k}": v for k, v in other.items()}, {"round": 1, "rows": []})


def test_checkpoints_without_resume_are_refused(capsys, tmp_path: Path) -> None:
    _foreign_checkpoint(tmp_path)
    code, err = _run(capsys, MODEL, "--checkpoint-dir", str(tmp_path))
    assert code == 2 and "already holds the checkpoints of a federation" in err and "--resume" in err


def test_resume_with_another_model_than_the_folders(capsys, built: Path, tmp_path: Path) -> None:
    """DIR/model was built from tests.models:mlp; resuming with another MODEL must not continue mlp silently."""
    shutil.copytree(built, tmp_path / "model")
    _foreign_checkpoint(tmp_path)
    code, err = _run(capsys, "tests.models:small_cnn", "--checkpoint-dir", str(tmp_path), "--resume")
    assert code == 2, err
    assert "holds the checkpoints of a federation of 'tests.models:mlp'" in err
    assert "received MODEL 'tests.models:small_cnn'" in err


def test_resume_of_checkpoints_that_came_without_their_model(capsys, tmp_path: Path) -> None:
    """Checkpoints without DIR/model (e.g. a 'litetrain train' session's): MODEL is not built into that folder."""
    _foreign_checkpoint(tmp_path)
    code, err = _run(capsys, MODEL, "--checkpoint-dir", str(tmp_path), "--resume")
    assert code == 2 and "holds checkpoints but not the model of a federation" in err, err
    assert not (tmp_path / "model").exists()


def test_resume_of_a_built_model_against_another_models_checkpoints(capsys, built: Path, tmp_path: Path) -> None:
    """A built folder as MODEL is loaded as given; the checkpoint's fingerprint tells it is another model."""
    _foreign_checkpoint(tmp_path)
    code, err = _run(capsys, str(built), "--checkpoint-dir", str(tmp_path), "--resume", "--no-centralized")
    assert code == 2, err
    assert "ckpt-0000000001.npz" in err and "another model" in err


def test_build_options_with_a_built_folder_are_refused_before_flower(capsys, built: Path, no_flower) -> None:
    code, err = _run(capsys, str(built), "--batch-size", "32")
    assert code == 2, err
    assert "is an already built model; --loss, --optimizer, --batch-size and --trainable were fixed" in err


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_cluster_fails_fast_before_the_build(capsys, no_flower, address: str) -> None:
    """Ray would retry the connection forever after the build; the preflight's TCP connect fails in seconds."""
    import time

    start = time.monotonic()
    code, err = _run(capsys, MODEL, "--ray-address", address)
    assert code == 3, err
    assert f"Cannot reach the Ray cluster at --ray-address {address!r}" in err and "127.0.0.1:1" in err, err
    assert time.monotonic() - start < 10


def test_an_unreachable_ray_address_from_the_environment_names_it(capsys, no_flower,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    code, err = _run(capsys, MODEL)
    assert code == 3 and "Cannot reach the Ray cluster at RAY_ADDRESS '127.0.0.1:1'" in err, err


def test_ray_address_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` is resolved as Ray resolves it (from the files of a Ray started on this machine), then checked."""
    from litetrain.errors import RuntimeUnavailableError
    from litetrain.federated import cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(cluster, "_resolve_auto", lambda: None)
    with pytest.raises(RuntimeUnavailableError, match="'auto' found no running Ray instance on this machine"):
        cluster.check_ray_address("auto")
    monkeypatch.setattr(cluster, "_resolve_auto", lambda: "127.0.0.1:1")  # a Ray that ended, its file left
    with pytest.raises(RuntimeUnavailableError, match="connection to 127.0.0.1:1 failed"):
        cluster.check_ray_address("auto")


def test_the_federated_server_takes_the_checkpoint_folders_lock(tmp_path: Path) -> None:
    """``federate --checkpoint-dir`` holds the folder like a training session: refused while another holds it,
    before it loads data or starts Ray."""
    from litetrain.errors import UsageError
    from litetrain.federated.federation import federate
    from litetrain.training.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path / "ckpt", fingerprint={})
    with store.session(), pytest.raises(UsageError, match="is in use: this process"):
        federate("tests.models:mlp", data="no-such-data.npz", checkpoint_dir=store.directory)


def test_same_model_compares_files_and_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from litetrain.federated.federation import _same_model

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "model.keras").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "a")
    assert _same_model("model.keras", str(tmp_path / "a" / "model.keras"))  # relative and absolute: one file
    assert not _same_model("../b/model.keras", str(tmp_path / "a" / "model.keras"))  # two files
    # Started from another working folder: the recorded relative path is not found from here; the name decides.
    assert _same_model(str(tmp_path / "b" / "model.keras"), "elsewhere/model.keras")
    assert not _same_model(str(tmp_path / "b" / "model.keras"), "elsewhere/other.keras")
    assert _same_model("tests.models:mlp", "tests.models:mlp")
    assert not _same_model("tests.models:small_cnn", "tests.models:mlp")
    assert not _same_model("model.keras", "tests.models:mlp")
