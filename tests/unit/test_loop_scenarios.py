"""Tick-by-tick scenarios of the control loop on a fake clock, with fake actuators.

A `World` plays a fleet: every replica serves the model, load splits across replicas in
proportion to their router weight, latency rises as a replica nears its capacity, and each step
the replicas' cumulative Triton counters are scraped into the loop's live window. Replicas the
loop adds start serving after STARTUP_S.
"""

from __future__ import annotations

import json

import pytest

from controlplane.actuators.replicas import FakeReplicaProcesses
from controlplane.actuators.router import FakeRouterControl
from controlplane.api.overrides import Override, OverrideRequest
from controlplane.config import Settings
from controlplane.loop.controller import Controller
from controlplane.loop.live import LiveWindow
from controlplane.loop.recorder import Recorder
from tests.unit.loop_fakes import ListStore, SimReplica

MODEL = "classifier-small"
CAPACITY_RPS = 50.0
STARTUP_S = 10.0
STEP_S = 2.0


def settings(**control) -> Settings:
    base = {
        "min_replicas": 1,
        "max_replicas": 8,
        "capacity_rps_by_model": {MODEL: CAPACITY_RPS},
        "slo_p99_ms": 100.0,
        "scale_down_window_s": 60.0,
        "step_interval_s": 10.0,
        "stable_window_s": 20.0,
        "short_window_s": 4.0,
        "restore_after_s": 6.0,
        "replace_after_s": 30.0,
        "forecast": False,
    }
    base.update(control)
    return Settings(
        control=base, collect={"scrape_interval_s": STEP_S}, fleet={"zones": ["zone-a", "zone-b"]}
    )


def _ov(body: dict, now_s: float) -> Override:
    return Override.from_request(OverrideRequest(**body), now_s)


class World:
    def __init__(self, s: Settings, replicas: int = 2, forecast=None) -> None:
        self.now = 1_000_000.0
        self.procs = FakeReplicaProcesses(
            {f"replica-{i}": ("zone-a", "zone-b")[i % 2] for i in range(replicas)}, zones=["zone-a", "zone-b"]
        )
        self.sims = {n: SimReplica(n, z, self.now - 100) for n, z in self.procs.replicas.items()}
        self.router = FakeRouterControl()
        self.store = ListStore()
        self.live = LiveWindow()
        self.slow: dict[str, float] = {}  # replica -> added latency (ms)
        self.blackout = False
        self.ctl = Controller(
            s,
            self.live,
            Recorder(self.store),
            fleet_state=lambda: [self.sims[n].fleet() for n in self.procs.replicas if n in self.sims],
            processes=self.procs,
            router=self.router,
            forecast_p90=forecast,
            scrape_interval_s=STEP_S,
            inline_ops=True,
        )

    def replicas(self) -> int:
        return len(self.procs.replicas)

    def step(self, rate_rps: float, n: int = 1) -> dict:
        report = {}
        for _ in range(n):
            self.now += STEP_S
            for name, zone in self.procs.replicas.items():  # the fake started a new one
                if name not in self.sims:
                    self.sims[name] = SimReplica(name, zone, self.now)
            for name in [k for k in self.sims if k not in self.procs.replicas]:
                del self.sims[name]
            serving = [s for s in self.sims.values() if self.now - s.started_at_s >= STARTUP_S]
            w = {s.name: self.router.weights.get(s.name, 100.0) for s in serving}
            total_w = sum(w.values()) or 1.0
            for s in serving:
                r = rate_rps * w[s.name] / total_w
                util = min(r / CAPACITY_RPS, 0.99)
                latency = 10.0 / (1.0 - util) + self.slow.get(s.name, 0.0)  # M/M/1-like
                s.advance(MODEL, STEP_S, r, latency, queue=max(0.0, (util - 0.8) * 40))
                if not self.blackout:
                    self.live.add(s.sample(self.now))
            report = self.ctl.tick(self.now)
        return report

    def actions(self, actuator: str) -> list[dict]:
        return [a for a in self.store.rows.get("actions", []) if a["actuator"] == actuator]


def test_surge_adds_capacity_then_scales_down_slowly():
    w = World(settings())
    w.step(40.0, 15)  # steady 40 rps on 2 replicas (capacity 50 each): no change
    assert w.replicas() == 2
    w.step(240.0, 3)  # a surge to 240 rps: the short window trips panic, replicas are added at once
    assert w.replicas() >= 3
    w.step(240.0, 20)  # the surge holds: at least 240 / (50 * 0.8) = 6 replicas
    assert w.replicas() >= 6
    peak = w.replicas()
    adds = [a for a in w.actions("replicas") if a["action"] == "add"]
    assert adds and all(a["outcome"] == "ok" for a in adds)
    decisions = w.store.rows["decisions"]
    assert any("panic" in d["reason_codes"] for d in decisions)
    w.step(40.0, 10)  # load falls back: nothing is removed inside the scale-down window (60 s)
    assert w.replicas() == peak
    w.step(40.0, 60)  # after the window, one replica per step interval goes
    assert 2 <= w.replicas() < peak


def test_slow_decline_scales_down_one_at_a_time_and_never_below_the_load():
    w = World(settings(), replicas=6)
    for rate in range(200, 30, -10):  # a slow decline, 10 rps every 4 s
        w.step(float(rate), 2)
    w.step(30.0, 60)
    removes = [a for a in w.actions("replicas") if a["action"] == "remove"]
    assert removes
    assert w.replicas() >= 1
    assert w.replicas() * CAPACITY_RPS >= 30.0  # never below what the load needs


def test_flapping_load_does_not_flap_replicas():
    w = World(settings(), replicas=3)
    for _ in range(15):  # 60 <-> 110 rps every other step
        w.step(60.0)
        w.step(110.0)
    removes = [a for a in w.actions("replicas") if a["action"] == "remove"]
    adds = [a for a in w.actions("replicas") if a["action"] == "add"]
    assert not (removes and adds), "flapping load must not add and remove in turn"


def test_telemetry_blackout_never_scales_down():
    w = World(settings(), replicas=4)
    w.step(40.0, 5)  # 40 rps on 4 replicas: over-provisioned but within the scale-down window
    w.blackout = True  # scrapes stop arriving
    w.step(40.0, 60)  # 2 minutes without data
    assert w.replicas() == 4
    last = [d for d in w.store.rows["decisions"] if d["policy"] == "replicas"][-1]
    assert "stale_data" in last["reason_codes"]


def test_a_wrong_forecast_floor_is_corrected_by_the_reactive_path():
    # The forecast says 20 rps; 200 arrive. The floor (1 replica) does not hold the fleet back.
    w = World(settings(), replicas=2, forecast=lambda model, ahead_s: 20.0)
    w.step(200.0, 25)
    assert w.replicas() >= 5
    # A forecast above the load keeps replicas up (the floor) without any reactive signal...
    w2 = World(settings(), replicas=2, forecast=lambda model, ahead_s: 150.0)
    w2.step(80.0, 20)  # 2 replicas carry 80 rps (40 usable each); the floor asks for 4
    assert w2.replicas() >= 4
    assert any("forecast_floor" in d["reason_codes"] for d in w2.store.rows["decisions"])
    # ...but not one far above everything seen (an outage's possible end, or a forecast gone
    # wrong): the floor leads the load by at most control.forecast_max_lead_ratio (100 %).
    w3 = World(settings(), replicas=2, forecast=lambda model, ahead_s: 300.0)
    w3.step(20.0, 20)
    assert w3.replicas() <= 2
    capped = [json.loads(d["inputs"]) for d in w3.store.rows["decisions"] if d["policy"] == "replicas"]
    assert capped[-1]["forecast_lead_capped_rps"] == pytest.approx(40.0, rel=0.1)


def test_slow_replica_is_drained_then_restored():
    w = World(settings(), replicas=3)
    w.step(60.0, 15)  # warm up: 3 healthy replicas at full weight
    w.slow["replica-1"] = 300.0  # replica-1 becomes slow (+300 ms)
    w.step(60.0, 6)
    assert w.router.weights["replica-1"] < 100  # drained gradually
    assert w.router.weights["replica-0"] == 100
    assert w.replicas() == 3  # one slow replica is a routing matter: no replica is added for it
    w.slow.clear()  # it recovers
    seen = []
    for _ in range(30):
        w.step(60.0)
        seen.append(w.router.weights["replica-1"])
    assert 100 in seen  # restored once its incident closed and it served well
    assert seen.index(100) > 0 and seen[0] < 100  # gradually, not at once
    assert any(a["action"] == "set_weights" for a in w.actions("router"))


def test_replica_bad_for_too_long_is_replaced():
    w = World(settings(), replicas=3)
    w.step(60.0, 10)
    w.slow["replica-2"] = 500.0
    w.step(60.0, 25)  # bad for > replace_after_s (30 s)
    replaced = [a for a in w.actions("replicas") if a["action"] == "replace"]
    assert replaced and replaced[0]["replica"] == "replica-2"
    assert "replica-2" not in w.procs.replicas


def test_advisory_mode_records_but_changes_nothing():
    w = World(settings(mode="advisory"), replicas=2)
    w.step(240.0, 20)
    assert w.replicas() == 2
    assert w.router.operations() == [] or all(op != "set_weights" for op in w.router.operations())
    ds = [d for d in w.store.rows["decisions"] if d["policy"] == "replicas"]
    assert any(d["mode"] == "advisory" and d["action"] == "scale_up" for d in ds)
    assert not w.store.rows.get("actions")


def test_pause_override_stops_actuation_and_pin_fixes_the_count():
    w = World(settings(), replicas=2)
    w.ctl.add_override(_ov({"model": "*", "action": "pause", "reason": "t"}, w.now))
    w.step(240.0, 10)
    assert w.replicas() == 2
    assert any("paused" in d["reason_codes"] for d in w.store.rows["decisions"])
    w.ctl.add_override(_ov({"model": "*", "action": "resume", "reason": "t"}, w.now))
    w.ctl.add_override(_ov({"model": MODEL, "action": "pin", "replicas": 3, "reason": "t"}, w.now))
    w.step(240.0, 20)
    assert w.replicas() == 3


def test_store_outage_loses_no_decision():
    w = World(settings(), replicas=2)
    w.store.down = True
    w.step(40.0, 5)
    assert "decisions" not in w.store.rows
    pending = w.ctl.recorder.pending()
    assert pending > 0
    w.store.down = False
    w.step(40.0, 1)
    assert sum(len(rows) for rows in w.store.rows.values()) >= pending
    assert w.ctl.recorder.pending() == 0


@pytest.mark.parametrize("mode", ["off"])
def test_mode_off_makes_no_decision(mode):
    w = World(settings(mode=mode), replicas=2)
    w.step(240.0, 10)
    assert w.replicas() == 2


def test_a_cold_cache_is_reported_but_not_drained(monkeypatch):
    # replica-2's response cache answers nothing (a new replica's cold cache): an incident opens
    # on cache_hit_ratio for the SREs, but only latency, queue and error incidents drain.
    w = World(settings(), replicas=3)
    orig = SimReplica.advance

    def advance(self, model, dt_s, rate_rps, latency_ms, **kw):
        orig(
            self, model, dt_s, rate_rps, latency_ms, cache_hit_ratio=0.0 if self.name == "replica-2" else 0.6
        )

    monkeypatch.setattr(SimReplica, "advance", advance)
    w.step(60.0, 30)
    opened = [e for e in w.store.rows.get("anomaly_events", []) if e["reason_codes"][0] == "opened"]
    assert any(e["replica"] == "replica-2" and e["metric"] == "cache_hit_ratio" for e in opened)
    assert w.router.weights.get("replica-2", 100) == 100
