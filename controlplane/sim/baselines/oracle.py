"""The oracle: knows the future load, so it is the lower bound on GPU-hours for the SLO.

replicas(t) = ceil(max load over [t, t + startup_s + lookahead_s] / capacity): a replica
ordered now serves from now + startup_s, so the count covers every second until the next
order can take effect. It scales down at once (no stabilisation: it knows nothing is coming).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.validate import out_of_range
from controlplane.sim.baselines.common import decided

POLICY = "oracle"
FUTURE_PEAK = "future_peak"
BOUNDED_MAX = "bounded_max"


@dataclass(frozen=True)
class OracleConfig:
    """`ts_s` ascending sample times (same clock as snapshot.now_s), `rate_rps` the load from
    each sample to the next. The capacity is one replica's at the SLO (no headroom)."""

    ts_s: tuple[float, ...]
    rate_rps: tuple[float, ...]
    capacity_rps: float
    startup_s: float
    lookahead_s: float = 1.0  # the decision cadence: the next chance to correct
    max_replicas: int = 1_000_000

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "oracle")

        if len(self.ts_s) != len(self.rate_rps) or not self.ts_s:
            bad("ts_s", f"{len(self.ts_s)} samples", f"non-empty, as many as rate_rps ({len(self.rate_rps)})")
        if any(b < a for a, b in zip(self.ts_s, self.ts_s[1:], strict=False)):
            bad("ts_s", "unsorted", "ascending times")
        if not (self.capacity_rps > 0 and math.isfinite(self.capacity_rps)):
            bad("capacity_rps", self.capacity_rps, "a finite number > 0")
        for key in ("startup_s", "lookahead_s"):
            if not (getattr(self, key) >= 0):
                bad(key, getattr(self, key), "seconds >= 0")

    @classmethod
    def from_series(
        cls, ts_s: Sequence[float], rate_rps: Sequence[float], capacity_rps: float, startup_s: float, **kw
    ) -> OracleConfig:
        return cls(tuple(map(float, ts_s)), tuple(map(float, rate_rps)), capacity_rps, startup_s, **kw)


@dataclass(frozen=True)
class OracleState:
    pass


def future_peak_rps(cfg: OracleConfig, start_s: float, end_s: float) -> float:
    """Highest load in force at any time in [start_s, end_s] (the sample covering start_s
    counts; past the series the last value holds)."""
    lo = max(0, bisect.bisect_right(cfg.ts_s, start_s) - 1)
    hi = bisect.bisect_right(cfg.ts_s, end_s)
    return max(cfg.rate_rps[lo : max(hi, lo + 1)])


def decide_oracle(snap: ModelSnapshot, state: OracleState, cfg: OracleConfig) -> tuple[Decision, OracleState]:
    now = snap.now_s
    end = now + cfg.startup_s + cfg.lookahead_s
    peak = future_peak_rps(cfg, now, end)
    desired = max(1, math.ceil(max(0.0, peak) / cfg.capacity_rps - 1e-9))
    final = min(desired, cfg.max_replicas)
    reasons = [FUTURE_PEAK] + ([BOUNDED_MAX] if final < desired else [])
    inputs = {"future_peak_rps": peak, "window_end_s": end, "capacity_rps": cfg.capacity_rps}
    return decided(snap, POLICY, desired, final, reasons, inputs), state
