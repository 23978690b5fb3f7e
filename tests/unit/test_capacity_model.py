"""Capacity at an SLO from load-vs-latency points, and replicas for a forecast (table-driven)."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.capacity.model import (
    INTERPOLATED,
    LIMITED_BY_FAILURES,
    NO_USABLE_POINTS,
    SLO_MET_AT_ALL_LOADS,
    SLO_NEVER_MET,
    LoadPoint,
    Slo,
    capacity_at_slo,
    fit_monotone,
    predicted_latency_ms,
    replicas_for_quantile,
    replicas_needed,
)


def pts(*rows: tuple[float, float], errors: dict[float, float] | None = None) -> list[LoadPoint]:
    errors = errors or {}
    return [LoadPoint(r, r, p99, errors.get(r, 0.0), requests=100) for r, p99 in rows]


def test_fit_is_monotone_on_noisy_points():
    rng = np.random.default_rng(7)
    load = np.linspace(10, 400, 30)
    true = 2 + 0.00005 * load**2
    noisy = true + rng.normal(0, 1.0, load.size)
    assert np.any(np.diff(noisy) < 0)  # the raw points do dip
    curve = fit_monotone(load, noisy)
    assert np.all(np.diff(curve.latency_ms) >= 0)
    # The fit stays near the truth (within the noise) and keeps its shape.
    assert np.max(np.abs(np.array(curve.latency_ms) - true)) < 3.0
    assert curve.latency_ms[-1] > curve.latency_ms[0] + 4


def test_fit_merges_repeated_loads():
    curve = fit_monotone([10, 10, 20], [5.0, 7.0, 8.0])
    assert curve.load_rps == (10.0, 20.0) and curve.latency_ms == (6.0, 8.0)


@pytest.mark.parametrize(
    "points, slo_ms, want_rps, reason, lower_bound",
    [
        # p99 crosses 20 ms between 100 (10 ms) and 200 (30 ms): linear -> 150.
        (pts((50, 5), (100, 10), (200, 30), (400, 90)), 20, 150.0, INTERPOLATED, False),
        # A noisy dip (200 -> 9 ms) is pooled by the monotone fit: 100..200 fit 9.5 ms, 400 fit 50.
        (
            pts((50, 5), (100, 10), (200, 9), (400, 50)),
            30,
            200 + (30 - 9.5) / (50 - 9.5) * 200,
            INTERPOLATED,
            False,
        ),
        # SLO exactly at a measured point: that load.
        (pts((50, 5), (100, 10), (200, 30)), 10, 100.0, INTERPOLATED, False),
        # Never met: even the lowest load is too slow.
        (pts((50, 40), (100, 60)), 20, 0.0, SLO_NEVER_MET, False),
        # Always met: the highest measured load, flagged as a lower bound.
        (pts((50, 5), (100, 6), (200, 7)), 20, 200.0, SLO_MET_AT_ALL_LOADS, True),
        # Met up to 200, the 400 step erred: bounded by the failure, not a lower bound.
        (
            pts((50, 5), (100, 6), (200, 7), (400, 8), errors={400: 0.2}),
            20,
            200.0,
            LIMITED_BY_FAILURES,
            False,
        ),
        # Every step failed.
        (pts((50, 5), (100, 6), errors={50: 0.5, 100: 0.5}), 20, 0.0, NO_USABLE_POINTS, False),
        # Nothing measured.
        ([], 20, 0.0, NO_USABLE_POINTS, False),
    ],
)
def test_capacity_at_slo(points, slo_ms, want_rps, reason, lower_bound):
    est = capacity_at_slo(points, Slo(p99_ms=slo_ms))
    assert est.capacity_rps == pytest.approx(want_rps)
    assert est.reason == reason
    assert est.lower_bound is lower_bound


def test_a_replica_that_fell_behind_is_a_failure_not_a_fast_point():
    # At 400 rps offered only 200 came back: its (survivor) p99 says nothing about 400 rps.
    points = [LoadPoint(100, 100, 5.0), LoadPoint(200, 199, 8.0), LoadPoint(400, 200, 9.0)]
    est = capacity_at_slo(points, Slo(p99_ms=50))
    assert est.capacity_rps == 200 and est.reason == LIMITED_BY_FAILURES
    assert [p.offered_rps for p in est.failed_points] == [400]
    assert [p.offered_rps for p in est.points_used] == [100, 200]


def test_chat_capacity_is_the_tighter_of_ttft_and_itl():
    def chat(rps, ttft, itl):
        return LoadPoint(rps, rps, ttft + 15 * itl, 0.0, 50, ttft_p99_ms=ttft, itl_p99_ms=itl)

    points = [chat(1, 20, 5), chat(2, 30, 10), chat(4, 60, 40)]
    # TTFT 60 ms holds up to 4 rps; ITL 20 ms crosses at 2 + (20-10)/(40-10)*2 = 2.667 rps.
    est = capacity_at_slo(points, Slo(ttft_p99_ms=60, itl_p99_ms=20))
    assert est.capacity_rps == pytest.approx(2 + 2 / 3)
    assert est.limiting_metric == "itl_p99_ms" and est.reason == INTERPOLATED
    assert set(est.curves) == {"ttft_p99_ms", "itl_p99_ms"}


def test_the_fit_predicts_the_slo_holds_below_capacity():
    est = capacity_at_slo(pts((50, 5), (100, 10), (200, 30), (400, 90)), Slo(p99_ms=20))
    curve = est.curves["p99_ms"]
    assert predicted_latency_ms(curve, 0.8 * est.capacity_rps) <= 20
    assert predicted_latency_ms(curve, 1.2 * est.capacity_rps) > 20


@pytest.mark.parametrize("bad", [{}, {"p99_ms": 0}, {"p99_ms": float("nan")}, {"itl_p99_ms": -1}])
def test_slo_validation(bad):
    with pytest.raises(ValueError):
        Slo(**bad)


@pytest.mark.parametrize(
    "forecast, capacity, headroom, want",
    [
        (100, 50, 0.2, 3),  # 100 / 40 = 2.5 -> 3
        (80, 50, 0.2, 2),  # exactly 2 (float rounding must not make it 3)
        (81, 50, 0.2, 3),
        (100, 50, 0.0, 2),
        (0, 50, 0.2, 1),  # never below one replica
        (-5, 50, 0.2, 1),
        (1000, 100, 0.5, 20),
        (1, 1000, 0.9, 1),
    ],
)
def test_replicas_needed(forecast, capacity, headroom, want):
    assert replicas_needed(forecast, capacity, headroom) == want


@pytest.mark.parametrize(
    "forecast, capacity, headroom",
    [(100, 0, 0.2), (100, -1, 0.2), (100, 50, 1.0), (100, 50, -0.1), (float("inf"), 50, 0.2)],
)
def test_replicas_needed_rejects_bad_inputs(forecast, capacity, headroom):
    with pytest.raises(ValueError):
        replicas_needed(forecast, capacity, headroom)


def test_replicas_for_quantile():
    est = capacity_at_slo(pts((50, 5), (100, 10), (200, 30)), Slo(p99_ms=20))  # 150 rps
    forecast = {0.5: 300.0, 0.9: 500.0}
    p90 = replicas_for_quantile(forecast, 0.9, est, 0.2)  # 500 / 120 = 4.17 -> 5
    assert (p90.replicas, p90.reason, p90.forecast_rps) == (5, "ok", 500.0)
    assert replicas_for_quantile(forecast, 0.5, est, 0.2).replicas == 3  # 300 / 120 = 2.5
    missing = replicas_for_quantile(forecast, 0.99, est, 0.2)
    assert missing.replicas is None and missing.reason == "quantile_missing"
    never = capacity_at_slo(pts((50, 40)), Slo(p99_ms=20))
    assert replicas_for_quantile(forecast, 0.9, never, 0.2).reason == "no_capacity"
    lower = capacity_at_slo(pts((50, 5), (100, 6)), Slo(p99_ms=20))
    ans = replicas_for_quantile(forecast, 0.9, lower, 0.0)
    assert (ans.replicas, ans.reason) == (5, "capacity_lower_bound")
