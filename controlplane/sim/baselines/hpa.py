"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2), with its upstream defaults.

Per sync (pkg/controller/podautoscaler/horizontal.go + replica_calculator.go):
  1. ratio   = (metric per ready replica) / target;   desired = ceil(ratio * ready)
     |ratio - 1| <= tolerance -> desired = current (the dead-band).
     Replicas still starting have no metrics ("missing pods"): on a scale-up they count as 0,
     on a scale-down as exactly at target; if that flips the direction or lands in the
     dead-band, desired = current (calcPlainMetricReplicas).
  2. stabilise: the recommendation is clamped to [min of recommendations over the up window,
     max over the down window] (stabilizeRecommendationWithBehaviors); default down window
     300 s, up window 0 s. The first sync records the running count as a recommendation
     (recordInitialRecommendation), so nothing scales down in the first down window.
  3. rate limits: scale-up at most max(+100 %, +4 pods) per 15 s, scale-down at most 100 % per
     15 s, counted from the replicas at the start of each period (scale events of the last
     period_s; convertDesiredReplicasWithBehaviorRate), then min/max replicas.

Metric: a per-replica request rate (a Pods metric, e.g. requests/s from a metrics adapter)
against `target_rps_per_replica`, or utilisation = rate / capacity against
`target_utilisation_ratio` (as for a Resource metric with averageUtilization). Both reduce to
a per-replica target in rps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from controlplane.policy.decision import Decision
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.validate import out_of_range
from controlplane.sim.baselines.common import (
    NO_CAPACITY,
    NOT_DUE,
    STALE_AFTER_S,
    decided,
    fresh_rate,
    hold,
)

POLICY = "hpa"

# Reason codes.
NO_METRICS = "no_metrics"  # no ready replica reports the metric (upstream: an error, no scale)
WITHIN_TOLERANCE = "within_tolerance"
RATIO_UP = "ratio_up"
RATIO_DOWN = "ratio_down"
MISSING_PODS_HOLD = "missing_pods_hold"  # missing pods flip the direction or land in the dead-band
STABILISED_DOWN = "stabilised_down"
STABILISED_UP = "stabilised_up"
SCALE_UP_LIMITED = "scale_up_limited"
SCALE_DOWN_LIMITED = "scale_down_limited"
BOUNDED_MIN = "bounded_min"
BOUNDED_MAX = "bounded_max"

METRICS = ("rps", "utilisation")
EPS = 1e-9


@dataclass(frozen=True)
class HpaConfig:
    """Every default below is upstream's unless marked otherwise."""

    metric: str = "rps"  # rps (Pods metric) | utilisation (rate / capacity_rps)
    target_rps_per_replica: float = 10.0  # not upstream (no default exists): the HPA spec's target
    target_utilisation_ratio: float = 0.8  # averageUtilization 80 (CPU's customary target)
    min_replicas: int = 1  # HPA spec.minReplicas defaults to 1
    max_replicas: int = 100  # spec.maxReplicas is required upstream; example value
    # --horizontal-pod-autoscaler-tolerance (kube-controller-manager), default 0.1
    tolerance_ratio: float = 0.1
    # --horizontal-pod-autoscaler-sync-period, default 15 s
    sync_period_s: float = 15.0
    # --horizontal-pod-autoscaler-downscale-stabilization, default 5 m (behavior.scaleDown
    # .stabilizationWindowSeconds unset -> this flag)
    down_window_s: float = 300.0
    # behavior.scaleUp.stabilizationWindowSeconds default 0 (pkg/apis/autoscaling/v2/defaults.go)
    up_window_s: float = 0.0
    # behavior.scaleUp default policies (defaults.go): {Pods: 4, periodSeconds: 15},
    # {Percent: 100, periodSeconds: 15}, selectPolicy Max
    up_pods: int = 4
    up_percent: float = 100.0
    up_period_s: float = 15.0
    # behavior.scaleDown default policy: {Percent: 100, periodSeconds: 15}, selectPolicy Max
    down_percent: float = 100.0
    down_period_s: float = 15.0
    stale_after_s: float = STALE_AFTER_S  # not upstream; see common.py

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "hpa")

        if self.metric not in METRICS:
            bad("metric", self.metric, " | ".join(METRICS))
        if not (self.target_rps_per_replica > 0 and math.isfinite(self.target_rps_per_replica)):
            bad("target_rps_per_replica", self.target_rps_per_replica, "a finite number > 0")
        if not (0 < self.target_utilisation_ratio <= 1):
            bad("target_utilisation_ratio", self.target_utilisation_ratio, "(0, 1]")
        if self.min_replicas < 1:
            bad("min_replicas", self.min_replicas, ">= 1")
        if self.max_replicas < self.min_replicas:
            bad("max_replicas", self.max_replicas, f">= min_replicas ({self.min_replicas})")
        if not (0 <= self.tolerance_ratio < 1):
            bad("tolerance_ratio", self.tolerance_ratio, "[0, 1)")
        for key in ("sync_period_s", "up_period_s", "down_period_s"):
            if not (getattr(self, key) > 0):
                bad(key, getattr(self, key), "seconds > 0")
        for key in ("down_window_s", "up_window_s"):
            if not (getattr(self, key) >= 0):
                bad(key, getattr(self, key), "seconds >= 0")


@dataclass(frozen=True)
class HpaState:
    last_sync_s: float | None = None
    recommendations: tuple[tuple[float, int], ...] = ()  # (ts, unstabilised desired) per sync
    scale_events: tuple[tuple[float, int], ...] = ()  # (ts, replicas added (+) or removed (-))


def ratio_replicas(
    rate_rps: float, ready: int, pods: int, current: int, target_rps: float, tolerance_ratio: float
) -> tuple[int, str, float]:
    """Step 1 (calcPlainMetricReplicas): (desired, reason, usage ratio). `pods` >= `ready` are the
    replicas that exist; the ones not ready are "missing" (no metrics yet)."""
    # Upstream computes in integer milli-units; the 1e-9 keeps float rounding from moving a
    # ratio of exactly 1.1 out of the dead-band or ceil(10.0000000001) to 11.
    ratio = rate_rps / ready / target_rps
    missing = pods - ready
    if missing == 0:
        if abs(1.0 - ratio) <= tolerance_ratio + EPS:
            return current, WITHIN_TOLERANCE, ratio
        return math.ceil(ratio * ready - EPS), (RATIO_UP if ratio > 1 else RATIO_DOWN), ratio
    # Scale-down: missing pods use exactly the target; scale-up (ratio >= 1): they use 0.
    filled = rate_rps + (missing * target_rps if ratio < 1.0 else 0.0)
    new_ratio = filled / pods / target_rps
    if (
        abs(1.0 - new_ratio) <= tolerance_ratio + EPS
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current, MISSING_PODS_HOLD, new_ratio
    desired = math.ceil(new_ratio * pods - EPS)
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current, MISSING_PODS_HOLD, new_ratio
    return desired, (RATIO_UP if new_ratio > 1 else RATIO_DOWN), new_ratio


def _up_limit(current: int, events: tuple[tuple[float, int], ...], now_s: float, cfg: HpaConfig) -> int:
    """calculateScaleUpLimitWithScalingRules with the default policies, selectPolicy Max."""
    added = sum(d for ts, d in events if d > 0 and ts > now_s - cfg.up_period_s)
    start = current - added
    limit = max(start + cfg.up_pods, math.ceil(start * (1 + cfg.up_percent / 100.0)))
    return max(limit, current)  # upstream: never a limit below the current count


def _down_limit(current: int, events: tuple[tuple[float, int], ...], now_s: float, cfg: HpaConfig) -> int:
    """calculateScaleDownLimitWithBehaviors with the default policy (int32() truncates)."""
    removed = -sum(d for ts, d in events if d < 0 and ts > now_s - cfg.down_period_s)
    start = current + removed
    limit = int(start * (1 - cfg.down_percent / 100.0))
    return min(limit, current)


def decide_hpa(snap: ModelSnapshot, state: HpaState, cfg: HpaConfig) -> tuple[Decision, HpaState]:
    now = snap.now_s
    if state.last_sync_s is not None and now - state.last_sync_s < cfg.sync_period_s - 1e-9:
        return hold(snap, POLICY, NOT_DUE), state
    # recordInitialRecommendation: the first sync remembers the running count, so the first
    # scale-down waits a whole down window.
    recs0 = state.recommendations if state.last_sync_s is not None else ((now, snap.current_replicas),)
    state = HpaState(now, recs0, state.scale_events)  # a sync happens now
    rate, why = fresh_rate(snap, cfg.stale_after_s)
    if rate is None:
        return hold(snap, POLICY, why or "no_data"), state
    if cfg.metric == "utilisation":
        if not (snap.capacity_rps and snap.capacity_rps > 0):
            return hold(snap, POLICY, NO_CAPACITY), state
        target_rps = cfg.target_utilisation_ratio * snap.capacity_rps
    else:
        target_rps = cfg.target_rps_per_replica
    ready = max(snap.ready_replicas, 0)
    if ready == 0:
        return hold(snap, POLICY, NO_METRICS), state
    current = snap.current_replicas
    pods = max(snap.observed_replicas, ready)
    desired, reason, ratio = ratio_replicas(rate, ready, pods, current, target_rps, cfg.tolerance_ratio)
    reasons = [reason]

    # Step 2: stabilisation over the recommendations of the windows (this one included).
    recs = tuple(
        (ts, r) for ts, r in state.recommendations if ts > now - max(cfg.down_window_s, cfg.up_window_s)
    )
    up_rec = min([desired] + [r for ts, r in recs if ts > now - cfg.up_window_s])
    down_rec = max([desired] + [r for ts, r in recs if ts > now - cfg.down_window_s])
    stabilised = min(max(current, up_rec), down_rec)
    if stabilised != desired:
        reasons.append(STABILISED_DOWN if stabilised > desired else STABILISED_UP)
    recs = recs + ((now, desired),)

    # Step 3: rate limits, then min/max.
    events = tuple(
        (ts, d) for ts, d in state.scale_events if ts > now - max(cfg.up_period_s, cfg.down_period_s)
    )
    final = stabilised
    if final > current:
        limit = min(_up_limit(current, events, now, cfg), cfg.max_replicas)
        if final > limit:
            final = limit
            reasons.append(BOUNDED_MAX if limit == cfg.max_replicas else SCALE_UP_LIMITED)
    elif final < current:
        limit = max(_down_limit(current, events, now, cfg), cfg.min_replicas)
        if final < limit:
            final = limit
            reasons.append(BOUNDED_MIN if limit == cfg.min_replicas else SCALE_DOWN_LIMITED)
    if final < cfg.min_replicas:  # e.g. current itself below the bounds
        final, reasons = cfg.min_replicas, reasons + [BOUNDED_MIN]
    elif final > cfg.max_replicas:
        final, reasons = cfg.max_replicas, reasons + [BOUNDED_MAX]
    if final != current:
        events = events + ((now, final - current),)

    inputs = {
        "rate_rps": rate,
        "ready_replicas": ready,
        "pods": pods,
        "current_replicas": current,
        "target_rps_per_replica": target_rps,
        "usage_ratio": round(ratio, 4),
        "desired_replicas": desired,
        "stabilised_replicas": stabilised,
    }
    decision = decided(snap, POLICY, desired, final, reasons, inputs)
    return decision, HpaState(now, recs, events)
