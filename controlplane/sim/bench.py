"""The autoscaling benchmark: one trace, six policies, the same simulated fleet.

Every policy gets the same replica model, startup delay, SLO and one replica's capacity at the
SLO, found the way the real capacity model finds it: a load sweep of ONE simulated replica
(Poisson arrivals), fitted with controlplane.capacity.model.capacity_at_slo.

Baseline settings (upstream defaults live in each baseline's module; here only what the
benchmark must choose, because upstream has no default for it):
- hpa: Resource-style utilisation metric, rate / capacity against 0.8 (averageUtilization 80).
- kpa: concurrency metric (Knative's default); the per-replica target is the concurrency one
  replica holds at its capacity (capacity x service time, as a user would set it), times the
  upstream 70 % target utilisation.
- dynamo: sized from the same profiled replica: its curve (mean and p99 latency by load) is
  the planner's interpolator, so its correction factor works as upstream's does.
- static: ceil(peak / capacity), the peak of the load the oracle sees.
- oracle: knows the future load. Rate traces: the Poisson rate behind every tick (the capacity
  was profiled under Poisson arrivals, so rate / capacity is exactly what it needs). Token
  traces: the future arrivals averaged over a trailing window, the longest of
  ORACLE_WINDOWS_S whose run still meets the SLO target (longer windows are leaner): the
  least GPU-hours a clairvoyant policy of this shape needs for the SLO.
- every policy: max replicas far above the trace's need (upstream examples are 100); min 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from controlplane.capacity.model import CapacityEstimate, LoadPoint, Slo, capacity_at_slo
from controlplane.policy.rails import RailsConfig
from controlplane.policy.replicas import ReplicaPolicyConfig
from controlplane.sim.baselines import (
    DynamoConfig,
    HpaConfig,
    KpaConfig,
    OracleConfig,
    ProfileCurve,
    StaticConfig,
    baseline,
)
from controlplane.sim.calibrate import serve_one_replica
from controlplane.sim.fleet import Fleet, FleetModel
from controlplane.sim.latency import LatencyGroups, ReplicaModel
from controlplane.sim.run import (
    BaselineDriver,
    Driver,
    FleetpilotDriver,
    ForecastFeed,
    SimOptions,
    forecaster_by_name,
    simulate,
)
from controlplane.sim.workload import Workload, smoothed_rate_rps

POLICIES = ("fleetpilot", "hpa", "kpa", "dynamo", "static", "oracle")
BASELINES_TO_BEAT = ("hpa", "kpa", "dynamo")
TARGET_GPU_HOURS_VS_ORACLE = 1.15  # fleetpilot's bar: SLO_TARGET_RATIO attainment within this
ORACLE_WINDOWS_S = (60.0, 30.0, 10.0, 5.0)  # then the SLO itself (the last resort)
SLO_TARGET_RATIO = 0.995  # the attainment the oracle must meet


def fleetpilot_policy(
    max_replicas: int, capacity_rps: float, slo_ms: float, startup_s: float = 60.0
) -> ReplicaPolicyConfig:
    """fleetpilot's policy as the benchmark runs it, the same rule on every trace: the library
    defaults except
    - headroom_ratio 0: the capacity it is given is already the capacity AT the SLO, profiled
      on one replica under Poisson arrivals, so the queueing margin of Poisson load is inside
      it (a pooled fleet has less relative noise than that one replica), and burst load (the
      live loop's default, 900 s at the 0.93 quantile) sizes for load burstier than Poisson.
      0.9 was 3 % cheaper on Azure code (0.9969 at 1.061x the oracle's GPU-hours against
      0.9978 at 1.093x) and 0.3-0.5 % on ServeGen, but missed the bar on the trace's first
      32 minutes (0.9940: one scale-down before a 2x burst); 0.91-0.92 missed it too, 0.93
      and 0.95 held 0.9991 there; 0.95 cost 1.111x on the whole trace. Headroom 0.05 on top
      cost 5 % more GPU-hours on every dev trace, 0.2 cost 25 %;
    - queue_per_replica_target = what one replica serves within the SLO (capacity x SLO): a
      queue the ready replicas clear within the SLO needs no replica that starts a minute later
      (the library's 8 requests suits a ~100 rps classifier, not a ~15 rps LLM replica);
    - rails max_down_ratio 0.5 (Knative's max scale-down rate 2 per step; the library default
      removes one replica per minute, far too slow for fleets of tens of replicas);
    - rails max_up_ratio 10 (Knative allows 1000x per step): with the library's 100 % per minute
      the recovery from an outage, 1 replica to the 11 the returning load needs, took two
      start-ups instead of one (m-small 0.9966 -> 0.9968 attainment, m-mid 0.9976 -> 0.9979, the
      same GPU-hours);
    - backlog_drain_s 30: a queue is sized as load + queue / 30 s against every replica
      ordered, instead of queue / target against the ready ones, which re-ordered on every
      tick of a start-up (8 -> 94 replicas for a 165 rps step); 10-60 s scored the same on the
      dev traces. The backlog part is not remembered by the 300 s down window;
    - sustained_window_s 18 and backlog_lead_s = the start-up (the live loop's defaults:
      control.sustained_window_s, control.project_backlog): a step up is sized once three 6 s
      windows show it, and a backlog's first order drains the queue it will find when it
      serves. ServeGen m-mid 0.99705 -> 0.99733 attainment, m-small 0.99568 -> 0.99600, for
      0.05-0.1 % more GPU-hours; the Azure traces unchanged. Most of ServeGen's remaining
      misses are requests that queued during the 60 s start-up after a +20-70 % step: only
      spare capacity held before the step would serve them;
    - forecast_max_lead_ratio 1.0 (the live loop's default): the p90 floor leads the observed
      load by at most 100 %; uncapped, ServeGen's outages held the full daily load for hours
      (p90 of "it may come back"), a quarter of m-mid's GPU-hours. 0.5 and 1.0 scored the same;
    - max_replicas raised to the fleet's size."""
    return ReplicaPolicyConfig(
        headroom_ratio=0.0,
        queue_per_replica_target=max(1.0, capacity_rps * slo_ms / 1000.0),
        backlog_drain_s=30.0,
        forecast_max_lead_ratio=1.0,
        burst_window_s=900.0,
        burst_quantile_ratio=0.93,
        sustained_window_s=18.0,
        backlog_lead_s=startup_s,
        rails=RailsConfig(max_replicas=max_replicas, max_down_ratio=0.5, max_up_ratio=10.0),
    )


@dataclass(frozen=True)
class BenchOptions:
    slo_ms: float = 2000.0
    startup_s: float = 60.0
    replica: ReplicaModel = ReplicaModel()
    zones: int = 1
    cross_zone_ms: float = 2.0
    mtbf_s: float = 0.0
    seed: int = 0
    forecaster: str = "seasonal_profile"
    forecast_bucket_s: float = 60.0
    policies: tuple[str, ...] = POLICIES
    fleetpilot: Callable[[int, float, float, float], ReplicaPolicyConfig] = field(default=fleetpilot_policy)

    def __post_init__(self) -> None:
        if not (self.slo_ms > 0 and math.isfinite(self.slo_ms)):
            raise ValueError(f"slo_ms={self.slo_ms} must be a finite number > 0")
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise ValueError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")

    def fleet_model(self) -> FleetModel:
        return FleetModel(self.replica, self.startup_s, self.zones, self.cross_zone_ms, self.mtbf_s)


def profile_replica_curve(
    replica: ReplicaModel, slo_ms: float, tick_s: float = 1.0, step_s: float = 600.0, seed: int = 0
) -> tuple[CapacityEstimate, ProfileCurve]:
    """Load sweep of one simulated replica (10 %..100 % of its max throughput, Poisson
    arrivals, step_s each) -> (capacity_at_slo, the curve), as `fleetpilot profile` does on a
    real one."""
    rng = np.random.default_rng(seed)
    points, means = [], []
    ticks = max(1, round(step_s / tick_s))
    for frac in np.arange(0.1, 1.0001, 0.05):
        offered = float(frac * replica.max_rps)
        fleet = Fleet(FleetModel(replica, startup_s=0.0), 1, seed=seed)
        cols = []
        served_total = 0.0
        for k, a in enumerate(rng.poisson(offered * tick_s, size=ticks)):
            rows, served = serve_one_replica(fleet, k * tick_s, tick_s, float(a))
            cols += rows
            served_total += served
        lat = LatencyGroups.from_rows(cols)
        points.append(
            LoadPoint(
                offered_rps=offered,
                achieved_rps=served_total / (ticks * tick_s),
                p99_ms=lat.quantile_ms(0.99),
                requests=int(lat.count.sum()),
            )
        )
        means.append(lat.mean_ms())
    curve = ProfileCurve(
        tuple(p.offered_rps for p in points), tuple(means), tuple(float(p.p99_ms) for p in points)
    )
    return capacity_at_slo(points, Slo(p99_ms=slo_ms)), curve


def profile_capacity(
    replica: ReplicaModel, slo_ms: float, tick_s: float = 1.0, step_s: float = 600.0, seed: int = 0
) -> CapacityEstimate:
    """The capacity at the SLO from profile_replica_curve's sweep."""
    return profile_replica_curve(replica, slo_ms, tick_s, step_s, seed)[0]


def service_time_s(replica: ReplicaModel, rate_rps: float) -> float:
    lo, hi = replica.service_bounds_ms(rate_rps)
    return 0.5 * (lo + hi) / 1000.0


def oracle_loads(workload: Workload, slo_ms: float) -> list[tuple[float | None, np.ndarray]]:
    """Candidate future loads for the oracle, leanest first: (window_s or None, rps per tick)."""
    if workload.intensity_rps is not None:
        return [(None, workload.intensity_rps)]
    windows = [w for w in ORACLE_WINDOWS_S if w > slo_ms / 1000.0] + [slo_ms / 1000.0]
    return [(w, smoothed_rate_rps(workload, w)) for w in windows]


def oracle_driver(
    workload: Workload, load_rps: np.ndarray, capacity_rps: float, opts: BenchOptions
) -> Driver:
    ts = tuple(float(k * workload.tick_s) for k in range(workload.ticks))
    max_replicas = max(16, 4 * math.ceil(float(load_rps.max()) / capacity_rps))
    cfg = OracleConfig(ts, tuple(load_rps.tolist()), capacity_rps, opts.startup_s, max_replicas=max_replicas)
    return BaselineDriver(baseline(cfg))


def build_drivers(
    workload: Workload,
    capacity_rps: float,
    opts: BenchOptions,
    peak_rps: float,
    curve: ProfileCurve | None = None,
) -> tuple[dict[str, Driver], dict]:
    """The non-oracle policies bound to this trace's fleet; plus the figures they were built from.
    `curve`: the profiled replica Dynamo's planner corrects against (None: no correction)."""
    static_cfg = StaticConfig.for_peak(peak_rps, capacity_rps)
    max_replicas = max(16, 4 * static_cfg.replicas)
    svc_s = service_time_s(opts.replica, capacity_rps)
    cfgs = {
        "hpa": HpaConfig(metric="utilisation", max_replicas=max_replicas),
        "kpa": KpaConfig(
            metric="concurrency",
            target_per_replica=capacity_rps * svc_s,
            service_time_s=svc_s,
            max_replicas=max_replicas,
        ),
        "dynamo": DynamoConfig(
            max_replicas=max_replicas,
            profile=curve,
        ),
        "static": static_cfg,
    }
    drivers: dict[str, Driver] = {}
    for name in opts.policies:
        if name == "oracle":
            continue
        if name == "fleetpilot":
            feed = ForecastFeed(
                forecaster_by_name(opts.forecaster), bucket_s=opts.forecast_bucket_s, ahead_s=opts.startup_s
            )
            drivers[name] = FleetpilotDriver(
                opts.fleetpilot(max_replicas, capacity_rps, opts.slo_ms, opts.startup_s), feed
            )
        else:
            drivers[name] = BaselineDriver(baseline(cfgs[name]))
    info = {"static_replicas": static_cfg.replicas, "max_replicas": max_replicas, "service_time_s": svc_s}
    return drivers, info


def initial_replicas(load_rps: np.ndarray, capacity_rps: float, startup_s: float, tick_s: float) -> int:
    """Every policy starts with what the oracle holds at t=0 (nobody starts cold)."""
    head = load_rps[: max(1, round((startup_s + 1) / tick_s))]
    return max(1, math.ceil(float(head.max()) / capacity_rps - 1e-9))


def dominates(a: dict, b: dict) -> bool:
    """Policy summary `a` is better than `b` on both measures at once: at least b's attainment
    on no more GPU-hours, and strictly better on one of them."""
    att_a, att_b, gh_a, gh_b = a["slo_attainment"], b["slo_attainment"], a["gpu_hours"], b["gpu_hours"]
    return att_a >= att_b and gh_a <= gh_b and (att_a > att_b or gh_a < gh_b)


def verdict(policies: dict) -> dict | None:
    """fleetpilot against its bar and against each baseline it must beat (None: not both run)."""
    fp = policies.get("fleetpilot")
    if fp is None or "oracle" not in policies:
        return None
    return {
        "meets_target": fp["slo_attainment"] >= SLO_TARGET_RATIO
        and fp["gpu_hours_vs_oracle"] <= TARGET_GPU_HOURS_VS_ORACLE,
        "dominates": {b: dominates(fp, policies[b]) for b in BASELINES_TO_BEAT if b in policies},
    }


def run_bench(
    workload: Workload,
    opts: BenchOptions,
    on_progress: Callable[[str, int], None] | None = None,
) -> dict:
    """The benchmark's JSON object: {"policies": {name: metrics}, "trace": {...}, "setup": {...}}."""
    est, curve = profile_replica_curve(opts.replica, opts.slo_ms, workload.tick_s, seed=opts.seed)
    if est.capacity_rps <= 0:
        raise ValueError(
            f"the replica never meets the SLO of {opts.slo_ms:g} ms (its latency alone is "
            f"{opts.replica.service_ms(1):g} ms or more); raise --slo-ms"
        )
    cap = est.capacity_rps
    fleet_model = opts.fleet_model()

    def progress_for(name: str) -> Callable[[int], None]:
        def progress(done: int) -> None:
            if on_progress is not None:
                on_progress(name, done)

        return progress

    def sim_options(load_rps: np.ndarray) -> SimOptions:
        return SimOptions(
            slo_ms=opts.slo_ms,
            capacity_rps=cap,
            initial_replicas=initial_replicas(load_rps, cap, opts.startup_s, workload.tick_s),
            seed=opts.seed,
        )

    # The oracle first: the leanest candidate load that still meets the SLO target.
    candidates = oracle_loads(workload, opts.slo_ms)
    oracle_res = None
    oracle_window = None
    load = candidates[-1][1]
    for window, load in candidates:
        driver = oracle_driver(workload, load, cap, opts)
        oracle_res = simulate(
            workload, driver, fleet_model, sim_options(load), progress=progress_for("oracle")
        )
        oracle_window = window
        if oracle_res.slo_attainment(opts.slo_ms) >= SLO_TARGET_RATIO:
            break
    assert oracle_res is not None
    peak_rps = float(load.max())
    drivers, info = build_drivers(workload, cap, opts, peak_rps, curve)
    results = {}
    for name, driver in drivers.items():
        results[name] = simulate(
            workload, driver, fleet_model, sim_options(load), progress=progress_for(name)
        )
    if "oracle" in opts.policies:
        results["oracle"] = oracle_res
    oracle_h = oracle_res.gpu_hours
    wall = sum(r.wall_s for r in results.values())
    summaries = {name: results[name].summary(opts.slo_ms, oracle_h) for name in opts.policies}
    return {
        "policies": summaries,
        # fleetpilot's bar (SLO_TARGET_RATIO within TARGET_GPU_HOURS_VS_ORACLE) and, per
        # baseline, whether it is better on attainment and GPU-hours at once
        "fleetpilot_verdict": verdict(summaries),
        "trace": {
            "name": workload.name,
            "requests": workload.total_requests,
            "duration_s": workload.duration_s,
            "tick_s": workload.tick_s,
        },
        "setup": {
            "slo_ms": opts.slo_ms,
            "startup_s": opts.startup_s,
            "replica_max_rps": round(opts.replica.max_rps, 3),
            "capacity_rps": round(cap, 3),
            "capacity_reason": est.reason,
            "static_replicas": info["static_replicas"],
            "initial_replicas": sim_options(load).initial_replicas,
            "oracle_load": "poisson_rate" if oracle_window is None else f"arrivals_mean_{oracle_window:g}s",
            "forecaster": opts.forecaster,
            "zones": opts.zones,
            "mtbf_s": opts.mtbf_s,
            "sim_s_per_wall_s": round(sum(r.sim_s for r in results.values()) / wall, 1) if wall > 0 else None,
        },
    }


__all__ = [
    "POLICIES",
    "BenchOptions",
    "ProfileCurve",
    "build_drivers",
    "dominates",
    "profile_capacity",
    "profile_replica_curve",
    "run_bench",
    "verdict",
]
