"""Splitting a training set into client shards: IID, Dirichlet label skew, or K classes per client.

Every split is a pure function of the labels, the number of clients, the spec and the seed, so the TFLite and
the TensorFlow federation of ``--runtime both`` (and a resumed federation) see exactly the same shards.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from typing import Any

import numpy as np

from litetrain.errors import DataError, UsageError

MAX_DIRICHLET_DRAWS = 1000
"""Dirichlet splits are re-drawn until every client holds at least ``min_samples`` (the usual practice)."""


class PartitionKind(enum.StrEnum):
    """How samples are dealt to clients."""

    IID = "iid"
    """A seeded shuffle cut into equal parts: every client sees every class in the same proportions."""
    DIRICHLET = "dirichlet"
    """Label skew: client shares of each class drawn from Dirichlet(alpha); small alpha = very non-IID."""
    BY_CLASS = "by-class"
    """Each client holds only K classes (pathological non-IID, McMahan et al. 2017)."""


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    """A partition kind and its parameter (``alpha`` for dirichlet, ``classes`` for by-class)."""

    kind: PartitionKind = PartitionKind.IID
    alpha: float | None = None
    classes: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> PartitionSpec:
        """Parses ``iid``, ``dirichlet:ALPHA`` or ``by-class:K``.

        Raises:
            UsageError: anything else, or a non-positive parameter.
        """
        if text is None or text.strip() == "iid":
            return cls()
        text = text.strip()
        kind, sep, arg = text.partition(":")
        if sep and kind == PartitionKind.DIRICHLET:
            try:
                alpha = float(arg)
            except ValueError:
                alpha = math.nan
            if not (math.isfinite(alpha) and alpha > 0):
                raise UsageError(
                    f"--partition dirichlet:ALPHA needs a number ALPHA > 0; received {text!r}.",
                    hint="Use e.g. dirichlet:0.5 (smaller ALPHA is more skewed; 100 is close to iid).",
                )
            return cls(PartitionKind.DIRICHLET, alpha=alpha)
        if sep and kind == PartitionKind.BY_CLASS:
            k = int(arg) if re.fullmatch(r"[+-]?\d+", arg.strip()) else 0
            if k < 1:
                raise UsageError(
                    f"--partition by-class:K needs a whole number K >= 1 (classes per client); received {text!r}.",
                    hint="Use e.g. by-class:2 (each client holds 2 classes).",
                )
            return cls(PartitionKind.BY_CLASS, classes=k)
        raise UsageError(
            f"Unknown --partition {text!r}.",
            hint="Use iid, dirichlet:ALPHA (e.g. dirichlet:0.5; smaller is more skewed) or by-class:K "
            "(each client holds K classes).",
        )

    def describe(self) -> str:
        if self.kind is PartitionKind.DIRICHLET:
            return f"dirichlet:{self.alpha:g}"
        if self.kind is PartitionKind.BY_CLASS:
            return f"by-class:{self.classes}"
        return "iid"


def partition(
    num_samples: int,
    num_clients: int,
    spec: PartitionSpec,
    *,
    labels: np.ndarray | None = None,
    seed: int = 0,
    min_samples: int = 1,
) -> list[np.ndarray]:
    """Deals sample indices to ``num_clients`` clients.

    Args:
        num_samples: Size of the training set.
        num_clients: Number of clients.
        spec: How to deal them.
        labels: Class index of every sample (needed for dirichlet and by-class).
        seed: Seeds the split.
        min_samples: Every client must hold at least this many samples (a client with fewer samples than the
            train signature's batch trains on partial batches).

    Returns:
        One sorted int64 index array per client.

    Raises:
        UsageError: fewer than one client, or a non-IID split without class labels.
        DataError: a client would hold fewer than ``min_samples`` samples.
    """
    if num_clients < 1:
        raise UsageError(f"--clients must be at least 1; received {num_clients}.")
    if num_samples < num_clients * min_samples:
        raise DataError(
            f"{num_samples} training samples cannot give {num_clients} clients at least {min_samples} "
            f"sample(s) each.",
            hint="Use fewer --clients, or more data.",
        )
    rng = np.random.default_rng([seed, 0x5EED])
    if spec.kind is PartitionKind.IID:
        shards = np.array_split(rng.permutation(num_samples), num_clients)
    else:
        if labels is None:
            raise UsageError(
                f"--partition {spec.describe()} needs class labels; this model's data has none (regression).",
                hint="Use --partition iid.",
            )
        labels = np.asarray(labels).reshape(-1)
        if spec.kind is PartitionKind.DIRICHLET:
            assert spec.alpha is not None
            shards = _dirichlet(labels, num_clients, spec.alpha, rng, min_samples)
        else:
            assert spec.classes is not None
            shards = _by_class(labels, num_clients, spec.classes, rng)
    out = [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]
    small = [(i, len(s)) for i, s in enumerate(out) if len(s) < min_samples]
    if small:
        i, n = small[0]
        raise DataError(
            f"--partition {spec.describe()} gives client {i} only {n} samples ({len(small)} client(s) below "
            f"{min_samples}).",
            hint="Use fewer --clients, or a less skewed partition (larger ALPHA or K).",
        )
    return out


def _dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator, min_samples: int
) -> list[np.ndarray]:
    classes = np.unique(labels)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    best: list[np.ndarray] = []
    for _ in range(MAX_DIRICHLET_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx in by_class:
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
            for client, piece in enumerate(np.split(idx, cuts)):
                parts[client].append(piece)
        best = [np.concatenate(p) for p in parts]
        if min(len(s) for s in best) >= min_samples:
            break
    return best


def _by_class(labels: np.ndarray, num_clients: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    classes = np.unique(labels)
    if k > len(classes):
        raise UsageError(
            f"--partition by-class:{k} asks for {k} classes per client, but the training data has only "
            f"{len(classes)} classes.",
            hint=f"Use by-class:K with K <= {len(classes)}.",
        )
    order = rng.permutation(classes)
    # Client i holds classes order[(i*k + j) % C]: consecutive windows over a shuffled class list, so every class
    # is held by about the same number of clients (all of them when clients * k >= C).
    holders: dict[Any, list[int]] = {c: [] for c in classes}
    for client in range(num_clients):
        for j in range(k):
            holders[order[(client * k + j) % len(order)]].append(client)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in classes:
        if not holders[c]:
            continue  # fewer clients * k than classes: this class stays on no device
        idx = rng.permutation(np.flatnonzero(labels == c))
        for client, piece in zip(holders[c], np.array_split(idx, len(holders[c])), strict=True):
            parts[client].append(piece)
    return [np.concatenate(p) if p else np.empty(0, np.int64) for p in parts]


def describe_partition(shards: list[np.ndarray], labels: np.ndarray | None, num_samples: int) -> dict[str, Any]:
    """Sizes and, for classification, classes held per client (for reports)."""
    sizes = [int(len(s)) for s in shards]
    out: dict[str, Any] = {
        "sizes": sizes,
        "min_size": min(sizes),
        "max_size": max(sizes),
        "unused_samples": int(num_samples - sum(sizes)),
    }
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        num_classes = int(labels.max()) + 1
        out["class_counts"] = [np.bincount(labels[s], minlength=num_classes).tolist() for s in shards]
        out["classes_per_client"] = [int(np.count_nonzero(np.bincount(labels[s], minlength=num_classes)))
                                     for s in shards]
    return out
