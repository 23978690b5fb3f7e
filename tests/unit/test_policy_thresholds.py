"""The router-thresholds policy: table-driven levels, triggers and pacing, then tick-by-tick scenarios."""

from __future__ import annotations

import pytest

from controlplane.config import Settings
from controlplane.loop.live import LiveView, WindowStats
from controlplane.loop.threshold_inputs import (
    build_threshold_inputs,
    in_surge,
    threshold_config,
    zone_loads,
)
from controlplane.policy.replicas import ReplicaPolicyState
from controlplane.policy.snapshot import ModelSnapshot
from controlplane.policy.thresholds import (
    LeverState,
    ModelLoad,
    RouterThresholds,
    ThresholdConfig,
    ThresholdInputs,
    ThresholdState,
    Verdict,
    ZoneLoad,
    admission_max_level,
    admission_values,
    decide_thresholds,
    judge_admission,
    judge_spill,
    judge_tier,
    spill_max_level,
    spill_value,
    step_lever,
    tier_max_level,
    tier_value,
)

CFG = ThresholdConfig(step_interval_s=10.0, restore_after_s=30.0)
SLO = 100.0
SMALL, LARGE = "classifier-small", "classifier-large"


def model(name=SMALL, p99=50.0, surge=False, current=2, max_=4, starting=0) -> ModelLoad:
    return ModelLoad(name, p99, SLO, surge, current, max_, starting)


def zone(name, p99, replicas=1) -> ZoneLoad:
    return ZoneLoad(name, p99, SLO if p99 is not None else None, SMALL, replicas)


# ---- levels -> values ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "level, expected",
    [
        (0, {"premium": 1.0, "standard": 0.8, "batch": 0.5}),  # baseline
        (1, {"premium": 1.0, "standard": 0.8, "batch": 0.4}),  # batch first
        (4, {"premium": 1.0, "standard": 0.8, "batch": 0.1}),  # batch at its floor
        (5, {"premium": 1.0, "standard": 0.7, "batch": 0.1}),  # then standard
        (9, {"premium": 1.0, "standard": 0.3, "batch": 0.1}),  # standard at its floor
        (10, {"premium": 0.9, "standard": 0.3, "batch": 0.1}),  # premium last, never below 0.9
        (99, {"premium": 0.9, "standard": 0.3, "batch": 0.1}),  # beyond the last level: the floors
    ],
)
def test_admission_values_tighten_lowest_class_first(level, expected):
    assert admission_values(level, CFG) == expected
    assert admission_max_level(CFG) == 10


def test_class_without_floor_is_never_tightened():
    cfg = ThresholdConfig(admit_floor_ratio={"batch": 0.3})
    assert admission_max_level(cfg) == 2
    assert admission_values(5, cfg) == {"premium": 1.0, "standard": 0.8, "batch": 0.3}


@pytest.mark.parametrize("level, expected", [(0, 0.5), (1, 0.6), (3, 0.8), (4, 0.9), (7, 0.9)])
def test_tier_values(level, expected):
    assert tier_value(level, CFG) == expected
    assert tier_max_level(CFG) == 4


@pytest.mark.parametrize(
    "base, lo, factor, levels, values",
    [
        (8.0, 1.0, 0.5, 3, [8.0, 4.0, 2.0, 1.0]),
        (6.0, 1.0, 0.5, 3, [6.0, 3.0, 1.5, 1.0]),  # the last step stops at the minimum
        (1.0, 1.0, 0.5, 0, [1.0]),  # already at the minimum: nothing to lower
        (0.0, 1.0, 0.5, 0, [0.0]),  # 0 = always spill: nothing to lower
    ],
)
def test_spill_values(base, lo, factor, levels, values):
    cfg = ThresholdConfig(
        spill_inflight_per_replica=base, spill_min_inflight_per_replica=lo, spill_step_ratio=factor
    )
    assert spill_max_level(cfg) == levels
    assert [spill_value(k, cfg) for k in range(levels + 1)] == values


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"admit_floor_ratio": {"gold": 0.5}}, "thresholds.admit_floor_ratio.gold"),
        ({"admit_floor_ratio": {"batch": 0.6}}, r"admit_floor_ratio.batch=0.6 .*\(0, 0.5\]"),
        ({"admit_below_load_ratio": {"batch": 1.5}, "admit_floor_ratio": {}}, "admit_below_load_ratio.batch"),
        ({"admit_step_ratio": 0}, "admit_step_ratio=0"),
        ({"tier_max_ratio": 0.4}, r"tier_max_ratio=0.4 .*tier_complexity_threshold_ratio \(0.5\)"),
        ({"spill_step_ratio": 1.0}, "spill_step_ratio=1.0"),
        ({"spill_min_inflight_per_replica": 0}, "spill_min_inflight_per_replica=0"),
        ({"restore_below_slo_ratio": 1.2}, "restore_below_slo_ratio=1.2"),
        ({"restore_after_s": float("nan")}, "restore_after_s=nan"),
        ({"mode": "auto"}, "thresholds.mode='auto'"),
    ],
)
def test_config_errors_name_key_value_and_range(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ThresholdConfig(**kwargs)


# ---- triggers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "models, trigger, relief, reasons",
    [
        # over the SLO at max replicas: tighten
        ([model(p99=150, current=4, max_=4)], True, False, ("over_slo", "at_max_replicas")),
        # over the SLO while replicas are starting: tighten (they take seconds to help)
        ([model(p99=150, starting=1)], True, False, ("over_slo", "replicas_starting")),
        # a surge counts as overload even before p99 moves
        ([model(p99=60, surge=True, current=4)], True, False, ("surge", "at_max_replicas")),
        # over the SLO but the replica policy can still add: hold, not relief
        ([model(p99=150)], False, False, ("over_slo", "capacity_can_be_added")),
        # every model at or below 0.8 x SLO: relief
        ([model(p99=80), model(LARGE, p99=None)], False, True, ("healthy",)),
        # 0.9 x SLO: the dead band
        ([model(p99=90)], False, False, ("not_yet_healthy",)),
        # no latency anywhere: neither
        ([model(p99=None)], False, False, ("no_data",)),
        ([], False, False, ("no_data",)),
    ],
)
def test_judge_admission(models, trigger, relief, reasons):
    v = judge_admission(tuple(models), CFG)
    assert (v.trigger, v.relief, v.reasons) == (trigger, relief, reasons)


@pytest.mark.parametrize(
    "small_p99, large_p99, large_surge, trigger, relief, reasons",
    [
        (50, 150, False, True, False, ("large_over_slo", "small_headroom")),
        (70, 150, False, True, False, ("large_over_slo", "small_headroom")),  # 0.7 x SLO: still room
        (75, 150, False, False, False, ("large_over_slo", "small_no_headroom")),
        (None, 150, False, False, False, ("large_over_slo", "small_no_headroom")),  # unknown: no room
        (50, 80, False, False, True, ("healthy",)),
        (50, 80, True, False, False, ("not_yet_healthy",)),  # a surge on the large tier is not relief
        (50, 95, False, False, False, ("not_yet_healthy",)),
        (50, None, False, False, False, ("no_data",)),
    ],
)
def test_judge_tier(small_p99, large_p99, large_surge, trigger, relief, reasons):
    models = (model(SMALL, p99=small_p99), model(LARGE, p99=large_p99, surge=large_surge))
    v = judge_tier(models, CFG)
    assert (v.trigger, v.relief, v.reasons) == (trigger, relief, reasons)


@pytest.mark.parametrize(
    "zones, trigger, relief, reasons",
    [
        ([zone("a", 150), zone("b", 40)], True, False, ("zone_over_slo", "other_zone_headroom")),
        ([zone("a", 150), zone("b", 90)], False, False, ("zone_over_slo", "no_zone_headroom")),
        ([zone("a", 150), zone("b", 160)], False, False, ("zone_over_slo", "no_zone_headroom")),
        ([zone("a", 150)], False, False, ("zone_over_slo", "single_zone")),
        ([zone("a", 150), zone("b", None)], False, False, ("zone_over_slo", "no_zone_headroom")),
        ([zone("a", 70), zone("b", 40)], False, True, ("healthy",)),
        ([zone("a", 85), zone("b", 40)], False, False, ("not_yet_healthy",)),
        ([zone("a", None)], False, False, ("no_data",)),
    ],
)
def test_judge_spill(zones, trigger, relief, reasons):
    v = judge_spill(tuple(zones), CFG)
    assert (v.trigger, v.relief, v.reasons) == (trigger, relief, reasons)


TRIGGER = Verdict(True, False, (), {})
RELIEF = Verdict(False, True, (), {})
DEAD = Verdict(False, False, (), {})


@pytest.mark.parametrize(
    "st, verdict, now, expected_state, asked, move",
    [
        # first trigger: one step at once
        (LeverState(0), TRIGGER, 100, LeverState(1, 100, None), 1, "tighten"),
        # a second trigger inside step_interval_s (10 s) waits
        (LeverState(1, 95), TRIGGER, 100, LeverState(1, 95, None), 2, "step_wait"),
        (LeverState(1, 90), TRIGGER, 100, LeverState(2, 100, None), 2, "tighten"),
        # at the limit (4 levels): holds
        (LeverState(4, 0), TRIGGER, 100, LeverState(4, 0, None), 4, "at_limit"),
        # a trigger breaks a relief streak
        (LeverState(2, 0, 50), TRIGGER, 100, LeverState(3, 100, None), 3, "tighten"),
        # relief starts a streak; restore waits restore_after_s (30 s) of it
        (LeverState(2, 0), RELIEF, 100, LeverState(2, 0, 100), 1, "restore_wait"),
        (LeverState(2, 0, 80), RELIEF, 100, LeverState(2, 0, 80), 1, "restore_wait"),
        (LeverState(2, 0, 70), RELIEF, 100, LeverState(1, 100, 70), 1, "restore"),
        # ... and restore_after_s since the last step, so restores are 30 s apart
        (LeverState(1, 80, 0), RELIEF, 100, LeverState(1, 80, 0), 0, "restore_wait"),
        (LeverState(1, 70, 0), RELIEF, 100, LeverState(0, 100, 0), 0, "restore"),
        (LeverState(0, 70, 0), RELIEF, 100, LeverState(0, 70, 0), 0, "at_baseline"),
        # the dead band holds and ends the relief streak
        (LeverState(2, 0, 50), DEAD, 100, LeverState(2, 0, None), 2, ""),
        # a level above a shrunk range is clamped first
        (LeverState(9, 0), DEAD, 100, LeverState(4, 0, None), 4, ""),
    ],
)
def test_step_lever(st, verdict, now, expected_state, asked, move):
    assert step_lever(st, verdict, now, 4, CFG) == (expected_state, asked, move)


# ---- decide_thresholds ---------------------------------------------------------------------------
BASE = RouterThresholds({"premium": 1.0, "standard": 0.8, "batch": 0.5}, 0.5, 8.0)


def inputs(now, models=(), zones=(), current=None) -> ThresholdInputs:
    return ThresholdInputs(now, tuple(models), tuple(zones), current)


def by_lever(result) -> dict:
    return {d.replica: d for d in result.decisions}


def test_healthy_fleet_changes_nothing():
    res, st = decide_thresholds(
        inputs(0, [model(p99=40), model(LARGE, p99=50)], [zone("a", 40), zone("b", 40)], BASE),
        ThresholdState(),
        CFG,
    )
    assert res.changes == {} and not res.actuate and not res.engaged
    assert st == ThresholdState(LeverState(0, None, 0), LeverState(0, None, 0), LeverState(0, None, 0))
    assert [d.action for d in res.decisions] == ["hold"] * 3
    assert all(d.policy == "thresholds" and "at_baseline" in d.reason_codes for d in res.decisions)


def test_advisory_records_would_set_and_changes_nothing():
    cfg = ThresholdConfig(mode="advisory")
    overloaded = [model(p99=200, current=4, max_=4)]
    res, st = decide_thresholds(inputs(0, overloaded, current=BASE), ThresholdState(), cfg)
    d = by_lever(res)["admission"]
    assert not res.actuate and not d.actuate
    assert d.mode == "advisory" and "mode_advisory" in d.reason_codes
    assert d.message.startswith("would set admit_below_load_ratio {batch: 0.5, premium: 1, standard: 0.8}")
    assert res.changes == {"admit_below_load_ratio": {"premium": 1.0, "standard": 0.8, "batch": 0.4}}
    assert st.admission.level == 1  # the would-be level moves on, as in routing's advisory mode
    # next step one step interval (15 s default) later: the router still holds the baseline, so
    # the would-be change grows
    res, st = decide_thresholds(inputs(15, overloaded, current=BASE), st, cfg)
    assert res.changes["admit_below_load_ratio"]["batch"] == 0.3 and not res.actuate
    # a tick without a step: the would-be values still differ from the router, and that is no resync
    res, st = decide_thresholds(inputs(16, overloaded, current=BASE), st, cfg)
    d = by_lever(res)["admission"]
    assert "step_wait" in d.reason_codes and "router_out_of_sync" not in d.reason_codes


def test_mode_off_decides_nothing_and_keeps_state():
    state = ThresholdState(admission=LeverState(3, 0))
    res, st = decide_thresholds(
        inputs(100, [model(p99=300, current=4, max_=4)]), state, ThresholdConfig(mode="off")
    )
    assert st is state and res.changes == {} and not res.actuate
    assert all(d.final is None and "mode_off" in d.reason_codes for d in res.decisions)


def test_router_restart_is_resynced():
    # admission at level 2 (batch 0.3); the router restarted and holds its configured 0.5 again
    state = ThresholdState(admission=LeverState(2, 0))
    res, _ = decide_thresholds(inputs(5, [model(p99=90)], current=BASE), state, CFG)
    d = by_lever(res)["admission"]
    assert res.actuate and res.changes == {
        "admit_below_load_ratio": {"premium": 1.0, "standard": 0.8, "batch": 0.3}
    }
    assert d.action == "hold" and "router_out_of_sync" in d.reason_codes
    # without the router's values the policy trusts what it set: nothing to send
    res, _ = decide_thresholds(inputs(5, [model(p99=90)]), state, CFG)
    assert res.changes == {} and res.engaged


def test_decision_carries_inputs_and_a_distinct_id_per_lever():
    res, _ = decide_thresholds(
        inputs(7, [model(SMALL, p99=50), model(LARGE, p99=180)], [zone("a", 180), zone("b", 50)], BASE),
        ThresholdState(),
        CFG,
    )
    d = by_lever(res)
    assert len({x.decision_id for x in res.decisions}) == 3
    assert d["tier"].inputs["large"]["p99_ms"] == 180 and d["tier"].inputs["to"] == 0.6
    assert d["spill"].inputs["over"] == ["a"] and d["spill"].inputs["to"] == 4.0
    assert res.changes == {"tier_complexity_threshold_ratio": 0.6, "spill_inflight_per_replica": 4.0}
    row = d["tier"].as_row()
    assert row["policy"] == "thresholds" and row["replica"] == "tier" and row["action"] == "tighten"


def test_overload_scenario_tick_by_tick():
    """5 s ticks; SLO 100 ms; max 4 replicas; the router applies every change (active mode)."""
    state = ThresholdState()
    router = BASE.as_dict()

    def tick(now, p99, current=4, starting=0, large_p99=50.0):
        nonlocal state
        cur = RouterThresholds(**router)
        models = [
            model(p99=p99, current=current, starting=starting),
            model(LARGE, p99=large_p99, current=current),
        ]
        res, state = decide_thresholds(inputs(now, models, current=cur), state, CFG)
        for k, v in res.changes.items():  # what RouterControl.set_thresholds would apply
            router[k] = v
        return res, router["admit_below_load_ratio"]

    # t=0: p99 150 ms with 2 of 4 replicas: the replica policy can add, so admission holds
    res, admit = tick(0, 150, current=2)
    assert admit["batch"] == 0.5 and "capacity_can_be_added" in by_lever(res)["admission"].reason_codes
    # t=5: 3 asked, one still starting: overload nothing else fixes now -> batch 0.5 -> 0.4
    res, admit = tick(5, 160, current=3, starting=1)
    assert admit["batch"] == 0.4 and res.actuate
    # t=10: at max (4), still over: only 5 s since the last step (step interval 10 s) -> hold
    res, admit = tick(10, 170)
    assert admit["batch"] == 0.4 and "step_wait" in by_lever(res)["admission"].reason_codes
    # t=15..45: over every tick -> one step per 10 s: 0.3, 0.2, 0.1 (batch floor), standard 0.7
    for now in (15, 20, 25, 30, 35, 40, 45):
        _, admit = tick(now, 180)
    assert admit == {"premium": 1.0, "standard": 0.7, "batch": 0.1}
    # t=50: p99 90 ms (dead band 0.8-1.0 x SLO): hold, no relief streak
    res, admit = tick(50, 90)
    assert admit["standard"] == 0.7 and by_lever(res)["admission"].action == "hold"
    # t=55: 70 ms: relief starts; restore waits 30 s of it
    _, admit = tick(55, 70)
    assert admit["standard"] == 0.7
    # t=80: 25 s of relief: still waiting
    res, admit = tick(80, 70)
    assert admit["standard"] == 0.7 and "restore_wait" in by_lever(res)["admission"].reason_codes
    # t=85: 30 s of relief, 35 s since the last step -> one step back: standard 0.8
    res, admit = tick(85, 70)
    assert admit == {"premium": 1.0, "standard": 0.8, "batch": 0.1}
    assert by_lever(res)["admission"].action == "restore"
    # t=90: healthy but only 5 s since that restore: hold (restores are restore_after_s apart)
    _, admit = tick(90, 70)
    assert admit["batch"] == 0.1
    # t=95: a flap back over the SLO at max -> tighten again at once (last step 10 s ago)
    _, admit = tick(95, 150)
    assert admit == {"premium": 1.0, "standard": 0.7, "batch": 0.1}
    # t=100: healthy again: the relief streak starts over (t=100)
    _, admit = tick(100, 60)
    # t=125: 25 s of relief: nothing yet (the flap reset the streak)
    _, admit = tick(125, 60)
    assert admit["standard"] == 0.7
    # t=130, 160, 190, 220, 250: one restore per 30 s: standard 0.8, then batch 0.2, 0.3, 0.4, 0.5
    for now in range(130, 251, 5):
        _, admit = tick(now, 60)
    assert admit == {"premium": 1.0, "standard": 0.8, "batch": 0.5}
    # t=255: at baseline: nothing more to send, the levers are disengaged
    res, _ = tick(255, 60)
    assert res.changes == {} and not res.engaged


def test_tier_and_spill_scenario_tick_by_tick():
    """The large tier slows while the small one is fine; zone a slows while zone b is fine."""
    state = ThresholdState()
    router = BASE.as_dict()

    def tick(now, large_p99, za_p99, small_p99=40.0):
        nonlocal state
        models = [model(SMALL, p99=small_p99), model(LARGE, p99=large_p99)]
        zones = [zone("zone-a", za_p99, 2), zone("zone-b", 40, 2)]
        res, state = decide_thresholds(inputs(now, models, zones, RouterThresholds(**router)), state, CFG)
        router.update(res.changes)
        return router["tier_complexity_threshold_ratio"], router["spill_inflight_per_replica"]

    # t=0: large 150 ms, small 40 ms; zone-a 150 ms, zone-b 40 ms -> tier 0.6, spill 8 -> 4
    assert tick(0, 150, 150) == (0.6, 4.0)
    # t=5: still so, but the step interval (10 s) holds both
    assert tick(5, 150, 150) == (0.6, 4.0)
    # t=10, 20, 30: one step each: tier 0.9 (its max), spill 1 (its minimum)
    for now in (10, 20, 30):
        tick(now, 150, 150)
    assert (state.tier.level, state.spill.level) == (4, 3)
    assert tick(35, 150, 150) == (0.9, 1.0)
    # t=40: the small tier fills up (75 ms > 0.7 x SLO): no headroom, so no further tier step
    assert tick(40, 150, 150, small_p99=75) == (0.9, 1.0)
    # t=45: everything recovers (large 60 ms, zone-a 50 ms): relief starts for both levers
    assert tick(45, 60, 50) == (0.9, 1.0)
    # t=75: 30 s of relief, 40 s since the last steps: one step back each
    assert tick(75, 60, 50) == (0.8, 2.0)
    # t=105, 135, 165: one step per 30 s; spill is back at 8 after three steps
    for now in (105, 135, 165):
        t, s = tick(now, 60, 50)
    assert (t, s) == (0.5, 8.0)


# ---- builders from the loop's view -------------------------------------------------------------------
def window(model_name, replica, zone_name, latency_ms, rate=10.0, queue=None, buckets=None) -> WindowStats:
    return WindowStats(
        model=model_name, replica=replica, zone=zone_name, window_s=30.0, end_s=100.0, requests=rate * 30,
        rate_rps=rate, error_ratio=0.0, latency_ms=latency_ms, queue_ms=None, p99_ms=None,
        cache_hit_ratio=None, queue_len=queue, tokens_per_s=None, buckets=buckets or {},
    )  # fmt: skip


def test_zone_loads_pick_the_worst_model_per_zone():
    stable = {
        (SMALL, "r0"): window(SMALL, "r0", "zone-a", 30, rate=20, queue=2),
        (LARGE, "r0"): window(LARGE, "r0", "zone-a", 450, rate=5, queue=4),  # 450/500 = 0.9
        (SMALL, "r1"): window(SMALL, "r1", "zone-b", 80, rate=10),  # 80/100 = 0.8
        (SMALL, "r2"): window(SMALL, "r2", "zone-b", 900, rate=10),  # being drained: left out
        (SMALL, "r3"): window(SMALL, "r3", "zone-c", None, rate=0, buckets={10.0: 0.0, 50.0: 99.0, float("inf"): 100.0}),
    }  # fmt: skip
    view = LiveView(100.0, {}, stable, {}, {}, (LARGE, SMALL))
    slo = {SMALL: 100.0, LARGE: 500.0}.get
    za, zb, zc = zone_loads(view, slo, exclude=frozenset({"r2"}))
    assert (za.zone, za.model, za.p99_ms, za.slo_p99_ms, za.replicas) == ("zone-a", LARGE, 450, 500.0, 1)
    assert (za.rate_per_replica_rps, za.queue_per_replica) == (25.0, 6.0)
    assert (zb.model, zb.p99_ms, zb.replicas, zb.rate_per_replica_rps, zb.queue_per_replica) == (
        SMALL,
        80,
        2,
        10.0,
        None,
    )
    assert zc.p99_ms == pytest.approx(50.0)  # from the histogram when there is one
    # a zone whose only replica is out of rotation still reports it
    (only,) = zone_loads(
        LiveView(100.0, {}, {(SMALL, "r2"): stable[(SMALL, "r2")]}, {}, {}, (SMALL,)), slo, frozenset({"r2"})
    )
    assert only.p99_ms == 900


def test_build_inputs_from_snapshots_and_replica_states():
    snap = ModelSnapshot(
        now_s=100.0, model=SMALL, observed_replicas=3, ready_replicas=2, rate_rps=30.0, rate_age_s=1.0,
        p99_ms=120.0, slo_p99_ms=100.0, spec_replicas=4,
    )  # fmt: skip
    view = LiveView(100.0, {}, {}, {}, {}, (SMALL,))
    built = build_threshold_inputs(
        100.0,
        view,
        [snap],
        rep_states={SMALL: ReplicaPolicyState(panic_until_s=130.0)},
        max_replicas={SMALL: 4},
        slo_for=lambda m: 100.0,
        current=BASE,
    )
    assert built.models == (ModelLoad(SMALL, 120.0, 100.0, True, 4, 4, 2),)
    assert built.zones == () and built.current == BASE
    assert built.models[0].at_max
    assert not in_surge(ReplicaPolicyState(panic_until_s=100.0), 100.0)
    assert not in_surge(None, 100.0)


def test_threshold_config_from_settings():
    s = Settings(
        router={"admit_below_load_ratio": {"premium": 1.0, "batch": 0.05}, "spill_inflight_per_replica": 4}
    )
    cfg = threshold_config(s, "advisory", restore_after_s=90.0)
    assert cfg.admit_below_load_ratio == {"premium": 1.0, "batch": 0.05}
    assert cfg.admit_floor_ratio == {"premium": 0.9, "batch": 0.05}  # floors never above the class
    assert (cfg.spill_inflight_per_replica, cfg.mode, cfg.restore_after_s) == (4.0, "advisory", 90.0)
    assert cfg.large_tier_model == s.router.large_tier_model
