"""Static provisioning: a fixed count, typically sized for the trace's peak."""

from __future__ import annotations

import math
from dataclasses import dataclass

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.common import decided

POLICY = "static"
FIXED = "fixed"


@dataclass(frozen=True)
class StaticConfig:
    replicas: int

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"static.replicas={self.replicas!r} is out of range; allowed: >= 1")

    @classmethod
    def for_peak(cls, peak_rps: float, capacity_rps: float) -> StaticConfig:
        """Enough replicas for the trace's peak rate: ceil(peak / capacity), at least 1."""
        if not (capacity_rps > 0 and math.isfinite(capacity_rps)):
            raise ValueError(f"capacity_rps={capacity_rps} must be a finite number > 0")
        return cls(max(1, math.ceil(max(0.0, peak_rps) / capacity_rps - 1e-9)))


@dataclass(frozen=True)
class StaticState:
    pass


def decide_static(snap: ModelSnapshot, state: StaticState, cfg: StaticConfig) -> tuple[Decision, StaticState]:
    """Always the fixed count, whatever the telemetry says (even none)."""
    return decided(snap, POLICY, cfg.replicas, cfg.replicas, [FIXED], {"replicas": cfg.replicas}), state
