"""Drive any replica policy through a simulated fleet, tick by tick.

Every policy sees the same `ModelSnapshot` the live loop builds (controlplane/policy/snapshot.py)
and answers a `Decision`; the simulator applies `final`. fleetpilot is `decide_replicas` itself
(controlplane/policy/replicas.py, rails included) with its forecast floor fed by a forecaster
from controlplane.forecast run on the simulated rate history; baselines are the `Baseline`
wrappers of controlplane/sim/baselines. No second implementation of any controller.

Per tick k (time [k*dt, (k+1)*dt)): failures -> queue and serve the tick's arrivals -> bill the
replicas -> at the tick's end build the snapshot from the telemetry so far (stable 60 s and
panic 6 s rate windows, queue, recent p99) -> decide -> scale.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controlplane.forecast.registry import default_forecasters
from controlplane.policy.decision import Decision
from controlplane.policy.replicas import ReplicaPolicyConfig, ReplicaPolicyState, decide_replicas, first_state
from controlplane.policy.snapshot import ModelSnapshot, forecast_at
from controlplane.sim.baselines import Baseline
from controlplane.sim.fleet import Fleet, FleetModel
from controlplane.sim.latency import LatencyGroups, rows_mean_ms
from controlplane.sim.metrics import SimResult
from controlplane.sim.workload import Workload


@dataclass(frozen=True)
class SimOptions:
    slo_ms: float = 2000.0
    capacity_rps: float | None = None  # one replica's capacity at the SLO, as the capacity model gives
    stable_window_s: float = 60.0  # snapshot.rate_rps window (Knative/HPA-style stable window)
    panic_window_s: float = 6.0  # snapshot.short_rate_rps window
    p99_window_s: float = 10.0  # snapshot.p99_ms: worst latency bound of the last ticks
    telemetry_lag_s: float = 1.0  # age of the newest sample a snapshot sees
    initial_replicas: int = 1
    seed: int = 0
    model: str = "sim"


# ---- policies ------------------------------------------------------------------------------


@dataclass
class ForecastFeed:
    """The forecaster side of the live loop: buckets of the observed rate, a forecast every
    bucket, and its p90 one startup ahead for the snapshot."""

    forecaster: Any  # anything with .forecast(values, timestamps_s, horizon_steps) -> Quantiles
    bucket_s: float = 60.0
    ahead_s: float = 60.0
    max_rows: int = 8640  # 6 days of 1-minute buckets: two daily seasons and some
    values: list[float] = field(default_factory=list)
    ts_s: list[float] = field(default_factory=list)
    p90_rps: float | None = None

    def add_bucket(self, start_s: float, rate_rps: float) -> None:
        self.values.append(rate_rps)
        self.ts_s.append(start_s)
        if len(self.values) > 2 * self.max_rows:  # trim now and then, not every bucket
            del self.values[: -self.max_rows]
            del self.ts_s[: -self.max_rows]
        y = np.asarray(self.values[-self.max_rows :])
        t = np.asarray(self.ts_s[-self.max_rows :])
        horizon = max(1, math.ceil(self.ahead_s / self.bucket_s - 1e-9))
        q = self.forecaster.forecast(y, t, horizon)
        self.p90_rps = forecast_at(q, self.bucket_s, self.ahead_s)


class Driver:
    """A policy bound to its state: decide(snapshot) -> Decision, every interval_s."""

    name: str
    feed: ForecastFeed | None = None
    interval_s: float = 1.0  # baselines keep their own cadence (HPA 15 s, KPA 2 s) inside
    reads_p99: bool = False  # the snapshot's p99 costs a quantile per decision: only for those who read it

    def decide(self, snap: ModelSnapshot) -> Decision:  # pragma: no cover - interface
        raise NotImplementedError


class BaselineDriver(Driver):
    def __init__(self, base: Baseline):
        self.name = base.name
        self.base = base
        self.state = base.initial_state

    def decide(self, snap: ModelSnapshot) -> Decision:
        decision, self.state = self.base.decide(snap, self.state)
        return decision


class FleetpilotDriver(Driver):
    """fleetpilot's own policy (decide_replicas with its rails), forecast floor from a feed."""

    def __init__(self, cfg: ReplicaPolicyConfig, feed: ForecastFeed | None, interval_s: float = 5.0):
        self.name = "fleetpilot"
        self.interval_s = interval_s  # the live loop's control.interval_s default
        self.reads_p99 = True  # its latency path
        self.cfg = cfg
        self.state: ReplicaPolicyState | None = None  # the first tick seeds it, as the live loop does
        self.feed = feed

    def decide(self, snap: ModelSnapshot) -> Decision:
        if self.state is None:
            self.state = first_state(snap.now_s, snap.current_replicas)
        decision, self.state = decide_replicas(snap, self.state, self.cfg)
        return decision


def forecaster_by_name(name: str) -> Any:
    registry = default_forecasters()
    if name not in registry:
        raise ValueError(f"unknown forecaster {name!r}; one of {', '.join(registry)}")
    return registry[name]


# ---- the loop ------------------------------------------------------------------------------


def _window_rate(cum: np.ndarray, k_end: int, window_ticks: int, tick_s: float) -> float:
    lo = max(0, k_end - window_ticks)
    n = k_end - lo
    return float(cum[k_end] - cum[lo]) / (n * tick_s) if n > 0 else 0.0


def _recent_p99_ms(cols: list[tuple], first: int, fleet: Fleet, now_s: float, tick_s: float) -> float | None:
    """p99 of the requests served in the recent window, as the live loop reads it from Triton's
    histograms; requests still queued count with their age so far (a stalled fleet reports its
    backlog's age, not silence)."""
    waiting = [
        (rem, 0.0, 0.0, 0.0, 0.0, 1000.0 * max(0.0, now_s - t - tick_s), 1000.0 * (now_s - t))
        for t, _, rem in fleet.queue
    ]
    rows = cols[first:] + waiting
    if not rows:
        return None
    groups = LatencyGroups.from_rows(rows)
    if groups.count.sum() <= 0:
        return None
    return groups.quantile_grid_ms(0.99)


def simulate(
    workload: Workload,
    driver: Driver,
    fleet_model: FleetModel,
    opts: SimOptions,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 3600,
) -> SimResult:
    """Run one policy over the whole workload; `progress(ticks_done)` now and then."""
    t0 = time.perf_counter()
    dt = workload.tick_s
    counts = workload.counts
    cum = np.concatenate([[0], np.cumsum(counts)])
    fleet = Fleet(fleet_model, opts.initial_replicas, seed=opts.seed)
    replica = fleet_model.replica
    stable_w = max(1, round(opts.stable_window_s / dt))
    panic_w = max(1, round(opts.panic_window_s / dt))
    lag_w = max(0, round(opts.telemetry_lag_s / dt))
    p99_w = max(1, round(opts.p99_window_s / dt))
    recent_start: deque[int] = deque(maxlen=p99_w)  # index into cols where each recent tick began
    feed = driver.feed
    bucket_w = max(1, round(feed.bucket_s / dt)) if feed is not None else 0
    decide_w = max(1, round(driver.interval_s / dt))

    cols: list[tuple] = []  # (count, extra_ms, svc_lo, svc_hi, p0, wait_lo, wait_hi)
    n = workload.ticks
    billed = np.empty(n, dtype=np.int64)
    ready_n = np.empty(n, dtype=np.int64)
    served_n = np.zeros(n)  # per-tick telemetry (store_writer.py turns it into Triton counters)
    latency_sum_ms = np.zeros(n)
    wait_sum_ms = np.zeros(n)
    queue_n = np.zeros(n)
    gpu_s = 0.0
    actions = 0
    cross_ms = fleet_model.cross_zone_ms
    for k in range(n):
        now = k * dt
        fleet.fail(now, dt)
        groups, spill, ready = fleet.serve(now, dt, float(counts[k]))
        served = sum(g[0] for g in groups)
        per_replica_rps = fleet.replica_load_rps or 0.0
        recent_start.append(len(cols))
        for count, p0, w_lo, w_hi in groups:
            rows = replica.latency_rows(per_replica_rps, p0, w_lo, w_hi)
            wait_sum_ms[k] += count * (1.0 - p0) * 0.5 * (w_lo + w_hi)  # the queue's part only
            latency_sum_ms[k] += count * (rows_mean_ms(rows) + spill * cross_ms)
            for share, row in rows:
                if spill > 0:
                    cols.append((count * share * (1 - spill), 0.0, *row))
                    cols.append((count * share * spill, cross_ms, *row))
                else:
                    cols.append((count * share, 0.0, *row))
        billed[k] = fleet.spec
        ready_n[k] = ready
        served_n[k] = served
        queue_n[k] = fleet.queue_len
        gpu_s += fleet.spec * dt

        end = now + dt
        if progress is not None and (k + 1) % progress_every == 0:
            progress(k + 1)
        if feed is not None and (k + 1) % bucket_w == 0:
            feed.add_bucket(end - bucket_w * dt, _window_rate(cum, k + 1, bucket_w, dt))
        if (k + 1) % decide_w:
            continue
        k_seen = k + 1 - lag_w  # telemetry lags by telemetry_lag_s
        mean_ms = None
        if k_seen >= 1:
            rate = _window_rate(cum, k_seen, stable_w, dt)
            short = _window_rate(cum, k_seen, panic_w, dt)
            age = opts.telemetry_lag_s
            lo = max(0, k_seen - decide_w)  # the requests served since the last snapshot
            done = float(served_n[lo:k_seen].sum())
            mean_ms = float(latency_sum_ms[lo:k_seen].sum()) / done if done > 0 else None
        else:
            rate = short = None
            age = None
        spec = fleet.spec
        snap = ModelSnapshot(
            now_s=end,
            model=opts.model,
            observed_replicas=spec,
            ready_replicas=fleet.ready(end),
            rate_rps=rate,
            rate_age_s=age,
            short_rate_rps=short,
            queue_len=fleet.queue_len,
            p99_ms=_recent_p99_ms(cols, recent_start[0], fleet, end, dt) if driver.reads_p99 else None,
            mean_latency_ms=mean_ms,
            slo_p99_ms=opts.slo_ms,
            forecast_p90_rps=feed.p90_rps if feed is not None else None,
            capacity_rps=opts.capacity_rps,
            spec_replicas=spec,
        )
        decision = driver.decide(snap)
        if decision.final is not None and decision.final != spec:
            fleet.scale_to(int(decision.final), end)
            actions += 1
    if progress is not None and n % progress_every:
        progress(n)

    for count, p0, w_lo, w_hi in fleet.unserved(n * dt, dt):
        cols.append((count, 0.0, replica.service_ms(1), replica.service_ms(1), p0, w_lo, w_hi))
    return SimResult(
        policy=driver.name,
        groups=LatencyGroups.from_rows(cols),
        gpu_s=gpu_s,
        scale_actions=actions,
        failures=fleet.failures,
        sim_s=n * dt,
        wall_s=time.perf_counter() - t0,
        replicas=billed,
        ready=ready_n,
        requests=float(counts.sum()),
        served=served_n,
        latency_sum_ms=latency_sum_ms,
        wait_sum_ms=wait_sum_ms,
        queue_len=queue_n,
        tick_s=dt,
    )
