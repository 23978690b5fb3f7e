"""Dynamo-planner-like baseline: 180 s cadence, predictors, sizing from profiled capacity."""

import pytest

from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.dynamo import (
    DynamoConfig,
    DynamoState,
    ProfileCurve,
    corrected_capacity,
    correction_from,
    decide_dynamo,
    predict_next,
)


def snap(now_s, rps, capacity_rps=30.0, current=1, age=1.0):
    return ModelSnapshot(
        now_s=now_s,
        model="m",
        observed_replicas=current,
        ready_replicas=current,
        rate_rps=rps,
        rate_age_s=age,
        capacity_rps=capacity_rps,
        spec_replicas=current,
    )


def test_decides_every_180s_only():
    cfg = DynamoConfig(predictor="constant")
    s = DynamoState()
    decided_at = []
    # t=0..400, one call per second at 100 rps, capacity 30 rps per replica
    for t in range(0, 401):
        d, s = decide_dynamo(snap(t, 100.0), s, cfg)
        if d.final is not None:
            decided_at.append((t, d.final))
        else:
            assert d.reason_codes == ["not_due"], t
    # t=0 opens the first interval; decisions at 180 and 360: ceil(100 / 30) = 4
    assert decided_at == [(180, 4), (360, 4)]


def test_constant_predictor_uses_the_last_interval_average():
    cfg = DynamoConfig(predictor="constant")
    s = DynamoState()
    # t=0..179: 60 rps ; t=180: the interval closes; its average (180 x 60 + 1 x 60) / 181 = 60
    for t in range(0, 180):
        _, s = decide_dynamo(snap(t, 60.0), s, cfg)
    d, s = decide_dynamo(snap(180, 60.0), s, cfg)
    assert d.final == 2 and d.inputs["predicted_rps"] == 60.0
    # t=181..360: 150 rps -> the next decision sizes for 150: 5 replicas; before it, no change
    for t in range(181, 360):
        d, s = decide_dynamo(snap(t, 150.0), s, cfg)
        assert d.final is None
    d, s = decide_dynamo(snap(360, 150.0), s, cfg)
    assert d.final == 5


@pytest.mark.parametrize(
    "history, predictor, want",
    [
        ((10.0,), "arima", 10.0),  # too few points: last value
        ((10.0, 20.0), "arima", 20.0),
        ((10.0, 20.0, 30.0, 40.0), "arima", 40.0),  # under upstream's 5 points: last value
        ((10.0, 20.0, 30.0, 40.0, 50.0), "arima", 60.0),  # a linear ramp is extrapolated
        ((10.0, 20.0, 30.0, 40.0), "constant", 40.0),
        ((50.0, 50.0, 50.0, 50.0, 50.0), "arima", 50.0),
        ((40.0, 30.0, 20.0, 10.0, 0.0), "arima", 0.0),  # falls to 0, never negative
    ],
)
def test_predictors(history, predictor, want):
    assert predict_next(history, DynamoConfig(predictor=predictor)) == pytest.approx(want)


def test_arima_leads_a_ramp():
    cfg = DynamoConfig(predictor="arima")
    s = DynamoState()
    # load ramps 30 rps per interval: 30, 60, 90, 120 ... ; capacity 30
    finals = []
    for t in range(0, 180 * 7 + 1):
        d, s = decide_dynamo(snap(t, 30.0 * (1 + t // 180)), s, cfg)
        if d.final is not None:
            finals.append(d.final)
    # the interval averages (closing sample included) are ~30, 60, 90, 120, 150, ...; from the
    # fifth on (upstream's minimum_data_points) the trend is extrapolated: one interval ahead
    # of the constant predictor
    assert finals[:4] == [2, 3, 4, 5]  # ceil(30.2 / 30) ...: the last value
    assert finals[4:] == [7, 8, 9]


def test_no_capacity_or_no_data_is_no_decision():
    s = DynamoState()
    cfg = DynamoConfig()
    for t in range(0, 181):
        d, s = decide_dynamo(snap(t, 10.0, capacity_rps=None), s, cfg)
    assert d.final is None and d.reason_codes == ["no_capacity"]
    s = DynamoState()
    for t in range(0, 181):
        d, s = decide_dynamo(snap(t, 10.0, age=999.0), s, cfg)
    assert d.final is None and d.reason_codes == ["no_observations"]


def test_bounds():
    cfg = DynamoConfig(predictor="constant", capacity_rps=10.0, max_replicas=3)
    s = DynamoState()
    for t in range(0, 181):
        d, s = decide_dynamo(snap(t, 100.0), s, cfg)
    assert d.recommended == 10 and d.final == 3 and d.reason_codes == ["predicted", "bounded_max"]


# A profiled replica (the planner's interpolator): mean and p99 latency by per-replica load.
CURVE = ProfileCurve(
    load_rps=(5.0, 10.0, 15.0, 20.0),
    mean_ms=(200.0, 300.0, 600.0, 1500.0),
    p99_ms=(500.0, 1000.0, 2000.0, 5000.0),
)


def lat_snap(now_s, rps, mean_ms, current=10, slo_ms=2000.0):
    return ModelSnapshot(now_s=now_s, model="m", observed_replicas=current, ready_replicas=current,
                         rate_rps=rps, rate_age_s=1.0, mean_latency_ms=mean_ms, slo_p99_ms=slo_ms,
                         capacity_rps=15.0, spec_replicas=current)  # fmt: skip


def run_interval(cfg, rps, mean_ms, s=None, start=0):
    """One planner interval from `start` -> (the decision that closes it, the state after it)."""
    s = s or DynamoState()
    for t in range(start, start + 181):
        d, s = decide_dynamo(lat_snap(t, rps, mean_ms), s, cfg)
        if d.final is not None:
            return d, s
    raise AssertionError("no decision within an interval")


@pytest.mark.parametrize(
    "correction, want_rps",
    [
        (1.0, 15.0),  # no correction: the capacity at the SLO (p99 2000 ms at 15 rps)
        (2.0, 10.0),  # twice the profiled latency: sized for p99 1000 ms
        (0.8, 15.0 + 5.0 * 500.0 / 3000.0),  # better than profiled: 2500 ms, between 15 and 20 rps
        (10.0, 5.0),  # nothing meets 200 ms: the lightest profiled point, as upstream
    ],
)
def test_corrected_capacity(correction, want_rps):
    assert corrected_capacity(2000.0, correction, CURVE) == pytest.approx(want_rps)


def test_correction_is_observed_over_profiled_latency_at_the_per_replica_load():
    assert correction_from(600.0, 15.0, CURVE) == pytest.approx(1.0)
    assert correction_from(900.0, 15.0, CURVE) == pytest.approx(1.5)
    assert correction_from(450.0, 12.5, CURVE) == pytest.approx(1.0)  # interpolated: 450 ms at 12.5
    assert correction_from(0.0, 15.0, CURVE) is None


def test_latency_over_the_profile_sizes_for_more_replicas():
    """150 rps on 10 replicas is 15 rps each, where the profile's mean is 600 ms: seen at 600 ms
    the planner sizes at the capacity (10 replicas); seen at 1200 ms (bursts queue), the
    correction 2 sizes for p99 1000 ms, 10 rps each: 15 replicas."""
    cfg = DynamoConfig(predictor="constant", profile=CURVE)
    d, _ = run_interval(cfg, 150.0, 600.0)
    assert d.final == 10 and d.inputs["correction_ratio"] == pytest.approx(1.0)
    d, s = run_interval(cfg, 150.0, 1200.0)
    assert d.final == 15 and d.inputs["correction_ratio"] == pytest.approx(2.0)
    # An interval without any latency keeps the last correction (upstream keeps its factor).
    d, _ = run_interval(cfg, 150.0, None, s, start=181)  # t=180 opened it
    assert d.final == 15 and d.inputs["correction_ratio"] == pytest.approx(2.0)


def test_without_a_profile_there_is_no_correction():
    d, _ = run_interval(DynamoConfig(predictor="constant"), 150.0, 1200.0)
    assert d.final == 10 and d.inputs["capacity_rps"] == 15.0  # the snapshot's capacity


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(load_rps=(1.0, 2.0), mean_ms=(1.0,), p99_ms=(1.0, 2.0)), r"dynamo.profile.\*"),
        (dict(load_rps=(1.0,), mean_ms=(1.0,), p99_ms=(1.0,)), "dynamo.profile.load_rps"),
        (dict(load_rps=(2.0, 1.0), mean_ms=(1.0, 2.0), p99_ms=(1.0, 2.0)), "dynamo.profile.load_rps"),
        (dict(load_rps=(1.0, 2.0), mean_ms=(1.0, float("nan")), p99_ms=(1.0, 2.0)), "dynamo.profile.mean_ms"),
    ],
)
def test_profile_validation_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        ProfileCurve(**kwargs)
