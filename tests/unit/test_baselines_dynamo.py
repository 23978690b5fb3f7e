"""Dynamo-planner-like baseline: 180 s cadence, predictors, sizing from profiled capacity."""

import pytest

from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.dynamo import DynamoConfig, DynamoState, decide_dynamo, predict_next


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
