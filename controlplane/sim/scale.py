"""The scale check: a fleet of many replicas over a simulated day, driven by fleetpilot's policy.

A daily cycle (peak at what `replicas` replicas carry at the policy's headroom, trough at 20 % of it) with Poisson
arrivals, replicas spread over zones and failing at random; the result says how many simulated
seconds ran per wall second, so a longer run can be extrapolated.
"""

from __future__ import annotations

import math

import numpy as np

from controlplane.sim.bench import BenchOptions, profile_capacity
from controlplane.sim.fleet import FleetModel
from controlplane.sim.run import FleetpilotDriver, ForecastFeed, SimOptions, forecaster_by_name, simulate
from controlplane.sim.workload import Workload

DAY_S = 86_400.0


def diurnal_workload(peak_rps: float, duration_s: float, tick_s: float = 1.0, seed: int = 0) -> Workload:
    """Poisson arrivals at peak * (0.6 - 0.4 cos(2 pi t / day)): trough 20 %, peak at noon."""
    if not (peak_rps > 0 and duration_s > 0):
        raise ValueError(f"peak_rps={peak_rps} and duration_s={duration_s} must be > 0")
    ticks = max(1, math.ceil(duration_s / tick_s))
    t = (np.arange(ticks) + 0.5) * tick_s
    rate = peak_rps * (0.6 - 0.4 * np.cos(2 * np.pi * t / DAY_S))
    counts = np.random.default_rng(seed).poisson(rate * tick_s).astype(np.int64)
    return Workload("diurnal", tick_s, counts, rate)


def scale_run(
    replicas: int,
    duration_s: float,
    zones: int = 3,
    mtbf_s: float = DAY_S,
    startup_s: float = 60.0,
    tick_s: float = 1.0,
    seed: int = 0,
    progress=None,
) -> dict:
    opts = BenchOptions(startup_s=startup_s, zones=zones, mtbf_s=mtbf_s, seed=seed)
    cap = profile_capacity(opts.replica, opts.slo_ms, tick_s, seed=seed).capacity_rps
    policy = opts.fleetpilot(max(16, 2 * replicas), cap, opts.slo_ms, opts.startup_s)
    usable = cap * (1.0 - policy.headroom_ratio)
    peak = replicas * usable  # what `replicas` replicas carry at the policy's headroom
    workload = diurnal_workload(peak, duration_s, tick_s, seed)
    start = max(1, math.ceil(float(workload.intensity_rps[:60].max()) / usable))
    feed = ForecastFeed(forecaster_by_name(opts.forecaster), bucket_s=60.0, ahead_s=startup_s)
    driver = FleetpilotDriver(policy, feed)
    model = FleetModel(opts.replica, startup_s, zones, opts.cross_zone_ms, mtbf_s)
    res = simulate(
        workload,
        driver,
        model,
        SimOptions(slo_ms=opts.slo_ms, capacity_rps=cap, initial_replicas=start),
        progress=progress,
    )
    return {
        "replicas_peak": int(res.replicas.max()),
        "replicas_mean": round(float(res.replicas.mean()), 1),
        "sim_s": res.sim_s,
        "wall_s": round(res.wall_s, 2),
        "sim_s_per_wall_s": round(res.sim_s / res.wall_s, 1),
        "wall_s_for_24h": round(DAY_S / (res.sim_s / res.wall_s), 1),
        "requests": int(res.requests),
        "failures": res.failures,
        "slo_attainment": round(res.slo_attainment(opts.slo_ms), 6),
        "gpu_hours": round(res.gpu_hours, 1),
        "scale_actions": res.scale_actions,
        "zones": zones,
        "mtbf_s": mtbf_s,
    }
