"""Knative Pod Autoscaler (KPA), with its upstream defaults (config-autoscaler ConfigMap).

Per tick (pkg/autoscaler/scaling/autoscaler.go, Scale()):
  stable = average of the samples over the stable window (60 s); panic = over the panic
  window (10 % of it: 6 s)
  dspc = ceil(stable / target), dppc = ceil(panic / target)   (target = per-replica target
  x utilisation), each clamped to [floor(ready / max_scale_down_rate), ceil(ready x
  max_scale_up_rate)]  (ready counts as 1 when 0)
  panic starts (or is extended) when dppc / ready >= panic threshold (200 %) and ends once
  no trigger has been seen for a stable window; in panic the count is max(dspc, dppc) and
  never goes down (the highest count of the panic is kept).
Then min/max scale bound it (the PodAutoscaler reconciler). Scale-to-zero, activation scale
and the activator (target burst capacity) are left out: min scale is 1 here.

Metric: concurrency (Knative's default) or rps. The snapshot has no in-flight count, so
concurrency is estimated by Little's law: queued requests + sample rate x service_time_s.
Each call adds one sample (the snapshot's short-window rate, else the stable rate); the
autoscaler scrapes every second upstream, so call it every simulated second - it decides
only every tick_s.
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
    known,
)

POLICY = "kpa"

# Reason codes.
STABLE_MODE = "stable_mode"
PANIC = "panic"  # over the panic threshold on this tick
PANIC_HOLD = "panic_hold"  # in panic, within a stable window of the last trigger
PANIC_NO_SCALE_DOWN = "panic_no_scale_down"  # in panic the count does not go down
SCALE_DOWN_RATE_LIMITED = "scale_down_rate_limited"
SCALE_UP_RATE_LIMITED = "scale_up_rate_limited"
BOUNDED_MIN = "bounded_min"
BOUNDED_MAX = "bounded_max"
NO_SERVICE_TIME = "no_service_time"  # concurrency metric without service_time_s

METRICS = ("concurrency", "rps")


@dataclass(frozen=True)
class KpaConfig:
    """Every default below is upstream's (config-autoscaler) unless marked otherwise."""

    metric: str = "concurrency"  # autoscaling.knative.dev/metric default: concurrency
    # container-concurrency-target-default 100 (concurrency) / requests-per-second-target-default
    # 200 (rps). None for rps: one replica's profiled capacity (snapshot.capacity_rps), since 200
    # rps means nothing for a given model (not upstream).
    target_per_replica: float | None = None
    # container-concurrency-target-percentage 70 (applies to the rps target too)
    utilisation_ratio: float = 0.7
    stable_window_s: float = 60.0  # stable-window 60s
    panic_window_s: float = 6.0  # panic-window-percentage 10.0 (of the stable window)
    panic_threshold_ratio: float = 2.0  # panic-threshold-percentage 200
    max_scale_up_rate: float = 1000.0  # max-scale-up-rate 1000
    max_scale_down_rate: float = 2.0  # max-scale-down-rate 2
    tick_s: float = 2.0  # tick-interval 2s
    min_replicas: int = 1  # min-scale 0 upstream (scale to zero); 1 here, as the brief fixes
    max_replicas: int = 100  # max-scale 0 (unbounded) upstream; bounded here
    service_time_s: float | None = None  # not upstream: for the Little's-law concurrency estimate
    stale_after_s: float = STALE_AFTER_S  # not upstream; see common.py

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "kpa")

        if self.metric not in METRICS:
            bad("metric", self.metric, " | ".join(METRICS))
        if self.target_per_replica is not None and not (self.target_per_replica > 0):
            bad("target_per_replica", self.target_per_replica, "> 0 or None")
        if not (0 < self.utilisation_ratio <= 1):
            bad("utilisation_ratio", self.utilisation_ratio, "(0, 1]")
        if not (0 < self.panic_window_s <= self.stable_window_s):
            bad("panic_window_s", self.panic_window_s, f"(0, stable_window_s={self.stable_window_s}]")
        if not (self.panic_threshold_ratio > 1):
            bad("panic_threshold_ratio", self.panic_threshold_ratio, "> 1")
        if not (self.max_scale_up_rate > 1):
            bad("max_scale_up_rate", self.max_scale_up_rate, "> 1")
        if not (self.max_scale_down_rate > 1):
            bad("max_scale_down_rate", self.max_scale_down_rate, "> 1")
        if not (self.tick_s > 0):
            bad("tick_s", self.tick_s, "seconds > 0")
        if self.min_replicas < 1:
            bad("min_replicas", self.min_replicas, ">= 1")
        if self.max_replicas < self.min_replicas:
            bad("max_replicas", self.max_replicas, f">= min_replicas ({self.min_replicas})")
        if self.service_time_s is not None and not (self.service_time_s > 0):
            bad("service_time_s", self.service_time_s, "seconds > 0 or None")


@dataclass(frozen=True)
class KpaState:
    samples: tuple[tuple[float, float], ...] = ()  # (ts, observed value), the stable window
    last_tick_s: float | None = None
    panic_since_s: float | None = None  # upstream panicTime: the LAST trigger (None: stable)
    max_panic_replicas: int = 0


def window_average(samples: tuple[tuple[float, float], ...], now_s: float, window_s: float) -> float | None:
    """Mean of the samples in (now - window, now]; None when there are none."""
    vals = [v for ts, v in samples if now_s - window_s < ts <= now_s]
    return sum(vals) / len(vals) if vals else None


def _sample(snap: ModelSnapshot, rate: float, cfg: KpaConfig) -> float:
    r = float(snap.short_rate_rps) if known(snap.short_rate_rps) else rate  # type: ignore[arg-type]
    if cfg.metric == "rps":
        return r
    queued = float(snap.queue_len) if known(snap.queue_len) else 0.0  # type: ignore[arg-type]
    return queued + r * (cfg.service_time_s or 0.0)


def decide_kpa(snap: ModelSnapshot, state: KpaState, cfg: KpaConfig) -> tuple[Decision, KpaState]:
    now = snap.now_s
    rate, why = fresh_rate(snap, cfg.stale_after_s)
    if rate is None:  # no sample this second (upstream: the window just misses a bucket)
        return hold(snap, POLICY, why or "no_data"), state
    if cfg.metric == "concurrency" and cfg.service_time_s is None:
        return hold(snap, POLICY, NO_SERVICE_TIME), state
    samples = tuple((ts, v) for ts, v in state.samples if ts > now - cfg.stable_window_s)
    samples = samples + ((now, _sample(snap, rate, cfg)),)
    state = KpaState(samples, state.last_tick_s, state.panic_since_s, state.max_panic_replicas)
    if state.last_tick_s is not None and now - state.last_tick_s < cfg.tick_s - 1e-9:
        return hold(snap, POLICY, NOT_DUE), state

    if cfg.target_per_replica is not None:
        per_replica = cfg.target_per_replica
    elif cfg.metric == "concurrency":
        per_replica = 100.0
    elif snap.capacity_rps and snap.capacity_rps > 0:
        per_replica = float(snap.capacity_rps)
    else:
        return hold(snap, POLICY, NO_CAPACITY), KpaState(
            samples, now, state.panic_since_s, state.max_panic_replicas
        )
    target = per_replica * cfg.utilisation_ratio

    stable = window_average(samples, now, cfg.stable_window_s) or 0.0
    panic = window_average(samples, now, cfg.panic_window_s) or 0.0
    ready = max(1.0, float(snap.ready_replicas))  # upstream: "use 1 if there are zero current pods"
    max_up = math.ceil(cfg.max_scale_up_rate * ready)
    max_down = math.floor(ready / cfg.max_scale_down_rate)
    dspc = math.ceil(stable / target - 1e-9)
    dppc = math.ceil(panic / target - 1e-9)
    stable_count = int(min(max(dspc, max_down), max_up))
    panic_count = int(min(max(dppc, max_down), max_up))
    reasons: list[str] = []
    if dspc < max_down:
        reasons.append(SCALE_DOWN_RATE_LIMITED)
    elif dspc > max_up:
        reasons.append(SCALE_UP_RATE_LIMITED)

    over = dppc / ready >= cfg.panic_threshold_ratio
    panic_since, max_panic = state.panic_since_s, state.max_panic_replicas
    if over:
        panic_since = now  # start, or extend, the panic
    elif panic_since is not None and panic_since + cfg.stable_window_s < now:
        panic_since, max_panic = None, 0  # the surge has made it into the stable window

    desired = stable_count
    if panic_since is not None:
        desired = max(stable_count, panic_count)
        reasons.insert(0, PANIC if over else PANIC_HOLD)
        if desired < max_panic:
            reasons.append(PANIC_NO_SCALE_DOWN)
        max_panic = max(max_panic, desired)
        desired = max_panic
    else:
        reasons.insert(0, STABLE_MODE)

    final = desired
    if final < cfg.min_replicas:
        final = cfg.min_replicas
        reasons.append(BOUNDED_MIN)
    elif final > cfg.max_replicas:
        final = cfg.max_replicas
        reasons.append(BOUNDED_MAX)
    inputs = {
        "stable_value": round(stable, 4),
        "panic_value": round(panic, 4),
        "target_per_replica": target,
        "ready_replicas": snap.ready_replicas,
        "desired_stable_replicas": stable_count,
        "desired_panic_replicas": panic_count,
        "max_scale_down_to": max_down,
        "panic_since_s": panic_since,
    }
    decision = decided(snap, POLICY, desired, final, reasons, inputs)
    return decision, KpaState(samples, now, panic_since, max_panic)
