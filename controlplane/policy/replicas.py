"""Replicas per model: a predictive floor plus a reactive path that only adds above it.

  floor     = replicas_needed(forecast p90 at now + startup, capacity, headroom)   (when both known)
  reactive  = max(load (or burst load) on capacity, queue, latency over SLO, panic on the short window)
  desired   = max(floor, reactive)       - with no capacity model: never below the current count

Backlog mode (backlog_drain_s set): the queue path sizes load + queue / backlog_drain_s, holds
every replica ordered while a real backlog drains, and is left out of the down window's memory
(Recommendation.hold_value), as is the latency path while requests queue; the latency path waits
latency_settle_s after a backlog or a start-up (its p99 is that backlog's echo).
forecast_max_lead_ratio caps how far the floor may lead the observed load. Burst load
(burst_window_s set): the load path sizes for a high quantile of the recent short-window rates,
not only the stable rate.

A surge (Knative's panic mode: the short-window rate >= panic_threshold_ratio x what the ready
replicas can carry) sizes from the short window, never scales down, and holds for panic_hold_s
after the last trigger. Missing or stale rate data is "no decision" (never a scale-down).
Then the rails (rails.py) apply, with a guard: a scale-down must leave replicas that carry the
load (worst of the stable and short rates) within capacity * (1 - headroom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from operator import itemgetter

from controlplane.capacity.model import replicas_needed
from controlplane.policy.decision import Decision
from controlplane.policy.rails import Clamp, RailsConfig, RailsState, Recommendation, apply_rails
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.validate import out_of_range

# Reason codes (stable; stored and shown).
NO_DATA = "no_data"
STALE_DATA = "stale_data"
FORECAST_FLOOR = "forecast_floor"  # the predictive floor set the count
NO_FORECAST = "no_forecast"
NO_CAPACITY = "no_capacity"  # no capacity model: hold, never scale down from load
LOAD_OVER_CAPACITY = "load_over_capacity"
LOAD_BELOW_CAPACITY = "load_below_capacity"
QUEUE_OVER_TARGET = "queue_over_target"
LATENCY_OVER_SLO = "latency_over_slo"
BURST_LOAD = "burst_load"  # recent short-window bursts, not the stable rate, set the load's count
SUSTAINED_LOAD = "sustained_load"  # every short window of the last sustained_window_s was above it
PANIC = "panic"  # a surge: sized from the short window, no scale-down
PANIC_HOLD = "panic_hold"  # still inside panic_hold_s of the last trigger
SCALE_DOWN_BLOCKED_CAPACITY = "scale_down_blocked_capacity"
SCALE_DOWN_LIMITED_CAPACITY = "scale_down_limited_capacity"
SCALE_DOWN_BLOCKED_NO_CAPACITY = "scale_down_blocked_no_capacity"
SCALE_DOWN_CAPACITY_OK = "scale_down_capacity_ok"


@dataclass(frozen=True)
class ReplicaPolicyConfig:
    headroom_ratio: float = 0.2  # keep this fraction of each replica's capacity spare
    stale_after_s: float = 30.0  # a rate sample older than this is stale: no decision
    queue_per_replica_target: float = 8.0  # queued requests per replica before adding one
    tolerance_ratio: float = 0.1  # dead-band around the queue and latency targets (HPA: 10 %)
    panic_threshold_ratio: float = 2.0  # short-window rate / ready capacity that starts a panic
    panic_hold_s: float = 60.0  # a panic lasts this long after its last trigger
    # Backlog mode (seconds; None: off, the queue / queue_per_replica_target rule). With a
    # capacity model the queue path asks for the replicas that carry the load AND clear the
    # queue within this long, ceil((max(rate, short) + queue / backlog_drain_s) / usable
    # capacity), against every replica ordered, not the ready ones (which re-ordered on every
    # tick of a start-up); that count is transient: the down window does not remember it.
    backlog_drain_s: float | None = None
    # Backlog mode: project the queue this far (seconds; the replica start-up time; None: no
    # projection) from the tick the backlog began. Replicas ordered then serve only after a
    # start-up, and meanwhile the queue grows by the load the ready ones cannot carry: sized on
    # today's queue, the order fell short, and a second order during the start-up came a
    # start-up later still (ServeGen's +20-70 % steps missed the SLO for 90-120 s, not 60 s).
    backlog_lead_s: float | None = None
    # Backlog mode: the latency path waits this long (seconds) after the last tick with a
    # backlog or a replica starting: a p99 window still holds the backlog's requests.
    latency_settle_s: float = 30.0
    # The forecast floor leads the observed load (the worse of the stable and short rates) by
    # at most this fraction (None: no limit). A p90 far above everything seen now is an
    # outage's possible end or a forecast gone wrong: holding it costs the whole outage, while
    # the reactive paths (panic, backlog) size for the load when it does come back.
    forecast_max_lead_ratio: float | None = None
    # Burst load (seconds; None: off). The load path sizes for the worse of the stable rate
    # and the burst_quantile_ratio quantile of the short-window rates of the last
    # burst_window_s. The stable window averages away bursts of a few seconds whose requests
    # queue past the SLO, and a replica starts more slowly than such a burst passes: the fleet
    # holds what recent bursts needed.
    burst_window_s: float | None = None
    burst_quantile_ratio: float = 0.93
    # Sustained load (seconds; None: off; needs burst_window_s). The load path also sizes for
    # the lowest short-window rate of the last sustained_window_s: a step up shows there within
    # seconds, while the stable window takes most of its length to cross a replica's capacity
    # and the burst quantile a tenth of the burst window. A minimum of several windows is
    # rarely lifted by noise alone.
    sustained_window_s: float | None = None
    rails: RailsConfig = field(default_factory=RailsConfig)

    def __post_init__(self) -> None:
        bad = partial(out_of_range, "replicas")

        if not (0 <= self.headroom_ratio < 1):
            bad("headroom_ratio", self.headroom_ratio, "[0, 1)")
        if self.backlog_drain_s is not None and not (
            self.backlog_drain_s > 0 and math.isfinite(self.backlog_drain_s)
        ):
            bad("backlog_drain_s", self.backlog_drain_s, "a finite number of seconds > 0, or None")
        if self.backlog_lead_s is not None and not (
            self.backlog_lead_s >= 0
            and math.isfinite(self.backlog_lead_s)
            and self.backlog_drain_s is not None
        ):
            bad(
                "backlog_lead_s", self.backlog_lead_s, "finite seconds >= 0 with backlog_drain_s set, or None"
            )
        if self.forecast_max_lead_ratio is not None and not (
            self.forecast_max_lead_ratio >= 0 and math.isfinite(self.forecast_max_lead_ratio)
        ):
            bad("forecast_max_lead_ratio", self.forecast_max_lead_ratio, "a finite number >= 0, or None")
        if self.burst_window_s is not None and not (
            self.burst_window_s > 0 and math.isfinite(self.burst_window_s)
        ):
            bad("burst_window_s", self.burst_window_s, "a finite number of seconds > 0, or None")
        if self.sustained_window_s is not None and not (
            self.burst_window_s is not None and 0 < self.sustained_window_s <= self.burst_window_s
        ):
            bad("sustained_window_s", self.sustained_window_s, "seconds in (0, burst_window_s], or None")
        if not (0 <= self.burst_quantile_ratio <= 1):
            bad("burst_quantile_ratio", self.burst_quantile_ratio, "[0, 1]")
        if not (self.latency_settle_s >= 0 and math.isfinite(self.latency_settle_s)):
            bad("latency_settle_s", self.latency_settle_s, "a finite number of seconds >= 0")
        for key in ("stale_after_s", "queue_per_replica_target", "panic_hold_s"):
            v = getattr(self, key)
            if not (v > 0 and math.isfinite(v)):
                bad(key, v, "a finite number > 0")
        if not (0 <= self.tolerance_ratio < 1):
            bad("tolerance_ratio", self.tolerance_ratio, "[0, 1)")
        if not (self.panic_threshold_ratio > 1 and math.isfinite(self.panic_threshold_ratio)):
            bad("panic_threshold_ratio", self.panic_threshold_ratio, "a finite number > 1")


@dataclass(frozen=True)
class ReplicaPolicyState:
    panic_until_s: float | None = None
    rails: RailsState = field(default_factory=RailsState)
    settle_from_s: float | None = None  # backlog mode: last tick with a backlog or a start-up
    short_rates: tuple[tuple[float, float], ...] = ()  # burst load: (now_s, short rate rps) in its window
    backlog_from_s: float | None = None  # backlog mode: first tick of the current queue


def first_state(now_s: float, current: int) -> ReplicaPolicyState:
    """A model seen for the first time (or after a restart) starts with the running count as its
    newest recommendation, so the first scale-down waits a whole stabilisation window (what
    Kubernetes' HPA does: recordInitialRecommendation). Without it a controller that has seen a
    few seconds of load would cut a fleet sized for more."""
    return ReplicaPolicyState(rails=RailsState(history=((now_s, current),)))


def backlog_replicas(
    snap: ModelSnapshot,
    cfg: ReplicaPolicyConfig,
    rate: float,
    short: float | None,
    cap: float,
    inputs: dict,
    backlog_from_s: float | None = None,
    sustained: float | None = None,
) -> tuple[list[int], list[str], bool]:
    """Backlog mode's queue path -> (transient counts, reasons, draining).

    Any queue: the replicas that carry the load (the worse of the two windows: a step up shows
    in the short one first) and clear the queue within backlog_drain_s. A real backlog (more
    than queue_per_replica_target per ready replica) also holds every replica ordered:
    cancelling one mid-start to re-order it later restarts its start-up.

    With backlog_lead_s, the queue drained is the one projected to the first order's start-up
    end, grown at the sustained load (a burst of a few seconds is over before any replica
    starts: projecting it ordered replicas for nothing)."""
    queue = float(snap.queue_len) if _known(snap.queue_len) else 0.0
    if queue <= 0:
        return [], [], False
    ready = max(snap.ready_replicas, 0)
    to_drain = queue
    if cfg.backlog_lead_s is not None and backlog_from_s is not None:
        remaining_s = cfg.backlog_lead_s - (snap.now_s - backlog_from_s)
        to_drain = projected_queue(queue, max(rate, sustained or 0.0), ready * cap, remaining_s)
        inputs["projected_queue_len"] = round(to_drain, 1)
    drain_rps = to_drain / cfg.backlog_drain_s  # type: ignore[operator]
    need = replicas_needed(max(rate, short or 0.0) + drain_rps, cap, cfg.headroom_ratio)
    inputs["queue_replicas"] = need
    draining = ready == 0 or queue / ready > cfg.queue_per_replica_target * (1 + cfg.tolerance_ratio)
    counts = [need, snap.current_replicas] if draining else [need]
    return counts, [QUEUE_OVER_TARGET] if need > snap.current_replicas else [], draining


def projected_queue(queue: float, load_rps: float, carry_rps: float, remaining_s: float) -> float:
    """The queue when replicas ordered at the backlog's start begin to serve, remaining_s from
    now: it grows by the load the ready replicas cannot carry (at their capacity at the SLO, a
    little below what they can serve flat out: an overestimate, cancelled once the queue is
    gone)."""
    return queue + max(load_rps - carry_rps, 0.0) * max(remaining_s, 0.0)


def burst_load(
    history: tuple[tuple[float, float], ...], now_s: float, short: float | None, cfg: ReplicaPolicyConfig
) -> tuple[tuple[tuple[float, float], ...], float | None]:
    """-> (the short-window rates of the last burst_window_s, now's included; their
    burst_quantile_ratio, None when burst load is off or nothing was seen)."""
    if cfg.burst_window_s is None:
        return (), None
    since = now_s - cfg.burst_window_s
    lo, hi = 0, len(history)  # time-ordered: trim both ends (older than the window, now's own)
    while lo < hi and history[lo][0] <= since:
        lo += 1
    while hi > lo and history[hi - 1][0] >= now_s:
        hi -= 1
    kept = history[lo:hi] + (((now_s, short),) if short is not None else ())
    if not kept:
        return kept, None
    rates = sorted(map(itemgetter(1), kept))
    return kept, rates[min(len(rates) - 1, int(cfg.burst_quantile_ratio * len(rates)))]


def sustained_load(
    short_rates: tuple[tuple[float, float], ...], now_s: float, cfg: ReplicaPolicyConfig
) -> float | None:
    """The lowest short-window rate of the last sustained_window_s (None: off, or that span not
    yet covered: the minimum of a partial window would be a shorter, noisier one)."""
    if cfg.sustained_window_s is None or not short_rates:
        return None
    since = now_s - cfg.sustained_window_s
    if short_rates[0][0] > since:
        return None
    return min(r for t, r in short_rates if t >= since)


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x >= 0


def recommend_replicas(
    snap: ModelSnapshot, state: ReplicaPolicyState, cfg: ReplicaPolicyConfig
) -> tuple[Recommendation, ReplicaPolicyState]:
    """The raw policy (before the rails)."""
    current = snap.current_replicas
    ready = max(snap.ready_replicas, 0)
    inputs: dict = {
        "current_replicas": current,
        "observed_replicas": snap.observed_replicas,
        "ready_replicas": ready,
        "rate_rps": snap.rate_rps,
        "rate_age_s": snap.rate_age_s,
        "short_rate_rps": snap.short_rate_rps,
        "queue_len": snap.queue_len,
        "p99_ms": snap.p99_ms,
        "slo_p99_ms": snap.slo_p99_ms,
        "forecast_p90_rps": snap.forecast_p90_rps,
        "capacity_rps": snap.capacity_rps,
        "headroom_ratio": cfg.headroom_ratio,
    }
    if not _known(snap.rate_rps) or snap.rate_age_s is None:
        return Recommendation(None, (NO_DATA,), inputs, confidence_ratio=0.0), state
    if not (snap.rate_age_s <= cfg.stale_after_s):  # NaN counts as stale too
        inputs["stale_after_s"] = cfg.stale_after_s
        return Recommendation(None, (STALE_DATA,), inputs, confidence_ratio=0.0), state
    rate = float(snap.rate_rps)  # type: ignore[arg-type]
    short = float(snap.short_rate_rps) if _known(snap.short_rate_rps) else None
    cap = float(snap.capacity_rps) if snap.capacity_rps and snap.capacity_rps > 0 else None
    reasons: list[str] = []
    candidates: list[int] = []

    # Predictive floor: forecast p90 one startup-time ahead.
    if cap is not None and _known(snap.forecast_p90_rps):
        floor_rps = float(snap.forecast_p90_rps)  # type: ignore[arg-type]
        if cfg.forecast_max_lead_ratio is not None:
            lead_cap_rps = max(rate, short or 0.0) * (1.0 + cfg.forecast_max_lead_ratio)
            if floor_rps > lead_cap_rps:
                inputs["forecast_lead_capped_rps"] = round(lead_cap_rps, 3)
                floor_rps = lead_cap_rps
        floor = replicas_needed(floor_rps, cap, cfg.headroom_ratio)
        inputs["floor_replicas"] = floor
    else:
        floor = None
        reasons.append(NO_CAPACITY if cap is None else NO_FORECAST)

    # Reactive path: each signal proposes a count; only the max counts.
    short_rates, burst = burst_load(state.short_rates, snap.now_s, short, cfg)
    sustained = sustained_load(short_rates, snap.now_s, cfg)
    if burst is not None:
        inputs["burst_rate_rps"] = round(burst, 3)
    if sustained is not None:
        inputs["sustained_rate_rps"] = round(sustained, 3)
    if cap is not None:
        load_need = replicas_needed(max(rate, burst or 0.0, sustained or 0.0), cap, cfg.headroom_ratio)
        inputs["load_replicas"] = load_need
        candidates.append(load_need)
        if load_need > replicas_needed(max(rate, sustained or 0.0), cap, cfg.headroom_ratio):
            reasons.append(BURST_LOAD)
        if load_need > replicas_needed(max(rate, burst or 0.0), cap, cfg.headroom_ratio):
            reasons.append(SUSTAINED_LOAD)
    else:
        candidates.append(current)  # without a capacity model load cannot justify a scale-down
    tol = cfg.tolerance_ratio
    backlog = cfg.backlog_drain_s is not None and cap is not None
    queued = _known(snap.queue_len) and float(snap.queue_len) > 0  # type: ignore[arg-type]
    backlog_from = None  # backlog mode: first tick of the current queue
    transient: list[int] = []  # backlog mode: counts that only clear a backlog (not remembered)
    settle_from = state.settle_from_s
    if backlog:
        if queued:
            backlog_from = state.backlog_from_s if state.backlog_from_s is not None else snap.now_s
        b_need, b_reasons, draining = backlog_replicas(
            snap, cfg, rate, short, cap, inputs, backlog_from, sustained
        )  # type: ignore[arg-type]
        transient += b_need
        reasons += b_reasons
        if draining or current > ready:
            settle_from = snap.now_s
    elif _known(snap.queue_len) and ready > 0:
        per_replica = float(snap.queue_len) / ready  # type: ignore[arg-type]
        inputs["queue_per_replica"] = round(per_replica, 3)
        if per_replica > cfg.queue_per_replica_target * (1 + tol):
            q_need = math.ceil(float(snap.queue_len) / cfg.queue_per_replica_target)  # type: ignore[arg-type]
            inputs["queue_replicas"] = q_need
            # From the ready count: replicas still starting will take their share of the
            # queue, so a lagging signal does not add one more every tick while they start.
            candidates.append(max(q_need, ready + 1))
            reasons.append(QUEUE_OVER_TARGET)
    # Backlog mode: a p99 measured while replicas start or a backlog drains (or within
    # latency_settle_s of it) is that backlog's echo; the queue path already sized for it.
    settling = backlog and settle_from is not None and snap.now_s - settle_from < cfg.latency_settle_s + 1e-9
    if _known(snap.p99_ms) and snap.slo_p99_ms and snap.slo_p99_ms > 0 and not settling:
        ratio = float(snap.p99_ms) / snap.slo_p99_ms  # type: ignore[arg-type]
        inputs["latency_slo_ratio"] = round(ratio, 3)
        if ratio > 1 + tol:
            lat_need = max(math.ceil(max(ready, 1) * ratio), ready + 1)  # ready: see the queue path
            inputs["latency_replicas"] = lat_need
            # In backlog mode a p99 over the SLO while requests queue is a burst the queue path
            # already sized for: transient too, or the down window would hold it for minutes.
            (transient if backlog and queued else candidates).append(lat_need)
            reasons.append(LATENCY_OVER_SLO)

    # Panic (Knative): the short window against what the ready replicas can carry.
    panic_until = state.panic_until_s
    if short is not None:
        if cap is not None:
            carry_rps = max(ready, 1) * cap
            trigger = short >= cfg.panic_threshold_ratio * carry_rps
            panic_need = replicas_needed(short, cap, cfg.headroom_ratio)
        else:  # no capacity model: a surge is the short window far above the stable one
            trigger = rate > 0 and short >= cfg.panic_threshold_ratio * rate
            panic_need = math.ceil(max(ready, 1) * short / rate) if rate > 0 else current
        if trigger:
            panic_until = snap.now_s + cfg.panic_hold_s
            reasons.append(PANIC)
        inputs["panic_replicas"] = panic_need
        if trigger or (panic_until is not None and snap.now_s < panic_until):
            candidates.append(panic_need)
    surge = panic_until is not None and snap.now_s < panic_until
    if surge and PANIC not in reasons:
        reasons.append(PANIC_HOLD)
    if not surge:
        panic_until = None
    if surge:
        candidates.append(current)  # in panic the count never goes down
    inputs["panic_until_s"] = panic_until

    held = max(candidates)
    reactive = max([held, *transient])
    desired = reactive if floor is None else max(floor, reactive)
    held = held if floor is None else max(floor, held)
    if floor is not None and floor >= reactive:
        reasons.insert(0, FORECAST_FLOOR)
    elif cap is not None:
        reasons.insert(0, LOAD_OVER_CAPACITY if reactive >= current else LOAD_BELOW_CAPACITY)
    inputs["desired_replicas"] = desired
    new_state = ReplicaPolicyState(
        panic_until_s=panic_until,
        rails=state.rails,
        settle_from_s=settle_from,
        short_rates=short_rates,
        backlog_from_s=backlog_from,
    )
    hold_value = held if held < desired else None
    return Recommendation(desired, tuple(reasons), inputs, surge=surge, hold_value=hold_value), new_state


def capacity_guard(snap: ModelSnapshot, cfg: ReplicaPolicyConfig):
    """Scale-down check: the replicas left carry the worst recent rate within
    capacity * (1 - headroom); otherwise stop at the smallest count that does."""

    def guard(value: int, current: int) -> Clamp:
        cap = snap.capacity_rps
        if not (cap and cap > 0):
            return Clamp(
                current, SCALE_DOWN_BLOCKED_NO_CAPACITY, "no capacity model: scale-down not checked, held"
            )
        rate = max(snap.rate_rps or 0.0, snap.short_rate_rps or 0.0)
        usable = cap * (1 - cfg.headroom_ratio)
        for n in range(value, current):
            if n >= 1 and rate / n <= usable:
                if n == value:
                    return Clamp(value, SCALE_DOWN_CAPACITY_OK, f"{n} replicas carry {rate:g} rps")
                return Clamp(
                    n, SCALE_DOWN_LIMITED_CAPACITY, f"stopped at {n}: {value} cannot carry {rate:g} rps"
                )
        return Clamp(
            current,
            SCALE_DOWN_BLOCKED_CAPACITY,
            f"held at {current}: {current - 1} replicas cannot carry {rate:g} rps at {usable:g} rps each",
        )

    return guard


def decide_replicas(
    snap: ModelSnapshot, state: ReplicaPolicyState, cfg: ReplicaPolicyConfig
) -> tuple[Decision, ReplicaPolicyState]:
    """One tick: policy -> rails -> (Decision, state). A no-decision leaves the rails untouched."""
    rec, state = recommend_replicas(snap, state, cfg)
    decision, rails_state = apply_rails(
        rec,
        model=snap.model,
        now_s=snap.now_s,
        current=snap.current_replicas,
        state=state.rails,
        cfg=cfg.rails,
        guard=capacity_guard(snap, cfg),
    )
    return decision, replace(state, rails=rails_state)
