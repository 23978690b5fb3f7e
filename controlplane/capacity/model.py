"""Capacity of one replica at a latency SLO, and replicas needed for a forecast (pure).

A replica's latency grows with load; measured points are noisy (a p99 from a few hundred
requests), so the curve is fitted with isotonic regression (monotone non-decreasing in load)
before it is read at the SLO. Points where the replica failed (errors above a ratio, or it
answered clearly less than it was offered) are not latency samples: they cap the capacity
from above instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# Reasons (stable codes, stored and shown).
INTERPOLATED = "interpolated"  # SLO crossed between two measured loads
SLO_MET_AT_ALL_LOADS = "slo_met_at_all_loads"  # lower bound: the replica was never pushed past the SLO
LIMITED_BY_FAILURES = "limited_by_failures"  # SLO held up to the last healthy load, the next one failed
SLO_NEVER_MET = "slo_never_met"  # even the lowest load missed the SLO
NO_USABLE_POINTS = "no_usable_points"  # every point failed (or none were given)

MAX_ERROR_RATIO = 0.01  # more failed requests than this and a point is a failure, not a latency sample
MIN_ACHIEVED_RATIO = 0.9  # answered / offered below this: the replica fell behind (queue grows)


@dataclass(frozen=True)
class LoadPoint:
    """One load step: what was offered, what came back, and the latency percentiles."""

    offered_rps: float
    achieved_rps: float  # ok responses per second over the step
    p99_ms: float | None  # end-to-end p99 of ok requests (whole stream for chat-lm)
    error_ratio: float = 0.0  # failed / sent
    requests: int = 0
    ttft_p99_ms: float | None = None  # chat-lm: time to first token, p99
    itl_p99_ms: float | None = None  # chat-lm: inter-token latency (per-request mean gap), p99
    send_lag_p99_ms: float | None = (
        None  # how late the client sent (high: the client, not the replica, limited)
    )

    def failed(self, max_error_ratio: float = MAX_ERROR_RATIO) -> bool:
        if self.error_ratio > max_error_ratio or self.p99_ms is None:
            return True
        return self.offered_rps > 0 and self.achieved_rps < MIN_ACHIEVED_RATIO * self.offered_rps


@dataclass(frozen=True)
class Slo:
    """Latency objective. `p99_ms` bounds end-to-end p99; for chat-lm set `ttft_p99_ms` and
    `itl_p99_ms` instead (both must hold)."""

    p99_ms: float | None = None
    ttft_p99_ms: float | None = None
    itl_p99_ms: float | None = None

    def __post_init__(self) -> None:
        bounds = {k: v for k, v in asdict(self).items() if v is not None}
        if not bounds:
            raise ValueError("an SLO needs p99_ms, or ttft_p99_ms and/or itl_p99_ms")
        for k, v in bounds.items():
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"SLO {k}={v} must be a finite number > 0 (milliseconds)")

    def metrics(self) -> dict[str, float]:
        """Point attribute -> bound, for every bound that is set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class FittedCurve:
    load_rps: tuple[float, ...]  # sorted, distinct loads of the usable points
    latency_ms: tuple[float, ...]  # isotonic fit at those loads (non-decreasing)


@dataclass(frozen=True)
class CapacityEstimate:
    capacity_rps: float  # 0 when the SLO is never met
    reason: str
    lower_bound: bool  # True: the SLO held at every load tried; the real capacity is higher
    slo: Slo
    points_used: tuple[LoadPoint, ...]  # usable points the fit is made of, by load
    failed_points: tuple[LoadPoint, ...]
    curves: Mapping[str, FittedCurve] = field(default_factory=dict)  # metric -> fit
    limiting_metric: str | None = None  # which SLO bound set the capacity

    def to_json(self) -> dict:
        return {
            "capacity_rps": round(self.capacity_rps, 3),
            "reason": self.reason,
            "lower_bound": self.lower_bound,
            "limiting_metric": self.limiting_metric,
            "slo": self.slo.metrics(),
            "points": [asdict(p) for p in self.points_used],
            "failed_points": [asdict(p) for p in self.failed_points],
            "fitted": {
                m: {"load_rps": list(c.load_rps), "latency_ms": [round(x, 3) for x in c.latency_ms]}
                for m, c in self.curves.items()
            },
        }


def fit_monotone(
    load_rps: Sequence[float], latency_ms: Sequence[float], weights: Sequence[float] | None = None
) -> FittedCurve:
    """Isotonic (non-decreasing) least-squares fit of latency on load, one value per distinct load."""
    from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415 - slow import, used rarely

    x = np.asarray(load_rps, dtype=float)
    y = np.asarray(latency_ms, dtype=float)
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"need equal, non-empty load and latency lists (got {x.size} and {y.size})")
    w = None if weights is None else np.maximum(np.asarray(weights, dtype=float), 1.0)
    fitted = IsotonicRegression(increasing=True).fit(x, y, sample_weight=w)
    xs = np.unique(x)
    return FittedCurve(tuple(float(v) for v in xs), tuple(float(v) for v in fitted.predict(xs)))


def _crossing_rps(curve: FittedCurve, bound_ms: float) -> tuple[float, bool]:
    """Highest load whose fitted latency <= bound (linear between fitted points); (load, at_end)."""
    xs, ys = curve.load_rps, curve.latency_ms
    if ys[0] > bound_ms:
        return 0.0, False
    i = max(j for j, y in enumerate(ys) if y <= bound_ms)  # fit is monotone: all before i hold too
    if i == len(xs) - 1:
        return xs[i], True
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return x0 + (bound_ms - y0) / (y1 - y0) * (x1 - x0), False  # y1 > bound >= y0, so y1 > y0


def capacity_at_slo(
    points: Sequence[LoadPoint], slo: Slo, max_error_ratio: float = MAX_ERROR_RATIO
) -> CapacityEstimate:
    """Highest offered load (rps) at which the fitted latency meets every bound of the SLO."""
    usable = tuple(sorted((p for p in points if not p.failed(max_error_ratio)), key=lambda p: p.offered_rps))
    failed = tuple(sorted((p for p in points if p.failed(max_error_ratio)), key=lambda p: p.offered_rps))
    if not usable:
        return CapacityEstimate(0.0, NO_USABLE_POINTS, False, slo, usable, failed)
    curves: dict[str, FittedCurve] = {}
    best: tuple[float, bool, str] | None = None
    for metric, bound in slo.metrics().items():
        have = [p for p in usable if getattr(p, metric) is not None]
        if not have:
            return CapacityEstimate(0.0, NO_USABLE_POINTS, False, slo, usable, failed, curves, metric)
        curve = fit_monotone(
            [p.offered_rps for p in have], [getattr(p, metric) for p in have], [p.requests for p in have]
        )
        curves[metric] = curve
        rps, at_end = _crossing_rps(curve, bound)
        if best is None or rps < best[0]:
            best = (rps, at_end, metric)
    assert best is not None
    rps, at_end, metric = best
    if rps <= 0:
        return CapacityEstimate(0.0, SLO_NEVER_MET, False, slo, usable, failed, curves, metric)
    if at_end:
        # A failure above the last good load bounds the capacity; without one it is a lower bound.
        if any(p.offered_rps > rps for p in failed):
            return CapacityEstimate(rps, LIMITED_BY_FAILURES, False, slo, usable, failed, curves, metric)
        return CapacityEstimate(rps, SLO_MET_AT_ALL_LOADS, True, slo, usable, failed, curves, metric)
    # A failure below the crossing (an error burst at a lower load) caps the capacity there.
    below = [p.offered_rps for p in failed if p.offered_rps < rps]
    if below:
        cap = max((p.offered_rps for p in usable if p.offered_rps < min(below)), default=0.0)
        reason = LIMITED_BY_FAILURES if cap > 0 else SLO_NEVER_MET
        return CapacityEstimate(cap, reason, False, slo, usable, failed, curves, metric)
    return CapacityEstimate(rps, INTERPOLATED, False, slo, usable, failed, curves, metric)


def predicted_latency_ms(curve: FittedCurve, load_rps: float) -> float:
    """The fitted latency at a load (linear between fitted points, flat beyond the ends)."""
    return float(np.interp(load_rps, curve.load_rps, curve.latency_ms))


# ---- replicas for a forecast ------------------------------------------------------------------


def replicas_needed(forecast_rps: float, capacity_rps: float, headroom_ratio: float) -> int:
    """ceil(forecast / (capacity * (1 - headroom))), at least 1 (never scale to zero from here)."""
    if not (capacity_rps > 0 and math.isfinite(capacity_rps)):
        raise ValueError(f"capacity_rps={capacity_rps} must be a finite number > 0")
    if not (0 <= headroom_ratio < 1):
        raise ValueError(f"headroom_ratio={headroom_ratio} must be in [0, 1)")
    if not math.isfinite(forecast_rps):
        raise ValueError(f"forecast_rps={forecast_rps} must be finite")
    usable_rps = capacity_rps * (1.0 - headroom_ratio)
    # The small slack keeps 80 / (50 * 0.8) at 2 rather than 3 after float rounding.
    return max(1, math.ceil(max(0.0, forecast_rps) / usable_rps - 1e-9))


@dataclass(frozen=True)
class ReplicaAnswer:
    """Replicas needed, or None with the reason no answer could be given."""

    replicas: int | None
    reason: str  # ok | quantile_missing | no_capacity | capacity_lower_bound
    forecast_rps: float | None
    capacity_rps: float
    quantile: float
    headroom_ratio: float


def replicas_for_quantile(
    forecast_by_quantile: Mapping[float, float],
    quantile: float,
    estimate: CapacityEstimate,
    headroom_ratio: float,
) -> ReplicaAnswer:
    """Replicas to serve the forecast at `quantile` (e.g. 0.9) within the estimate's SLO.

    A lower-bound capacity still answers (reason `capacity_lower_bound`): it can only
    over-provision, which is the safe direction.
    """
    forecast = forecast_by_quantile.get(quantile)
    if forecast is None:
        return ReplicaAnswer(None, "quantile_missing", None, estimate.capacity_rps, quantile, headroom_ratio)
    if estimate.capacity_rps <= 0:
        return ReplicaAnswer(None, "no_capacity", forecast, 0.0, quantile, headroom_ratio)
    n = replicas_needed(forecast, estimate.capacity_rps, headroom_ratio)
    reason = "capacity_lower_bound" if estimate.lower_bound else "ok"
    return ReplicaAnswer(n, reason, forecast, estimate.capacity_rps, quantile, headroom_ratio)
