"""A Dynamo-planner-like predictive policy (NVIDIA Dynamo's SLA planner, throughput mode).

Upstream (docs "Planner Design", components/planner, defaults.py, utils/load_predictor.py):
every `adjustment_interval` (BasePlannerDefaults.adjustment_interval = 180 s) the planner reads
the interval's request count from Prometheus, predicts the next interval's (constant | arima |
prophet; SLAPlannerDefaults.load_predictor = "arima" over the last
load_prediction_window_size = 50 observations; fewer than BasePredictor's
minimum_data_points = 5: the last value), and sets
  replicas = max(ceil(predicted requests / interval / profiled throughput per GPU / GPUs per
             engine), min_endpoint)        (min_endpoint = 1, 1 GPU per engine)
within the GPU budget (max_gpu_budget, upstream default 8; raised here to the fleet's size, as
every policy's maximum is). Here the profiled throughput is the snapshot's `capacity_rps` (the
capacity model at the SLO, no headroom, as upstream's interpolator gives it) unless
`capacity_rps` is set.

Simplifications (no new dependencies): "arima" is Holt's linear exponential smoothing, the
ARIMA(0,2,2) special case, with fixed smoothing (alpha, beta) instead of pmdarima.auto_arima;
the interval's load is the mean of the stable-window rate samples seen in it. Upstream's
TTFT/ITL correction factors (the prefill one, min(1, actual / expected TTFT), can only lower
the count) and the prefill/decode split are left out (one pool of replicas per model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

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


def decide_dynamo(snap: ModelSnapshot, state: DynamoState, cfg: DynamoConfig) -> tuple[Decision, DynamoState]:
    now = snap.now_s
    rate, _ = fresh_rate(snap, cfg.stale_after_s)
    start = now if state.interval_start_s is None else state.interval_start_s
    total = state.interval_sum_rps + (rate or 0.0)
    count = state.interval_count + (rate is not None)
    if now - start < cfg.adjustment_interval_s - 1e-9:
        return hold(snap, POLICY, NOT_DUE), DynamoState(start, total, count, state.history_rps)
    if count == 0:  # nothing observed: keep the count (never scale on missing data)
        return hold(snap, POLICY, NO_OBSERVATIONS), DynamoState(now, 0.0, 0, state.history_rps)
    history = (state.history_rps + (total / count,))[-cfg.window_size :]
    new_state = DynamoState(now, 0.0, 0, history)
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
        "capacity_rps": cap,
        "intervals_seen": len(history),
    }
    return decided(snap, POLICY, desired, final, reasons, inputs), new_state
