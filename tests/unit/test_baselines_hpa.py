"""Kubernetes HPA baseline: the ratio rule, tolerance, sync period, stabilisation, rate limits."""

import pytest

from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.hpa import (
    MISSING_PODS_HOLD,
    RATIO_DOWN,
    RATIO_UP,
    SCALE_UP_LIMITED,
    STABILISED_DOWN,
    WITHIN_TOLERANCE,
    HpaConfig,
    HpaState,
    decide_hpa,
    ratio_replicas,
)


def snap(now_s, current, rate_rps, ready=None, observed=None, capacity_rps=None):
    ready = current if ready is None else ready
    return ModelSnapshot(
        now_s=now_s,
        model="m",
        observed_replicas=current if observed is None else observed,
        ready_replicas=ready,
        rate_rps=rate_rps,
        rate_age_s=1.0,
        spec_replicas=current,
        capacity_rps=capacity_rps,
    )


CFG = HpaConfig(target_rps_per_replica=10.0, max_replicas=100)


@pytest.mark.parametrize(
    "rate, ready, pods, current, want, reason",
    [
        (40.0, 4, 4, 4, 4, WITHIN_TOLERANCE),  # ratio 1.0
        (44.0, 4, 4, 4, 4, WITHIN_TOLERANCE),  # ratio 1.1: on the edge of the dead-band, held
        (44.4, 4, 4, 4, 5, RATIO_UP),  # ratio 1.11: ceil(1.11 * 4) = 5
        (36.0, 4, 4, 4, 4, WITHIN_TOLERANCE),  # ratio 0.9: held
        (35.6, 4, 4, 4, 4, RATIO_DOWN),  # ratio 0.89: ceil(0.89 * 4) = 4 (ceil keeps it)
        (20.0, 4, 4, 4, 2, RATIO_DOWN),  # ratio 0.5 -> 2
        (200.0, 2, 2, 2, 20, RATIO_UP),  # ratio 10 -> 20
        # 2 ready + 2 starting (missing): scale-up counts missing at 0 -> 60 / (4 * 10) = 1.5 -> 6
        (60.0, 2, 4, 4, 6, RATIO_UP),
        # 2 ready at ratio 1.5 but with 2 missing at 0 the ratio is 0.75: direction flips -> hold
        (30.0, 2, 4, 4, 4, MISSING_PODS_HOLD),
        # scale-down counts missing at target: (10 + 2*10) / 40 = 0.75 -> ceil(3) = 3
        (10.0, 2, 4, 4, 3, RATIO_DOWN),
    ],
)
def test_ratio_rule(rate, ready, pods, current, want, reason):
    got, why, _ = ratio_replicas(rate, ready, pods, current, 10.0, 0.1)
    assert (got, why) == (want, reason)


def test_sync_period_15s():
    s = HpaState()
    # t=0: first sync; 80 rps on 4 replicas (ratio 2) -> 8
    d, s = decide_hpa(snap(0, 4, 80.0), s, CFG)
    assert d.final == 8 and d.actuate
    # t=1..14: between syncs, nothing is decided even though load doubled again
    for t in range(1, 15):
        d, s = decide_hpa(snap(t, 8, 160.0), s, CFG)
        assert d.final is None and d.reason_codes == ["not_due"]
    # t=15: the next sync acts: 160 / (8 * 10) = 2 -> 16
    d, s = decide_hpa(snap(15, 8, 160.0), s, CFG)
    assert d.final == 16


def test_scale_down_stabilisation_300s():
    s = HpaState()
    # t=0: 100 rps on 10 replicas, at target -> hold at 10 (recommendation 10 recorded)
    d, s = decide_hpa(snap(0, 10, 100.0), s, CFG)
    assert d.final == 10
    # t=15..285: load falls to 20 rps (wants 2) but the 300 s window still holds 10
    for t in range(15, 300, 15):
        d, s = decide_hpa(snap(t, 10, 20.0), s, CFG)
        assert d.recommended == 2 and d.final == 10 and STABILISED_DOWN in d.reason_codes, t
    # t=300: the t=0 recommendation (10) is exactly 300 s old, out of the window -> 2
    d, s = decide_hpa(snap(300, 10, 20.0), s, CFG)
    assert d.final == 2 and d.actuate


def test_stabilisation_keeps_the_highest_recent_recommendation():
    s = HpaState()
    # t=0: wants 6 from 4 (60 rps)
    d, s = decide_hpa(snap(0, 4, 60.0), s, CFG)
    assert d.final == 6
    # t=15: wants 3 (30 rps on 6) -> the window's max is 6: hold
    d, s = decide_hpa(snap(15, 6, 30.0), s, CFG)
    assert d.final == 6
    # t=30: wants 4 -> still 6 (the t=0 recommendation)
    d, s = decide_hpa(snap(30, 6, 40.0), s, CFG)
    assert d.final == 6
    # t=315: t=0 has left the window; max(3 @15, 4 @30, 2 now) = 4
    d, s = decide_hpa(snap(315, 6, 20.0), s, CFG)
    assert d.final == 4


@pytest.mark.parametrize(
    "current, want",
    [
        (1, 5),  # max(1 + 4 pods, 1 * 2) = 5
        (3, 7),  # max(3 + 4, 6) = 7
        (4, 8),  # both 8
        (10, 20),  # max(14, 20): +100 % wins
    ],
)
def test_default_scale_up_policy(current, want):
    d, _ = decide_hpa(snap(0, current, 10_000.0), HpaState(), CFG)
    assert d.recommended == 1000 and d.final == want and SCALE_UP_LIMITED in d.reason_codes


def test_scale_up_limit_counts_from_the_period_start():
    # current 5 just came from 1 at t=0 (+4 in the last 15 s): start of period = 1 -> limit 5
    d, _ = decide_hpa(snap(10, 5, 10_000.0), HpaState(None, (), ((0.0, 4),)), CFG)
    assert d.final == 5 and not d.actuate
    # t=15: the t=0 event is 15 s old, outside the period: from 5 -> max(9, 10) = 10
    d, _ = decide_hpa(snap(15, 5, 10_000.0), HpaState(None, (), ((0.0, 4),)), CFG)
    assert d.final == 10


def test_tick_by_tick_surge():
    s = HpaState()
    # t=0: 1 replica, a surge of 1000 rps (wants 100): +4 -> 5
    d, s = decide_hpa(snap(0, 1, 1000.0), s, CFG)
    assert d.final == 5
    # t=15: 5 -> max(9, 10) = 10
    d, s = decide_hpa(snap(15, 5, 1000.0), s, CFG)
    assert d.final == 10
    # t=30: 10 -> 20 ; t=45: 20 -> 40 ; t=60: 40 -> 80 ; t=75: 80 -> 100 (the need)
    for t, want in ((30, 20), (45, 40), (60, 80), (75, 100)):
        d, s = decide_hpa(snap(t, d.final, 1000.0), s, CFG)
        assert d.final == want, t


def test_scale_down_policy_100_percent_and_min():
    cfg = HpaConfig(target_rps_per_replica=10.0, min_replicas=2, down_window_s=0.0)
    # no stabilisation window: 100 % per 15 s lets 10 -> wanted count at once, min 2 holds
    d, _ = decide_hpa(snap(0, 10, 1.0), HpaState(), cfg)
    assert d.recommended == 1 and d.final == 2 and "bounded_min" in d.reason_codes


def test_max_replicas():
    cfg = HpaConfig(target_rps_per_replica=10.0, max_replicas=6)
    d, _ = decide_hpa(snap(0, 4, 400.0), HpaState(), cfg)
    assert d.final == 6 and "bounded_max" in d.reason_codes


def test_utilisation_metric():
    cfg = HpaConfig(metric="utilisation", target_utilisation_ratio=0.8)
    # capacity 50 rps -> target 40 rps per replica; 160 rps on 2 -> 4
    d, _ = decide_hpa(snap(0, 2, 160.0, capacity_rps=50.0), HpaState(), cfg)
    assert d.final == 4
    # no capacity -> no decision
    d, _ = decide_hpa(snap(0, 2, 160.0), HpaState(), cfg)
    assert d.final is None and d.reason_codes == ["no_capacity"]


@pytest.mark.parametrize(
    "rate, age, ready, reason",
    [(None, None, 2, "no_data"), (10.0, 120.0, 2, "stale_data"), (10.0, 1.0, 0, "no_metrics")],
)
def test_no_decision_without_fresh_metrics(rate, age, ready, reason):
    s = ModelSnapshot(
        now_s=0, model="m", observed_replicas=2, ready_replicas=ready, rate_rps=rate, rate_age_s=age
    )
    d, _ = decide_hpa(s, HpaState(), CFG)
    assert d.final is None and d.reason_codes == [reason] and not d.actuate


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="hpa.tolerance_ratio"):
        HpaConfig(tolerance_ratio=1.5)


def test_first_sync_remembers_the_running_count():
    """recordInitialRecommendation: an HPA that has just started holds the count it found for a
    whole down window, however little load its first syncs see."""
    s = HpaState()
    for t in range(0, 300, 15):  # 10 running, 20 rps wants 2 from the first sync on
        d, s = decide_hpa(snap(t, 10, 20.0), s, CFG)
        assert d.recommended == 2 and d.final == 10 and STABILISED_DOWN in d.reason_codes, t
    d, s = decide_hpa(snap(300, 10, 20.0), s, CFG)  # the t=0 record has left the window
    assert d.final == 2
    # Upward the record changes nothing: the first sync scales up at once.
    d, _ = decide_hpa(snap(0, 4, 80.0), HpaState(), CFG)
    assert d.final == 8
