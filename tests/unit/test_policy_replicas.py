"""Replica policy: tick-by-tick scenarios on a fake clock (15 s ticks), a comment per step.

Capacity 10 rps per replica at the SLO, headroom 0.2: each replica carries 8 rps.
The loop's part is simulated by `Sim`: an active decision becomes the next tick's count.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from controlplane.forecast.forecasters import Quantiles
from controlplane.policy import (
    ModelSnapshot,
    ReplicaPolicyConfig,
    ReplicaPolicyState,
    decide_replicas,
    forecast_at,
)
from controlplane.policy.rails import RailsConfig

TICK_S = 15.0
CFG = ReplicaPolicyConfig(
    headroom_ratio=0.2,
    stale_after_s=30.0,
    rails=RailsConfig(min_replicas=1, max_replicas=20, max_up_step=4, max_down_step=1, step_interval_s=60.0),
)


class Sim:
    def __init__(self, replicas: int, cfg: ReplicaPolicyConfig = CFG):
        self.now_s = 1_700_000_000.0
        self.replicas = replicas
        self.cfg = cfg
        self.state = ReplicaPolicyState()
        self.decisions = []

    def tick(self, rate_rps=None, *, short=None, age_s=5.0, **kw):
        snap = ModelSnapshot(
            now_s=self.now_s, model="classifier-small", observed_replicas=self.replicas,
            ready_replicas=self.replicas, rate_rps=rate_rps, rate_age_s=age_s if rate_rps is not None else None,
            short_rate_rps=short if short is not None else rate_rps, capacity_rps=kw.pop("capacity_rps", 10.0), **kw,
        )  # fmt: skip
        d, self.state = decide_replicas(snap, self.state, self.cfg)
        if d.actuate:
            self.replicas = d.final
        self.decisions.append(d)
        self.now_s += TICK_S
        return d


def test_surge_panics_within_one_tick_and_never_scales_down_during_it():
    sim = Sim(2)
    # t=0: steady 12 rps on 2 replicas (16 rps usable): hold.
    assert sim.tick(12.0).final == 2
    # t=15: the short window jumps to 48 rps >= 2 x 20 rps the 2 ready replicas carry: panic,
    # sized from the short window (48 / 8 = 6), up +4 in one tick.
    d = sim.tick(14.0, short=48.0)
    assert "panic" in d.reason_codes and d.final == 6 and d.actuate
    # t=30: the short window dips to 10 rps (bursty); the stable rate says 2 would do, but the
    # panic holds for 60 s: no scale-down.
    d = sim.tick(10.0, short=10.0)
    assert d.final == 6 and "panic_hold" in d.reason_codes
    # t=45 .. t=60: still inside the hold: still 6.
    assert [sim.tick(10.0).final for _ in range(2)] == [6, 6]
    # t=75: the panic is over; the 300 s window still remembers 6: no scale-down yet.
    d = sim.tick(10.0)
    assert d.final == 6 and "panic_hold" not in d.reason_codes and "stabilised_down" in d.reason_codes
    assert all(x.kind != "scale_down" for x in sim.decisions)


def test_slow_decline_scales_down_after_the_window_one_step_at_a_time():
    sim = Sim(6)
    # t=0: 45 rps needs 6 replicas (45 / 8 = 5.6).
    assert sim.tick(45.0).final == 6
    # t=15 .. t=285: the load falls to 20 rps (3 replicas would do) and stays there: every
    # recommendation in the last 300 s still includes the 6: hold.
    for _ in range(19):
        d = sim.tick(20.0)
        assert d.final == 6 and d.recommended == 3
    # t=300: the 6 from t=0 leaves the window: one step down (max 1 per 60 s).
    d = sim.tick(20.0)
    assert (d.final, d.kind) == (5, "scale_down") and "step_limited_down" in d.reason_codes
    # t=315 .. t=345: the step interval is used up: hold at 5.
    assert [sim.tick(20.0).final for _ in range(3)] == [5, 5, 5]
    # t=360: next step down; then one per minute until 3.
    assert sim.tick(20.0).final == 4
    finals = [sim.tick(20.0).final for _ in range(8)]
    assert finals == [4, 4, 4, 3, 3, 3, 3, 3]
    downs = [d for d in sim.decisions if d.kind == "scale_down"]
    assert all(d.current - d.final == 1 for d in downs)


def test_scale_down_checks_the_remaining_replicas_carry_the_load():
    # 4 replicas; the stable rate says 2, but the short window runs 30 rps: 3 replicas carry
    # 24 rps only, so the guard stops the scale-down (worst case in the direction of travel).
    cfg = replace(CFG, rails=replace(CFG.rails, down_window_s=0.0))
    sim = Sim(4, cfg)
    d = sim.tick(12.0, short=30.0)
    assert d.final == 4 and "scale_down_blocked_capacity" in d.reason_codes and not d.actuate
    # Without a capacity model nothing may scale down from load at all.
    d = sim.tick(12.0, capacity_rps=None, forecast_p90_rps=None)
    assert d.final == 4 and "no_capacity" in d.reason_codes


def test_flapping_load_does_not_flap_decisions():
    sim = Sim(2)
    # t=0 .. t=600: the load alternates 30 rps / 10 rps every tick (4 vs 2 replicas).
    for i in range(40):
        sim.tick(30.0 if i % 2 == 0 else 10.0)
    finals = [d.final for d in sim.decisions]
    # Up once (2 -> 4 at t=0), then held at 4: the 300 s window always contains a 4.
    assert finals[0] == 4 and set(finals) == {4}
    changes = sum(1 for a, b in zip(finals, finals[1:], strict=False) if a != b)
    assert changes == 0


def test_telemetry_blackout_is_no_decision_and_never_scales_down():
    sim = Sim(5)
    # t=0: 35 rps on 5 replicas: hold.
    assert sim.tick(35.0).final == 5
    # t=15: the scrape breaks; the last sample ages 45 s > 30 s: stale, no decision.
    d = sim.tick(1.0, age_s=45.0)
    assert d.final is None and d.reason_codes == ["stale_data"] and not d.actuate and d.kind == "none"
    # t=30 .. t=600: no rate at all (the series vanished): no decision every tick, the count stays.
    for _ in range(38):
        d = sim.tick(None)
        assert d.final is None and d.reason_codes == ["no_data"]
    assert sim.replicas == 5 and all(not d.actuate for d in sim.decisions)


def test_a_too_low_forecast_floor_is_topped_up_by_the_reactive_path():
    sim = Sim(2)
    # t=0: the forecast says 10 rps (floor 2), but 50 rps arrive (7 replicas): up to +4 now.
    d = sim.tick(50.0, forecast_p90_rps=10.0)
    assert d.inputs["floor_replicas"] == 2 and d.recommended == 7 and d.final == 6
    assert d.reason_codes[0] == "load_over_capacity"
    # t=15: the rest (the step interval allows max(4, 100 % of 6)).
    assert sim.tick(50.0, forecast_p90_rps=10.0).final == 7


def test_forecast_floor_holds_capacity_ahead_of_the_load():
    sim = Sim(2)
    # t=0: 10 rps now, but the forecast one startup-time ahead says 60 rps: the floor is 8.
    d = sim.tick(10.0, forecast_p90_rps=60.0)
    assert d.reason_codes[0] == "forecast_floor" and d.recommended == 8 and d.final == 6


@pytest.mark.parametrize(
    ("kw", "reason", "want"),
    [
        ({"queue_len": 60.0}, "queue_over_target", 8),  # 60 queued / 8 per replica
        ({"queue_len": 17.0}, None, 2),  # 8.5 per replica: inside the 10 % dead-band
        ({"p99_ms": 300.0, "slo_p99_ms": 100.0}, "latency_over_slo", 6),  # 3 x SLO -> 3 x 2
        ({"p99_ms": 105.0, "slo_p99_ms": 100.0}, None, 2),  # dead-band
    ],
)
def test_reactive_signals_add_above_the_load(kw, reason, want):
    d = Sim(2).tick(10.0, **kw)
    assert d.recommended == want
    assert (reason in d.reason_codes) if reason else ("queue_over_target" not in d.reason_codes)


def test_advisory_mode_changes_nothing_but_computes_the_final():
    cfg = replace(CFG, rails=replace(CFG.rails, mode="advisory"))
    sim = Sim(2, cfg)
    # t=0 .. t=30: a surge; advisory says what it would do, every tick, and touches nothing.
    for _ in range(3):
        d = sim.tick(40.0, short=60.0)
        assert (d.final, d.actuate, d.mode) == (6, False, "advisory")
        assert "would scale to 6" in d.message and d.as_row()["mode"] == "advisory"
    assert sim.replicas == 2


def test_forecast_at_reads_the_step_one_startup_time_ahead():
    q = Quantiles(p50=[1.0, 2.0, 3.0], p90=[10.0, 20.0, 30.0])
    assert forecast_at(q, 60.0, 90.0) == 20.0  # 90 s ahead -> step 2 (covers up to 120 s)
    assert forecast_at(q, 60.0, 10.0) == 10.0
    assert forecast_at(q, 60.0, 1000.0) == 30.0  # past the horizon: the last step
    assert forecast_at(Quantiles(p50=[], p90=[]), 60.0, 10.0) is None


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="replicas.headroom_ratio=1.0"):
        ReplicaPolicyConfig(headroom_ratio=1.0)


# ---- backlog mode and the floor's lead cap (the benchmark's settings, controlplane/sim/bench.py) ----

BACKLOG = replace(
    CFG,
    backlog_drain_s=30.0,
    latency_settle_s=30.0,
    rails=replace(CFG.rails, max_down_ratio=0.5),
)


def _snap(now_s=1_700_000_000.0, *, current, ready, rate, queue=0.0, p99_ms=None, forecast=None, short=None):
    return ModelSnapshot(
        now_s=now_s, model="chat-lm", observed_replicas=current, ready_replicas=ready, rate_rps=rate,
        rate_age_s=1.0, short_rate_rps=rate if short is None else short, queue_len=queue, p99_ms=p99_ms,
        slo_p99_ms=1000.0, forecast_p90_rps=forecast, capacity_rps=10.0, spec_replicas=current,
    )  # fmt: skip


def test_backlog_mode_sizes_the_queue_against_every_replica_ordered():
    # 2 ready, 6 ordered (4 starting), 40 rps, 300 queued, p99 10 x the SLO (the backlog's age).
    snap = _snap(current=6, ready=2, rate=40.0, queue=300.0, p99_ms=10_000.0)
    # The queue / target and p99 x ready rules order again on every tick of the start-up:
    # 300 / 8 = 38 and 2 x 10 = 20 replicas for a load that 5 carry.
    legacy, _ = decide_replicas(snap, ReplicaPolicyState(), CFG)
    assert legacy.recommended == 38
    # Backlog mode: the load and the queue drained in 30 s, (40 + 300 / 30) / 8 -> 7; the p99
    # of a fleet still starting is not read.
    d, state = decide_replicas(snap, ReplicaPolicyState(), BACKLOG)
    assert d.recommended == 7 and d.inputs["queue_replicas"] == 7
    assert "latency_over_slo" not in d.reason_codes and state.settle_from_s == snap.now_s
    # A step up shows in the short window first: it sizes the load part, (60 + 10) / 8 -> 9.
    d, _ = decide_replicas(replace(snap, short_rate_rps=60.0), ReplicaPolicyState(), BACKLOG)
    assert d.inputs["queue_replicas"] == 9


def test_backlog_mode_does_not_read_the_p99_of_a_fleet_still_starting():
    # No queue left, but 3 of 6 still start: the p99 (3 x SLO) is the backlog they will clear.
    snap = _snap(current=6, ready=3, rate=40.0, p99_ms=3000.0)
    d, state = decide_replicas(snap, ReplicaPolicyState(), BACKLOG)
    assert "latency_over_slo" not in d.reason_codes and state.settle_from_s == snap.now_s
    d, _ = decide_replicas(snap, ReplicaPolicyState(), CFG)  # the legacy rule: 3 x 3 -> 9
    assert "latency_over_slo" in d.reason_codes and d.recommended == 9


def test_backlog_mode_keeps_starting_replicas_while_the_backlog_drains():
    # 8 ordered, 5 ready, 400 queued (80 per ready replica): the load + drain says 7, but
    # cancelling a replica mid-start would only restart it later.
    d, _ = decide_replicas(_snap(current=8, ready=5, rate=40.0, queue=400.0), ReplicaPolicyState(), BACKLOG)
    assert d.inputs["queue_replicas"] == 7 and d.recommended == 8 and d.final == 8


def test_backlog_replicas_leave_once_the_backlog_is_gone():
    sim_state = ReplicaPolicyState()
    t = 1_700_000_000.0
    # t=0: 5 replicas carry 40 rps but 600 are queued: (40 + 20) / 8 -> 8.
    d, sim_state = decide_replicas(_snap(t, current=5, ready=5, rate=40.0, queue=600.0), sim_state, BACKLOG)
    assert d.final == 8
    # t=75: all 8 ready, the queue is gone, p99 is back: the load needs 5 and the down window
    # did not remember the backlog's 8 -> down by max(1, 50 % of 8) = 4, guard-limited to 5.
    d, sim_state = decide_replicas(
        _snap(t + 75, current=8, ready=8, rate=40.0, p99_ms=500.0), sim_state, BACKLOG
    )
    assert d.final == 5 and d.kind == "scale_down"
    # The same with the legacy queue rule holds the 20 it ordered for the whole 300 s window.
    st = ReplicaPolicyState()
    d, st = decide_replicas(_snap(t, current=5, ready=5, rate=40.0, queue=600.0), st, CFG)
    d, st = decide_replicas(_snap(t + 75, current=d.final, ready=d.final, rate=40.0), st, CFG)
    assert "stabilised_down" in d.reason_codes and d.final > 8


def test_backlog_mode_reads_the_p99_again_once_it_has_settled():
    t = 1_700_000_000.0
    st = ReplicaPolicyState(settle_from_s=t)  # the last backlog tick
    # 20 s later: the p99 window still holds the backlog's requests: not read.
    d, st = decide_replicas(_snap(t + 20, current=5, ready=5, rate=30.0, p99_ms=3000.0), st, BACKLOG)
    assert "latency_over_slo" not in d.reason_codes
    # 31 s later, with no backlog since: a p99 over the SLO is the replicas' own: 5 x 3 -> 15.
    d, st = decide_replicas(_snap(t + 31, current=5, ready=5, rate=30.0, p99_ms=3000.0), st, BACKLOG)
    assert "latency_over_slo" in d.reason_codes and d.inputs["latency_replicas"] == 15


@pytest.mark.parametrize(
    ("forecast", "floor", "capped"),
    [
        (200.0, 2, True),  # an outage's possible end: 10 rps now -> at most 15 rps -> 2
        (14.0, 2, False),  # a ramp within 50 % of now: the forecast as it is
        (12.0, 2, False),
    ],
)
def test_forecast_floor_leads_the_observed_load_by_at_most_the_lead_ratio(forecast, floor, capped):
    cfg = replace(CFG, forecast_max_lead_ratio=0.5)
    d, _ = decide_replicas(_snap(current=2, ready=2, rate=10.0, forecast=forecast), ReplicaPolicyState(), cfg)
    assert d.inputs["floor_replicas"] == floor and ("forecast_lead_capped_rps" in d.inputs) == capped
    # Uncapped (the library default) the p90 of 200 rps holds 25 replicas.
    d, _ = decide_replicas(_snap(current=2, ready=2, rate=10.0, forecast=200.0), ReplicaPolicyState(), CFG)
    assert d.inputs["floor_replicas"] == 25


def test_backlog_mode_does_not_remember_a_latency_spike_while_requests_queue():
    t = 1_700_000_000.0
    # 5 ready carry 30 rps; a burst queued 20 requests (4 per replica, no real backlog) and the
    # p99 reads 1.5 x the SLO: 5 x 1.5 -> 8 for now, but not for the 300 s down window.
    d, st = decide_replicas(
        _snap(t, current=5, ready=5, rate=30.0, queue=20.0, p99_ms=1500.0), ReplicaPolicyState(), BACKLOG
    )
    assert d.inputs["latency_replicas"] == 8 and d.final == 8
    # 5 s later the burst has passed (no queue, p99 settled): back to the 4 the load needs
    # (a 50 % step of the rails); nothing held the 8.
    d, st = decide_replicas(_snap(t + 5, current=8, ready=5, rate=30.0), st, BACKLOG)
    assert d.final == 4 and "stabilised_down" not in d.reason_codes
    # Without a queue the same p99 is the replicas' own: remembered by the down window.
    d, st = decide_replicas(
        _snap(t, current=5, ready=5, rate=30.0, p99_ms=1500.0), ReplicaPolicyState(), BACKLOG
    )
    d, st = decide_replicas(_snap(t + 5, current=8, ready=8, rate=30.0), st, BACKLOG)
    assert d.final == 8 and "stabilised_down" in d.reason_codes


BURST = replace(CFG, burst_window_s=60.0, burst_quantile_ratio=0.75)


def test_burst_load_sizes_for_the_recent_short_window_bursts():
    sim = Sim(4, BURST)
    # A bursty 24 rps: the stable rate says 24 / 8 -> 3, but every fourth 15 s tick the 6 s
    # window reads 56 rps.
    for short in (20.0, 20.0, 20.0, 56.0):
        d = sim.tick(24.0, short=short)
    # Four samples in the 60 s window; their 0.75 quantile is the 56 rps burst: 56 / 8 -> 7.
    assert d.inputs["burst_rate_rps"] == 56.0 and d.inputs["load_replicas"] == 7
    assert "burst_load" in d.reason_codes
    # Without burst load the same ticks need 3.
    plain = Sim(4)
    for short in (20.0, 20.0, 20.0, 56.0):
        d = plain.tick(24.0, short=short)
    assert d.inputs["load_replicas"] == 3 and "burst_rate_rps" not in d.inputs


def test_burst_load_forgets_bursts_older_than_its_window():
    sim = Sim(7, BURST)
    sim.tick(24.0, short=56.0)
    for _ in range(4):  # 60 s of calm 6 s windows: the burst left the window
        d = sim.tick(24.0, short=20.0)
    assert d.inputs["burst_rate_rps"] == 20.0 and d.inputs["load_replicas"] == 3
    assert "burst_load" not in d.reason_codes
    assert all(now > sim.now_s - TICK_S - 60.0 for now, _ in sim.state.short_rates)


SUSTAINED = replace(BURST, burst_quantile_ratio=0.0, sustained_window_s=30.0)  # burst load idle


def test_sustained_load_sizes_a_step_up_once_every_short_window_of_its_span_shows_it():
    sim = Sim(3, SUSTAINED)
    # t=0: 20 rps on 3 replicas (24 rps usable); 15 s of history does not cover the 30 s span.
    d = sim.tick(20.0, short=20.0)
    assert "sustained_rate_rps" not in d.inputs
    # t=15, t=30: the load steps to 40 rps; the stable (60 s) window lags at 25, 30 rps. The
    # span still holds t=0's 20 rps window: a step is not a level until the whole span shows it.
    sim.tick(25.0, short=40.0)
    d = sim.tick(30.0, short=40.0)
    assert d.inputs["sustained_rate_rps"] == 20.0 and d.inputs["load_replicas"] == 4  # 30 / 8
    # t=45: every short window of the last 30 s reads 40: sized for 40 (5); the stable window's
    # 30 rps would keep 4.
    d = sim.tick(30.0, short=40.0)
    assert d.inputs["sustained_rate_rps"] == 40.0 and d.inputs["load_replicas"] == 5
    assert "sustained_load" in d.reason_codes and "burst_load" not in d.reason_codes


def test_sustained_load_ignores_a_single_burst():
    sim = Sim(3, SUSTAINED)
    for short in (20.0, 20.0, 56.0):
        d = sim.tick(20.0, short=short)
    # The 56 rps window is one of three in the span: the minimum stays 20.
    assert d.inputs["sustained_rate_rps"] == 20.0 and "sustained_load" not in d.reason_codes


LEAD = replace(BACKLOG, backlog_lead_s=60.0)


def test_backlog_lead_drains_the_queue_the_first_order_will_find():
    t = 1_700_000_000.0
    # 5 ready carry 50 rps at the SLO; the load is 70 rps and 40 requests queue.
    d, st = decide_replicas(_snap(t, current=5, ready=5, rate=70.0, queue=40.0), ReplicaPolicyState(), LEAD)
    # In the 60 s until replicas ordered now serve, the queue grows by 20 rps x 60 s to 1240:
    # (70 + 1240 / 30) / 8 -> 14, where today's 40 queued asks (70 + 40 / 30) / 8 -> 9.
    assert d.inputs["projected_queue_len"] == 1240.0 and d.inputs["queue_replicas"] == 14
    plain, _ = decide_replicas(
        _snap(t, current=5, ready=5, rate=70.0, queue=40.0), ReplicaPolicyState(), BACKLOG
    )
    assert plain.inputs["queue_replicas"] == 9
    # 30 s on, 640 queue: the same start-up end, 30 s away -> the same 1240 (no re-order).
    d, st = decide_replicas(_snap(t + 30, current=14, ready=5, rate=70.0, queue=640.0), st, LEAD)
    assert d.inputs["projected_queue_len"] == 1240.0 and d.final == 14
    # Past the start-up the projection is the queue itself; once it is gone, so is the backlog.
    d, st = decide_replicas(_snap(t + 70, current=14, ready=14, rate=70.0, queue=900.0), st, LEAD)
    assert d.inputs["projected_queue_len"] == 900.0
    d, st = decide_replicas(_snap(t + 75, current=14, ready=14, rate=70.0), st, LEAD)
    assert st.backlog_from_s is None and "projected_queue_len" not in d.inputs


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"burst_window_s": 0.0}, "burst_window_s"),
        ({"burst_quantile_ratio": 1.5}, "burst_quantile_ratio"),
        ({"backlog_drain_s": 0.0}, "backlog_drain_s"),
        ({"latency_settle_s": -1.0}, "latency_settle_s"),
        ({"forecast_max_lead_ratio": float("nan")}, "forecast_max_lead_ratio"),
        ({"sustained_window_s": 30.0}, "sustained_window_s"),  # needs burst_window_s
        ({"burst_window_s": 60.0, "sustained_window_s": 90.0}, "sustained_window_s"),
        ({"backlog_lead_s": 60.0}, "backlog_lead_s"),  # needs backlog_drain_s
        ({"backlog_drain_s": 30.0, "backlog_lead_s": -1.0}, "backlog_lead_s"),
    ],
)
def test_new_config_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"replicas.{key}="):
        ReplicaPolicyConfig(**kw)
