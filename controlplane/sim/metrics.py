"""What one simulated run scores: SLO attainment, p99, GPU-hours, scale actions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controlplane.sim.latency import LatencyGroups


@dataclass
class SimResult:
    policy: str
    groups: LatencyGroups  # every request, in groups sharing one latency distribution
    gpu_s: float  # replica-seconds billed (from the order, starting replicas included)
    scale_actions: int  # ticks on which the replica count changed
    failures: int
    sim_s: float  # simulated seconds
    wall_s: float  # wall seconds the run took
    replicas: np.ndarray  # replica count per tick (billed)
    ready: np.ndarray  # ready replicas per tick
    requests: float
    # Per-tick telemetry: requests served, their latency and queue wait summed (ms), queue length.
    served: np.ndarray | None = None
    latency_sum_ms: np.ndarray | None = None
    wait_sum_ms: np.ndarray | None = None
    queue_len: np.ndarray | None = None
    tick_s: float = 1.0

    @property
    def gpu_hours(self) -> float:
        return self.gpu_s / 3600.0

    def slo_attainment(self, slo_ms: float) -> float:
        return self.groups.fraction_within(slo_ms)

    def p99_ms(self) -> float:
        return self.groups.quantile_ms(0.99)

    def summary(self, slo_ms: float, oracle_gpu_hours: float | None = None) -> dict:
        out = {
            "slo_attainment": round(self.slo_attainment(slo_ms), 6),
            "gpu_hours": round(self.gpu_hours, 4),
            "gpu_hours_vs_oracle": None,
            "scale_actions": int(self.scale_actions),
            "p99_ms": round(self.p99_ms(), 2),
        }
        if oracle_gpu_hours:
            out["gpu_hours_vs_oracle"] = round(self.gpu_hours / oracle_gpu_hours, 4)
        return out
