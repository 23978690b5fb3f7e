"""SLO attainment and burn from latency histogram buckets (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def within_slo_ratio(buckets: Iterable[tuple[float, float]], slo_ms: float) -> tuple[float, float | None]:
    """(requests, share of them at or under `slo_ms`) from cumulative `(le, count)` bucket counts.

    Between two bucket bounds the share is interpolated linearly (Prometheus' assumption inside a
    bucket); the +Inf bucket holds the total. No observations -> (0, None).
    """
    pts = sorted((float(le), float(n)) for le, n in buckets)
    if not pts:
        return 0.0, None
    total = pts[-1][1] if math.isinf(pts[-1][0]) else max(n for _, n in pts)
    if total <= 0:
        return 0.0, None
    lo_le, lo_n = 0.0, 0.0
    for le, n in pts:
        if slo_ms <= le:
            if math.isinf(le):
                return total, lo_n / total  # beyond the last finite bound: only what is known under it
            frac = 1.0 if le == lo_le else (slo_ms - lo_le) / (le - lo_le)
            return total, min(1.0, (lo_n + (n - lo_n) * frac) / total)
        lo_le, lo_n = le, n
    return total, min(1.0, lo_n / total)


def burn_rate(within_ratio: float | None, objective_ratio: float) -> float | None:
    """How fast the error budget burns: 1.0 spends it exactly over the SLO period."""
    if within_ratio is None:
        return None
    return (1.0 - within_ratio) / (1.0 - objective_ratio)


def cost_summary(
    *,
    window_s: float,
    replica_hours: float,
    gpu_hours_observed: float,
    gpus_per_replica: int,
    price_per_gpu_hour: float,
    inferences: float,
    energy_j: float | None,
) -> dict:
    """The /v1/cost numbers. Without GPU telemetry each replica-hour counts `gpus_per_replica` GPU-hours."""
    gpu_hours = gpu_hours_observed if gpu_hours_observed > 0 else replica_hours * gpus_per_replica
    cost = gpu_hours * price_per_gpu_hour
    per_1k = cost * 1000.0 / inferences if inferences > 0 else None
    energy_per_1k = energy_j * 1000.0 / inferences if energy_j is not None and inferences > 0 else None
    return {
        "gpu_price_per_hour": price_per_gpu_hour,
        "replica_hours": replica_hours,
        "gpu_hours": gpu_hours,
        "gpu_hours_measured": gpu_hours_observed > 0,
        "cost": cost,
        "cost_per_hour": cost * 3600.0 / window_s if window_s > 0 else 0.0,
        "inferences": inferences,
        "cost_per_1k_inferences": per_1k,
        "energy_j_per_1k_inferences": energy_per_1k,
    }
