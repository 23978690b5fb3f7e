"""The simulator against reality: profile a real Triton replica (classifier-small) on this machine,
fit the simulated replica's batching curve to measured steps, then offer the real replica fresh
loads at 50 %, 70 % and 90 % of its capacity and compare the simulated latency with the
measured one.

Two comparisons, because a step of a batching replica is noisy by nature:
- on the same arrivals (the issue's 15 % at each load): the simulated replica's bulk-service
  queue is replayed on the very send times of the real steps (common random numbers). The fit
  is made the same way, on the sweep's and the fit's steps. This is the replica model's error;
- on fresh Poisson arrivals: the fleet simulator's steady-state table at the offered rate
  (what `bench autoscale` uses) against the measured median, within 35 % at 50 % and 70 % of
  capacity, printed at 90 %. A regression bound only: the median of 225 Poisson requests at
  70-90 % of a batching replica's capacity moves 16-20 % (sd) from one draw to the next (the
  exact queue simulated 300 times), so 15 % there would be a coin toss even for an exact model.
  At 90 % the steady state is not what a 5 s step from an empty replica sees either: the
  capacity is found on such steps (p99 within the SLO over 100 requests), so "90 %" was 86-93 %
  of the fitted replica's saturation rate, where the steady-state median (870 ms in one run
  here) is far above a short step's (450 ms). The table itself is checked against the exact
  queue in steady state by the unit tests (test_sim_batch_queue.py).

The replica gets a batching curve: BASE_MS per batch plus PER_ITEM_MS per request in it,
injected with the fault mechanism (a sleep in each `execute()`, sized by the batch Triton's
dynamic batcher formed). On this CPU-only box classifier-small answers in under a millisecond,
so without it the latency compared is the HTTP stack's and the scheduler's, not the replica's;
with it, Triton's real batcher and queue decide the latency, which is what the simulator models
(a GPU model's compute grows with the batch). The curve also caps the replica near 22 rps, far
below what the load generator and Triton's HTTP stack sustain on two busy cores: a flat 100 ms
per batch let batches of 64 reach hundreds of rps, so the capacity found was the CPU's, and it
swung from 31 to 300 rps with whatever else ran on the machine.

The profiler sends Poisson arrivals (as live traffic comes), so requests also wait for a batch in
progress. The latency compared is the median over each load's fresh steps: on this shared
2-core box a step's p99 is set by the operating system's scheduling spikes, which no model of
the replica can or should reproduce (the p99s are printed next to it).
"""

from __future__ import annotations

import statistics

import httpx
import pytest

import controlplane.capacity.profile as profile
from controlplane.capacity.model import Slo
from controlplane.capacity.profile import SweepOptions, measure_at, profile_replica
from controlplane.sim.calibrate import (
    MeasuredStep,
    fit_replica_to_steps,
    measured_quantile_ms,
    replayed_quantile_ms,
    steady_latency_ms,
)
from serving.faults import Faults

MODEL = "classifier-small"
BASE_MS = 30.0  # per batch, injected (see above)
PER_ITEM_MS = 45.0  # per request in the batch: at most 1000 / 45 = 22 rps
SLO_MS = 1000.0  # the curve's knee: ~300 ms at 20 rps, saturated by 22 rps
SAME_ARRIVALS_TOLERANCE_RATIO = 0.15  # the bound, at each load
STEADY_STATE_TOLERANCE_RATIO = 0.35  # fresh arrivals, at 50 % and 70 %: a regression bound (see above)
STEADY_STATE_CHECKED_UP_TO = 0.7
QUANTILE = 0.5  # the latency compared (see above)
FIT_FRACTIONS = (0.3, 0.45, 0.6, 0.75, 0.85, 1.0)  # one step each: 3 parameters for 6 points
CHECK_FRACTIONS = (0.5, 0.7, 0.9)
CHECK_REPEATS = 3  # fresh steps per checked load, pooled: one disturbed step is not the replica
STEP_REQUESTS = 100  # per step: the p99 (sweep) and quantiles of fewer swing from step to step
# The first requests of a step meet an empty replica; the simulator's latency is the steady
# state's (at 90 % load an empty start reads the median 10-20 % low over 80 requests).
WARMUP_REQUESTS = 25


@pytest.fixture
def step_latencies(monkeypatch):
    """Wrap the profiler's own step summary to keep each step, request by request, too."""
    steps: list[MeasuredStep] = []
    original = profile.point_from_results

    def keep(results, rate_rps, wall_s):
        sent = sorted(
            (r.sent_s if r.sent_s is not None else r.scheduled_s, r.index, r) for r in results
        )  # send order; a dropped request counts at its due time (it is not compared)
        steps.append(
            MeasuredStep(
                tuple(t for t, _, _ in sent),
                tuple(r.latency_ms if r.status == "ok" else None for _, _, r in sent),
                warmup=WARMUP_REQUESTS,
            )
        )
        return original(results, rate_rps, wall_s)

    monkeypatch.setattr(profile, "point_from_results", keep)
    return steps


def _measure(url, rate, opts, steps, repeats) -> tuple[list[MeasuredStep], float]:
    """(`repeats` fresh steps at rate, the median of their p99s)."""
    p99s = [measure_at(url, MODEL, rate, opts).p99_ms or float("nan") for _ in range(repeats)]
    return steps[-repeats:], statistics.median(p99s)


def test_simulated_latency_matches_a_real_replica_at_50_to_90_percent(fleet, step_latencies):
    replica = fleet.replicas[0]
    fleet.manager.set_faults(
        replica.name, Faults(added_latency_ms=BASE_MS, added_latency_per_item_ms=PER_ITEM_MS)
    )
    try:
        _check(replica.http_url, step_latencies)
    finally:
        fleet.manager.set_faults(replica.name, Faults())


def _check(url, steps):
    opts = SweepOptions(
        step_s=2.0, start_rps=6, max_rps=200, bisect_steps=3, min_requests=STEP_REQUESTS, arrivals="poisson"
    )
    sweep = profile_replica(url, MODEL, Slo(p99_ms=SLO_MS), opts)
    cap = sweep.estimate.capacity_rps
    swept = [(p.offered_rps, p.achieved_rps, p.p99_ms, p.error_ratio) for p in sweep.steps]
    assert cap > 0, swept

    # The fit sees every step at or below the capacity, the sweep's included: a single step is
    # noisy, and more steps average that out.
    fit = [s for p, s in zip(sweep.steps, steps, strict=True) if p.offered_rps <= cap and not p.failed()]
    for r in (round(f * cap, 1) for f in FIT_FRACTIONS):
        fit += _measure(url, r, opts, steps, repeats=1)[0]
    max_batch = httpx.get(f"{url}/v2/models/{MODEL}/config", timeout=10).json()["max_batch_size"]
    model = fit_replica_to_steps(fit, q=QUANTILE, max_batch=max_batch)

    rows = []
    for frac in CHECK_FRACTIONS:
        rate = round(frac * cap, 1)
        checked, p99 = _measure(url, rate, opts, steps, CHECK_REPEATS)
        measured = measured_quantile_ms(checked, QUANTILE)
        same = replayed_quantile_ms(model, checked, QUANTILE)
        fresh = steady_latency_ms(model, rate, opts.step_s, q=QUANTILE)
        rows.append(
            (
                frac,
                rate,
                round(measured, 1),
                round(same, 1),
                _error(same, measured),
                round(fresh, 1),
                _error(fresh, measured),
                p99,
            )
        )
    detail = (
        f"capacity {cap:.1f} rps from (offered, achieved, p99, errors) {swept}; fitted {model} on "
        f"{len(fit)} steps; (fraction, rps, measured median ms, simulated on the same arrivals, error, "
        f"simulated steady state, error, measured p99 ms): {rows}"
    )
    print(detail)
    assert max(row[4] for row in rows) <= SAME_ARRIVALS_TOLERANCE_RATIO, detail
    assert (
        max(row[6] for row in rows if row[0] <= STEADY_STATE_CHECKED_UP_TO) <= STEADY_STATE_TOLERANCE_RATIO
    ), detail


def _error(simulated: float, measured: float) -> float:
    return round(abs(simulated - measured) / measured, 3)
