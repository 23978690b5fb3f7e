"""The loop's thresholds step against the in-memory router fake: what is sent, when, and what is recorded."""

from __future__ import annotations

import json

from controlplane.actuators.result import ActuationStatus
from controlplane.actuators.router import FakeRouterControl
from controlplane.config import Settings
from controlplane.loop.live import LiveView
from controlplane.loop.recorder import Recorder
from controlplane.loop.router_thresholds import REFRESH_S, RouterThresholdsStep, router_baseline
from controlplane.policy.snapshot import ModelSnapshot
from tests.unit.loop_fakes import ListStore

SMALL = "classifier-small"
FAST = {"step_interval_s": 0.0, "restore_after_s": 10.0}


def snap(now, p99, spec=4, ready=4) -> ModelSnapshot:
    return ModelSnapshot(
        now_s=now, model=SMALL, observed_replicas=ready, ready_replicas=ready, rate_rps=50.0,
        rate_age_s=1.0, p99_ms=p99, slo_p99_ms=100.0, spec_replicas=spec,
    )  # fmt: skip


def setup(settings=None, manage_routing=True):
    s = settings or Settings(control={"manage_routing": manage_routing, "max_replicas": 4})
    router = FakeRouterControl(thresholds=router_baseline(s).as_dict())
    store = ListStore()
    rec = Recorder(store)
    return s, router, store, rec, RouterThresholdsStep(s, router, rec, tuning=FAST)


def tick(step, now, p99, mode="active", paused=False):
    view = LiveView(now, {}, {}, {}, {}, (SMALL,))
    return step.tick(
        now, view, [snap(now, p99)], rep_states={}, max_replicas={SMALL: 4}, mode=mode, paused=paused
    )


def test_overload_at_max_sets_thresholds_and_records_the_action():
    _s, router, store, rec, step = setup()
    res = tick(step, 0, 150)  # over the SLO at 4 of 4 replicas
    assert res.actuate
    assert router.calls == [("set_thresholds", {"thresholds": {"admit_below_load_ratio": {"premium": 1.0, "standard": 0.8, "batch": 0.4}}})]  # fmt: skip
    assert router.thresholds["admit_below_load_ratio"]["batch"] == 0.4
    rec.flush()
    (row,) = store.rows["actions"]
    assert (row["actuator"], row["action"], row["outcome"]) == ("router", "set_thresholds", "ok")
    assert row["decision_id"].startswith("thresholds::admission@")
    assert json.loads(row["params"])["thresholds"]["admit_below_load_ratio"]["batch"] == 0.4


def test_failed_send_is_retried_next_tick():
    _s, router, store, rec, step = setup()
    router.fail_next(ActuationStatus.UNAVAILABLE)
    tick(step, 0, 150)
    assert router.thresholds["admit_below_load_ratio"]["batch"] == 0.5  # not applied
    tick(step, 1, 150)  # level 2 now, and the router still at the baseline: both steps go out
    assert router.thresholds["admit_below_load_ratio"]["batch"] == 0.3
    rec.flush()
    assert [r["outcome"] for r in store.rows["actions"]] == ["failed", "ok"]


def test_engaged_thresholds_are_resent_for_a_restarted_router():
    s, router, _store, _rec, step = setup()
    tick(step, 0, 150)
    router.thresholds = router_baseline(s).as_dict()  # the router restarted: back to its config
    tick(step, 1, 90)  # dead band: no change decided, and the last send was 1 s ago
    assert router.thresholds["admit_below_load_ratio"]["batch"] == 0.5
    tick(step, REFRESH_S + 1, 90)  # refresh period over: the engaged values go out again
    assert router.thresholds["admit_below_load_ratio"]["batch"] == 0.4


def test_advisory_paused_and_unmanaged_send_nothing():
    for kwargs, manage in (({"mode": "advisory"}, True), ({"paused": True}, True), ({}, False)):
        _s, router, _store, _rec, step = setup(manage_routing=manage)
        res = tick(step, 0, 150, **kwargs)
        assert router.calls == [], kwargs
        assert res.decisions[0].final == 1  # decided (would tighten) all the same
