"""A few model-zoo entries on every LiteRT runtime: ``check --runtimes compiled,arm64,wasm`` as a user would run it.

The whole zoo runs on the Interpreter (tests/test_zoo.py); these entries cover what the other runtimes might treat
differently: BatchNormalization, SeparableConv2D and strided convolutions with dropout (mini_xception), an unrolled
LSTM over int32 token ids with an Embedding (text-lstm) and two inputs, two record fields through every runtime's
inputs (two_tower). Every runtime row must be consistent with TensorFlow (its own verdict against the noise floor),
and its checkpoint (save twice, restore into a fresh model) exact. CI's zoo stage (marker ``zoo``) runs it; arm64
and wasm are skipped where ``litetrain runtimes install`` did not run (dev/test.sh installs both where apt and npm
are).
"""

from __future__ import annotations

import json

import pytest

import litetrain
from litetrain.comparison.runtimes import parse_runtimes
from litetrain.errors import RuntimeUnavailableError
from litetrain.reporting.console import render_comparison
from tests.reporting.conftest import repo_root
from tests.zoo import BY_NAME

ENTRIES = ("mini_xception-separable", "text-lstm", "two_tower")
RUNTIMES = ("compiled", "arm64", "wasm")


def _installed() -> tuple[str, ...]:
    names = []
    for name in RUNTIMES:
        try:
            parse_runtimes(name)
        except RuntimeUnavailableError:
            continue  # skipped below, as tests/runtime/test_arm64.py and test_wasm.py skip without the install
        names.append(name)
    return tuple(names)


@pytest.mark.zoo
@pytest.mark.parametrize("name", ENTRIES)
def test_zoo_entry_on_every_litert_runtime(name: str) -> None:
    runtimes = _installed()
    if len(runtimes) < len(RUNTIMES):
        pytest.skip(f"not installed: {sorted(set(RUNTIMES) - set(runtimes))} (litetrain runtimes install)")
    result = litetrain.check(**BY_NAME[name].check_kwargs(), runtimes=",".join(runtimes))
    rows = result.runtimes
    assert list(rows) == ["interpreter", *runtimes]
    for runtime, row in rows.items():
        assert row["verdict"] in ("consistent", "consistent-sensitive"), f"{name} on {runtime}: {row['reason']}"
        assert row["checkpoint_exact"] is True, f"{name} on {runtime}: save/restore differs"
        assert row["steps"] == BY_NAME[name].steps and row["steps_per_second"] > 0
        assert row["emulated"] is (runtime == "arm64")
    assert rows["compiled"]["identical_to_interpreter"]  # the same x86 XNNPACK kernels behind another API
    text = render_comparison(result)
    assert "* arm64: emulated" in text
    artifacts = repo_root() / "test-artifacts"  # the figures each run found, for the README's runtime notes
    artifacts.mkdir(exist_ok=True)
    keep = ("verdict", "max_abs_loss_diff", "max_abs_weight_diff", "floor_ratio", "steps_per_second", "emulated")
    (artifacts / f"zoo-runtimes-{name}.json").write_text(json.dumps(
        {"entry": name, "steps": result.train.steps, "main_verdict": result.verdict.value,
         "runtimes": {k: {f: row.get(f) for f in keep} for k, row in rows.items()}}, indent=1))
