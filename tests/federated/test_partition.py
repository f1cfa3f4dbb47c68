"""Client shards and seeded faults: pure functions, no Flower."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.errors import DataError, MissingDependencyError, UsageError
from litetrain.federated.faults import FaultSettings, client_fault, sample_clients
from litetrain.federated.partition import PartitionKind, PartitionSpec, describe_partition, partition


def _labels(n: int = 1000, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(5).integers(0, classes, n)


def test_parse_specs() -> None:
    assert PartitionSpec.parse(None).kind is PartitionKind.IID
    assert PartitionSpec.parse("dirichlet:0.3") == PartitionSpec(PartitionKind.DIRICHLET, alpha=0.3)
    assert PartitionSpec.parse("by-class:2").describe() == "by-class:2"
    for bad in ("dirichlet:0", "by-class:0", "shards", "dirichlet:x"):
        with pytest.raises(UsageError):
            PartitionSpec.parse(bad)


def test_iid_covers_everything_once_in_equal_parts() -> None:
    shards = partition(1000, 7, PartitionSpec(), seed=1)
    joined = np.concatenate(shards)
    assert sorted(joined.tolist()) == list(range(1000))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_dirichlet_is_skewed_seeded_and_covers_all() -> None:
    labels = _labels()
    a = partition(1000, 10, PartitionSpec.parse("dirichlet:0.3"), labels=labels, seed=3, min_samples=16)
    b = partition(1000, 10, PartitionSpec.parse("dirichlet:0.3"), labels=labels, seed=3, min_samples=16)
    c = partition(1000, 10, PartitionSpec.parse("dirichlet:0.3"), labels=labels, seed=4, min_samples=16)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert min(map(len, a)) >= 16
    info = describe_partition(a, labels, 1000)
    shares = np.array(info["class_counts"], float)
    shares /= shares.sum(axis=1, keepdims=True)
    # IID shares would be ~0.1 per class; label skew puts most of some client's data in one class.
    assert shares.max() > 0.4


def test_by_class_gives_each_client_k_classes() -> None:
    labels = _labels()
    shards = partition(1000, 10, PartitionSpec.parse("by-class:2"), labels=labels, seed=0)
    info = describe_partition(shards, labels, 1000)
    assert info["classes_per_client"] == [2] * 10
    assert info["unused_samples"] == 0


def test_too_small_shards_are_a_data_error() -> None:
    with pytest.raises(DataError, match="at least 32 sample"):
        partition(100, 10, PartitionSpec(), seed=0, min_samples=32)
    with pytest.raises(UsageError, match="class labels"):
        partition(100, 2, PartitionSpec.parse("by-class:1"), labels=None)


def test_sampling_and_faults_are_seeded_per_round_and_client() -> None:
    assert sample_clients(10, 1.0, 1, 0) == list(range(10))
    s1 = sample_clients(100, 0.1, 1, 0)
    assert len(s1) == 10 and s1 == sorted(s1) and s1 == sample_clients(100, 0.1, 1, 0)
    assert s1 != sample_clients(100, 0.1, 2, 0)
    settings = FaultSettings(failure_rate=0.3, straggler_rate=0.3)
    faults = [client_fault(settings, 0, 1, c, steps=8) for c in range(200)]
    failed = sum(f.fails_at_step is not None for f in faults)
    late = sum(f.straggler for f in faults)
    assert 40 <= failed <= 80 and 25 <= late <= 70
    assert all(0 <= f.fails_at_step < 8 for f in faults if f.fails_at_step is not None)
    assert not any(f.straggler for f in faults if f.fails_at_step is not None)
    assert faults == [client_fault(settings, 0, 1, c, steps=8) for c in range(200)]
    with pytest.raises(UsageError):
        FaultSettings(failure_rate=1.0)


def test_missing_flower_names_the_extra() -> None:
    from litetrain.federated.ray_worker import import_federated

    with pytest.raises(MissingDependencyError) as info:
        import_federated("flwr_not_installed_anywhere")
    assert "litetrain[federated]" in str(info.value.hint)
    assert info.value.exit_code == 3
