"""Knative KPA baseline: windows, panic entry/exit, max scale-down rate 2, 2 s tick."""

import pytest

from controlplane.policy.snapshot import ModelSnapshot
from controlplane.sim.baselines.kpa import (
    PANIC,
    PANIC_HOLD,
    PANIC_NO_SCALE_DOWN,
    SCALE_DOWN_RATE_LIMITED,
    STABLE_MODE,
    KpaConfig,
    KpaState,
    decide_kpa,
    window_average,
)

# rps metric, 10 rps per replica x 0.7 utilisation -> target 7 rps per replica
CFG = KpaConfig(metric="rps", target_per_replica=10.0)


def snap(now_s, ready, rps):
    # the per-second sample is the short-window rate
    return ModelSnapshot(
        now_s=now_s,
        model="m",
        observed_replicas=ready,
        ready_replicas=ready,
        rate_rps=rps,
        rate_age_s=1.0,
        short_rate_rps=rps,
        spec_replicas=ready,
    )


def run(state, ticks, ready, rps):
    """Feed one sample per second over `ticks` (an iterable of seconds); the last real decision
    (ticks are every 2 s, so an odd last second answers not_due)."""
    last = None
    for t in ticks:
        d, state = decide_kpa(snap(t, ready, rps), state, CFG)
        last = d if d.final is not None else last
    return last, state


@pytest.mark.parametrize(
    "samples, now, window, want",
    [
        (((1, 10.0), (2, 20.0)), 2, 6, 15.0),
        (((0, 100.0), (5, 10.0), (6, 20.0)), 6, 6, 15.0),  # t=0 is exactly 6 s old: out
        (((50, 1.0),), 60, 6, None),  # nothing in the window
        (tuple((t, float(t)) for t in range(1, 61)), 60, 60, 30.5),
    ],
)
def test_window_average(samples, now, window, want):
    assert window_average(samples, now, window) == want


def test_tick_every_2s():
    s = KpaState()
    # t=0: first tick decides: 14 rps / 7 -> 2
    d, s = decide_kpa(snap(0, 2, 14.0), s, CFG)
    assert d.final == 2
    # t=1: between ticks, sample kept, nothing decided
    d, s = decide_kpa(snap(1, 2, 14.0), s, CFG)
    assert d.final is None and d.reason_codes == ["not_due"] and len(s.samples) == 2
    # t=2: tick
    d, s = decide_kpa(snap(2, 2, 14.0), s, CFG)
    assert d.final == 2 and d.reason_codes == [STABLE_MODE]


def test_stable_window_60s_smooths_a_step():
    # 60 s at 14 rps on 2 replicas, then a rise to 21 rps (3 replicas' worth, 1.5x: no panic)
    d, s = run(KpaState(), range(0, 60), 2, 14.0)
    assert d.final == 2
    # t=60..89: last tick 88, window (28, 88] = 31 x 14 + 29 x 21 -> 17.4 rps -> ceil(2.48) = 3
    d, s = run(s, range(60, 90), 2, 21.0)
    assert d.final == 3 and STABLE_MODE in d.reason_codes


def test_panic_entry_and_exit():
    # t=0..59: steady 14 rps on 2 replicas (target 7 each)
    d, s = run(KpaState(), range(0, 60), 2, 14.0)
    assert d.final == 2 and s.panic_since_s is None
    # t=60..62: surge to 56 rps. Tick t=60: panic window (54, 60] = 5 x 14 + 1 x 56 -> 21 rps,
    # dppc 3 < 2 x 2 ready. Tick t=62: (56, 62] = 3 x 14 + 3 x 56 -> 35 rps, dppc = 5 >= 4:
    # PANIC, count max(dspc 3, dppc 5) = 5
    d, s = run(s, range(60, 63), 2, 56.0)
    assert PANIC in d.reason_codes and d.final == 5 and s.panic_since_s == 62
    # t=63..69: ticks 64, 66, 68 stay over the threshold (at 68 the panic window is all 56 ->
    # 8 pods); each extends the panic; ready still 2
    d, s = run(s, range(63, 70), 2, 56.0)
    assert d.final == 8 and s.panic_since_s == 68
    # t=70..127: 8 ready, load falls back to 14 rps: not over threshold, but the panic holds
    # for a stable window after the last trigger (68) and never scales down
    for t in range(70, 129):
        d, s = decide_kpa(snap(t, 8, 14.0), s, CFG)
        if d.final is not None:
            assert d.final == 8 and PANIC_HOLD in d.reason_codes, t
            assert PANIC_NO_SCALE_DOWN in d.reason_codes
    # t=130: 62 s after the last trigger (> 60): un-panic; stable avg is 14 -> 2, but max scale-down
    # rate 2 floors it at 8 / 2 = 4
    d, s = decide_kpa(snap(130, 8, 14.0), s, CFG)
    assert s.panic_since_s is None and d.final == 4
    assert d.reason_codes == [STABLE_MODE, SCALE_DOWN_RATE_LIMITED]


@pytest.mark.parametrize(
    "ready, want",
    [
        (10, 5),  # floor(10 / 2)
        (5, 2),  # floor(5 / 2) (upstream floors, so an odd count can drop below half)
        (2, 1),
        (1, 1),  # min 1
    ],
)
def test_max_scale_down_rate_2(ready, want):
    # load gone (0 rps): the stable count wants 0 -> limited to floor(ready / 2), min 1
    d, _ = decide_kpa(snap(0, ready, 0.0), KpaState(), CFG)
    assert d.final == want


def test_max_scale_up_rate():
    cfg = KpaConfig(metric="rps", target_per_replica=1.0, utilisation_ratio=1.0, max_scale_up_rate=3.0)
    # 100 rps on 2 ready wants 100; ceil(3 x 2) = 6 caps it
    d, _ = decide_kpa(snap(0, 2, 100.0), KpaState(), cfg)
    assert d.final == 6


def test_concurrency_by_littles_law():
    cfg = KpaConfig(service_time_s=0.5)  # concurrency target 100 x 0.7 = 70
    # 280 rps x 0.5 s = 140 in flight -> ceil(140 / 70) = 2 (no queue)
    d, _ = decide_kpa(snap(0, 2, 280.0), KpaState(), cfg)
    assert d.final == 2
    # without a service time the concurrency cannot be estimated: no decision
    d, _ = decide_kpa(snap(0, 2, 280.0), KpaState(), KpaConfig())
    assert d.final is None and d.reason_codes == ["no_service_time"]


def test_stale_data_is_no_decision():
    s = ModelSnapshot(
        now_s=0, model="m", observed_replicas=2, ready_replicas=2, rate_rps=1.0, rate_age_s=99.0
    )
    d, st = decide_kpa(s, KpaState(), CFG)
    assert d.final is None and d.reason_codes == ["stale_data"] and st == KpaState()
