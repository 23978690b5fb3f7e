"""Oracle (knows the future) and static baselines, and the uniform `baseline()` binding."""

import pytest

from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines import (
    HpaConfig,
    KpaConfig,
    OracleConfig,
    StaticConfig,
    baseline,
)
from controlplane.sim.baselines.oracle import OracleState, decide_oracle, future_peak_rps


def snap(now_s, rps=None, current=1):
    return ModelSnapshot(
        now_s=now_s,
        model="m",
        observed_replicas=current,
        ready_replicas=current,
        rate_rps=rps,
        rate_age_s=None if rps is None else 1.0,
        spec_replicas=current,
    )


# 1 s samples: 10 rps, a step to 100 rps over [100, 200), then 10 again
TS = tuple(float(t) for t in range(0, 400))
RATE = tuple(100.0 if 100 <= t < 200 else 10.0 for t in range(0, 400))


def oracle(startup_s=30.0, lookahead_s=0.0):
    return OracleConfig.from_series(TS, RATE, capacity_rps=10.0, startup_s=startup_s, lookahead_s=lookahead_s)


def test_oracle_leads_load_by_startup():
    cfg = oracle(startup_s=30.0)
    counts = {t: decide_oracle(snap(t), OracleState(), cfg)[0].final for t in range(0, 400)}
    # t=69: the step at 100 is still beyond 69 + 30 -> 1 replica
    assert counts[69] == 1
    # t=70: 70 + 30 reaches the step: 10 replicas ordered now are ready exactly at t=100
    assert counts[70] == 10
    # t=199: the last second of the step -> still 10 ; t=200: load is 10 for good -> 1 at once
    assert counts[199] == 10 and counts[200] == 1


@pytest.mark.parametrize(
    "startup_s, lookahead_s, first_up_s", [(0.0, 0.0, 100), (30.0, 1.0, 69), (60.0, 5.0, 35)]
)
def test_oracle_window(startup_s, lookahead_s, first_up_s):
    cfg = oracle(startup_s, lookahead_s)
    first = min(t for t in range(0, 400) if decide_oracle(snap(t), OracleState(), cfg)[0].final == 10)
    assert first == first_up_s


@pytest.mark.parametrize(
    "start, end, want",
    [(0.0, 0.0, 10.0), (99.5, 99.9, 10.0), (99.5, 100.0, 100.0), (150.5, 150.7, 100.0), (500.0, 900.0, 10.0)],
)
def test_future_peak(start, end, want):
    assert future_peak_rps(oracle(), start, end) == want


def test_oracle_validates_its_series():
    with pytest.raises(ValueError, match="oracle.ts_s"):
        OracleConfig((2.0, 1.0), (1.0, 1.0), 10.0, 0.0)


def test_static_always_the_same_even_without_data():
    b = baseline(StaticConfig.for_peak(peak_rps=95.0, capacity_rps=10.0))
    state = b.initial_state
    for t, cur in ((0, 1), (1, 10), (2, 30)):
        d, state = b.decide(snap(t, current=cur), state)
        assert d.final == 10 and d.policy == "static"
    assert d.kind == "scale_down" and d.actuate


def test_baseline_binding_is_uniform():
    for cfg, name in ((HpaConfig(), "hpa"), (KpaConfig(metric="rps"), "kpa"), (oracle(), "oracle")):
        b = baseline(cfg)
        d, _ = b.decide(snap(0, rps=5.0), b.initial_state)
        assert b.name == name and d.policy == name and d.ts == 0
        assert d.as_row()["policy"] == name  # a row of the decisions table
    with pytest.raises(ValueError, match="not a baseline config"):
        baseline(object())
