"""A Dynamo-planner-like predictive policy (NVIDIA Dynamo's SLA planner, throughput mode).

Upstream (docs "Planner Design", components/planner, defaults.py, utils/load_predictor.py,
utils/planner_core.py): every `adjustment_interval` (BasePlannerDefaults.adjustment_interval =
180 s) the planner reads the interval's request count and average latency from Prometheus,
updates its correction factor, predicts the next interval's load (constant | arima | prophet;
SLAPlannerDefaults.load_predictor = "arima" over the last load_prediction_window_size = 50
observations; fewer than BasePredictor's minimum_data_points = 5: the last value), and sets
  correction = observed latency / the profile's latency at the observed per-replica load
  capacity   = the highest profiled throughput whose latency meets SLO / correction
               (the lightest profiled point when none does)
  replicas   = max(ceil(predicted requests / interval / capacity / GPUs per engine), min_endpoint)
(min_endpoint = 1, 1 GPU per engine) within the GPU budget (max_gpu_budget, upstream default 8;
raised here to the fleet's size, as every policy's maximum is). That is the decode pool's rule
(d_correction_factor = actual / expected ITL; corrected_itl = itl / d_correction_factor;
find_best_throughput_per_gpu(corrected_itl)), which is what a single pool of replicas has: the
correction is how upstream reacts to queueing under bursty load ("bursty traffic causes higher
TTFT than profiled steady-state").

Mapped onto one pool of replicas with a p99 SLO: "latency" is the mean end-to-end latency (as
upstream averages ITL over the interval; its profile is averages too), the correction is applied
to the p99 SLO on the profiled p99 curve (so with no correction the capacity is the capacity at
the SLO). Without a profile (`profile` None) there is no correction and the capacity is
`capacity_rps` or the snapshot's.

Simplifications (no new dependencies): "arima" is Holt's linear exponential smoothing, the
ARIMA(0,2,2) special case, with fixed smoothing (alpha, beta) instead of pmdarima.auto_arima;
the interval's load is the mean of the stable-window rate samples seen in it, its latency the
mean of the per-snapshot means. The prefill pool (its correction, min(1, actual / expected TTFT),
can only lower the count) and the prefill/decode split are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.validate import out_of_range
from controlplane.sim.baselines.common import NO_CAPACITY, NOT_DUE, STALE_AFTER_S, decided, fresh_rate, hold

POLICY = "dynamo"

# Reason codes.
PREDICTED = "predicted"  # sized from the prediction
NO_OBSERVATIONS = "no_observations"  # no fresh rate in the whole interval
BOUNDED_MIN = "bounded_min"
BOUNDED_MAX = "bounded_max"

PREDICTORS = ("constant", "arima")


@dataclass(frozen=True)
class ProfileCurve:
    """One replica's load sweep (the planner's interpolator): per offered load, strictly
    increasing, the mean and p99 latency there."""

    load_rps: tuple[float, ...]
    mean_ms: tuple[float, ...]
    p99_ms: tuple[float, ...]

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "dynamo.profile")
        n = len(self.load_rps)
        if len(self.mean_ms) != n or len(self.p99_ms) != n:
            bad("*", (n, len(self.mean_ms), len(self.p99_ms)), "three tuples of one length")
        if n < 2:
            bad("load_rps", self.load_rps, "at least 2 points")
        if not all(b > a for a, b in zip(self.load_rps, self.load_rps[1:], strict=False)):
            bad("load_rps", self.load_rps, "strictly increasing loads")
        for key in ("load_rps", "mean_ms", "p99_ms"):
            if not all(v > 0 and math.isfinite(v) for v in getattr(self, key)):
                bad(key, getattr(self, key), "finite numbers > 0")


@dataclass(frozen=True)
class DynamoConfig:
    adjustment_interval_s: float = 180.0  # planner --adjustment-interval, default 180
    predictor: str = "arima"  # planner --load-predictor, default arima (constant | arima)
    window_size: int = 50  # --load-prediction-window-size, default 50 (observations kept)
    alpha: float = 0.5  # Holt level smoothing (ours; upstream fits ARIMA instead)
    beta: float = 0.3  # Holt trend smoothing (ours)
    # Fewer observations: predict the last value. Upstream BasePredictor / ARIMAPredictor
    # minimum_data_points default 5 (was 3 here).
    min_points: int = 5
    capacity_rps: float | None = None  # profiled throughput per replica; None: snapshot's
    min_replicas: int = 1  # planner min_endpoint, default 1
    # planner max_gpu_budget (GPUs; 1 GPU per replica here): upstream default 8; the bench sets
    # the fleet's size, as for every policy
    max_replicas: int = 100
    stale_after_s: float = STALE_AFTER_S  # not upstream; see common.py
    profile: ProfileCurve | None = None  # the profiled replica; None: no correction factor

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "dynamo")

        if not (self.adjustment_interval_s > 0):
            bad("adjustment_interval_s", self.adjustment_interval_s, "seconds > 0")
        if self.predictor not in PREDICTORS:
            bad("predictor", self.predictor, " | ".join(PREDICTORS))
        if self.window_size < 1:
            bad("window_size", self.window_size, ">= 1")
        for key in ("alpha", "beta"):
            if not (0 < getattr(self, key) <= 1):
                bad(key, getattr(self, key), "(0, 1]")
        if self.capacity_rps is not None and not (self.capacity_rps > 0):
            bad("capacity_rps", self.capacity_rps, "> 0 or None")
        if self.min_replicas < 1:
            bad("min_replicas", self.min_replicas, ">= 1")
        if self.max_replicas < self.min_replicas:
            bad("max_replicas", self.max_replicas, f">= min_replicas ({self.min_replicas})")


@dataclass(frozen=True)
class DynamoState:
    interval_start_s: float | None = None
    interval_sum_rps: float = 0.0  # fresh rate samples seen in the current interval
    interval_count: int = 0
    history_rps: tuple[float, ...] = ()  # one average per past interval, newest last
    interval_latency_sum_ms: float = 0.0  # mean latencies seen in the current interval
    interval_latency_count: int = 0
    correction_ratio: float = 1.0  # the last correction factor (kept when an interval saw no latency)


def predict_next(history: tuple[float, ...], cfg: DynamoConfig) -> float:
    """Next interval's load from the interval averages (newest last)."""
    if cfg.predictor == "constant" or len(history) < cfg.min_points:
        return history[-1]
    level, trend = history[0], history[1] - history[0]
    for x in history[1:]:
        prev = level
        level = cfg.alpha * x + (1 - cfg.alpha) * (level + trend)
        trend = cfg.beta * (level - prev) + (1 - cfg.beta) * trend
    return max(0.0, level + trend)


def correction_from(observed_ms: float, per_replica_rps: float, curve: ProfileCurve) -> float | None:
    """observed / the profile's mean latency at this per-replica load (None: nothing to compare)."""
    expected = float(np.interp(per_replica_rps, curve.load_rps, np.maximum.accumulate(curve.mean_ms)))
    if not (observed_ms > 0 and expected > 0):
        return None
    return observed_ms / expected


def corrected_capacity(slo_ms: float, correction: float, curve: ProfileCurve) -> float:
    """find_best_throughput_per_gpu: the highest load on the profiled p99 curve (linear between
    points) that meets slo / correction; none does: the lightest profiled load, as upstream."""
    loads = np.asarray(curve.load_rps)
    p99 = np.maximum.accumulate(curve.p99_ms)
    target = slo_ms / correction
    if target < p99[0]:
        return float(loads[0])
    if target >= p99[-1]:
        return float(loads[-1])
    i = int(np.searchsorted(p99, target, side="right")) - 1  # p99[i] <= target < p99[i + 1]
    return float(loads[i] + (loads[i + 1] - loads[i]) * (target - p99[i]) / (p99[i + 1] - p99[i]))


def decide_dynamo(snap: ModelSnapshot, state: DynamoState, cfg: DynamoConfig) -> tuple[Decision, DynamoState]:
    now = snap.now_s
    rate, _ = fresh_rate(snap, cfg.stale_after_s)
    start = now if state.interval_start_s is None else state.interval_start_s
    total = state.interval_sum_rps + (rate or 0.0)
    count = state.interval_count + (rate is not None)
    lat = snap.mean_latency_ms
    lat_ok = lat is not None and math.isfinite(lat) and lat > 0
    lat_sum = state.interval_latency_sum_ms + (lat if lat_ok else 0.0)
    lat_count = state.interval_latency_count + lat_ok
    if now - start < cfg.adjustment_interval_s - 1e-9:
        return hold(snap, POLICY, NOT_DUE), DynamoState(
            start, total, count, state.history_rps, lat_sum, lat_count, state.correction_ratio
        )
    if count == 0:  # nothing observed: keep the count (never scale on missing data)
        return hold(snap, POLICY, NO_OBSERVATIONS), DynamoState(
            now, 0.0, 0, state.history_rps, correction_ratio=state.correction_ratio
        )
    history = (state.history_rps + (total / count,))[-cfg.window_size :]
    correction = state.correction_ratio
    ready = snap.ready_replicas
    curve = cfg.profile
    if curve is not None and lat_count and ready > 0:
        correction = correction_from(lat_sum / lat_count, history[-1] / ready, curve) or correction
    new_state = DynamoState(now, 0.0, 0, history, correction_ratio=correction)
    slo = snap.slo_p99_ms
    if curve is not None and slo and slo > 0:
        cap = corrected_capacity(slo, correction, curve)
    else:
        cap = cfg.capacity_rps or snap.capacity_rps
    if not (cap and cap > 0):
        return hold(snap, POLICY, NO_CAPACITY), new_state
    predicted = predict_next(history, cfg)
    desired = max(1, math.ceil(predicted / cap - 1e-9))
    reasons = [PREDICTED]
    final = min(max(desired, cfg.min_replicas), cfg.max_replicas)
    if final > desired:
        reasons.append(BOUNDED_MIN)
    elif final < desired:
        reasons.append(BOUNDED_MAX)
    inputs = {
        "observed_rps": round(history[-1], 4),
        "predicted_rps": round(predicted, 4),
        "predictor": cfg.predictor,
        "capacity_rps": round(cap, 4),
        "correction_ratio": round(correction, 4),
        "intervals_seen": len(history),
    }
    return decided(snap, POLICY, desired, final, reasons, inputs), new_state
