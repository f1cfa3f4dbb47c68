"""The verdict: consistent, consistent-sensitive, drift, inconsistent or unhealthy, with its reason.

Decision order (first that applies):

1. ``unhealthy``: both twins' training is broken (NaN/Inf, exploding weights, a loss that does not fall,
   swapped loss arguments). Agreement on broken training is not a pass.
2. ``inconsistent``: only one twin is unhealthy; or the candidate's initial weights differ by more than
   ``INIT_INCONSISTENT`` of their scale; or the checkpoint round trip is not exact; or the twins leave the noise
   floor and a single step from identical weights already differs by more than ``UPDATE_INCONSISTENT``
   (different training dynamics), or the distance grows more than ``GROWTH_INCONSISTENT`` times faster than the
   floor.
3. ``drift``: beyond the floor with the same dynamics (single steps agree to better than ``UPDATE_INCONSISTENT``,
   e.g. reduced-precision arithmetic), or initial weights that differ slightly (e.g. stored as float16).
4. ``consistent-sensitive``: within the floor, but the floor itself grows until single trajectories stop being
   comparable (training amplifies rounding).
5. ``consistent``: within the floor throughout.
"""

from __future__ import annotations

import enum

INIT_INCONSISTENT = 1e-2
UPDATE_INCONSISTENT = 1e-2
GROWTH_INCONSISTENT = 10.0


class Verdict(enum.StrEnum):
    """What the comparison concluded."""

    CONSISTENT = "consistent"
    CONSISTENT_SENSITIVE = "consistent-sensitive"
    DRIFT = "drift"
    INCONSISTENT = "inconsistent"
    UNHEALTHY = "unhealthy"


DEFAULT_FAIL_ON = frozenset({Verdict.INCONSISTENT, Verdict.UNHEALTHY})


def parse_fail_on(text: str | None) -> frozenset[Verdict]:
    """Parses ``--fail-on`` (comma-separated verdicts; ``none`` for never failing)."""
    from litetrain.errors import UsageError

    if text is None:
        return DEFAULT_FAIL_ON
    if text.strip() == "none":
        return frozenset()
    out = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            out.add(Verdict(part))
        except ValueError:
            raise UsageError(
                f"Unknown verdict {part!r} in --fail-on.",
                hint=f"Choose from {', '.join(v.value for v in Verdict)} (comma-separated), or none.",
            ) from None
    return frozenset(out)
