"""`fleetpilot up` as a real process against the shared real-Triton fleet and router.

Runs last in the integration folder (it changes the fleet: it adds and replaces replicas).
1. Advisory mode under steady load: a clean period raises no incident; a slow replica, an error
   burst, a response-cache collapse and memory growth are each detected on the right replica and
   metric (within 10 scrape intervals here; `fleetpilot bench faults` measures how fast);
   nothing is actuated.
2. Active mode: a surge through the router adds a replica; a slowed replica is drained, then
   restored once the fault is gone; a killed replica is replaced; a telemetry blackout (every
   replica frozen) neither scales down nor replaces anything. SIGTERM ends `up` cleanly and its
   final flush is in the store.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from controlplane.loop.faultcheck import ApiEvents, SteadyLoad, run_cases
from controlplane.loop.up_process import UpProcess
from serving.faults import Faults
from tests.integration.conftest import TEST_TOKEN

pytestmark = pytest.mark.integration

API_PORT = int(os.environ.get("FLEETPILOT_TEST_API_PORT", "18480"))
SCRAPE_S = 2.0
MODEL = "classifier-small"


def up_env(fleet, tmp_path, **control) -> dict[str, str]:
    env = dict(fleet.env)
    env.update(
        {
            "FLEETPILOT_STORE__DSN": f"chdb:///{tmp_path / 'store'}",
            "FLEETPILOT_API__PORT": str(API_PORT),
            "FLEETPILOT_COLLECT__SCRAPE_INTERVAL_S": str(SCRAPE_S),
            "FLEETPILOT_COLLECT__BATCH_MAX_AGE_S": "2",
            "FLEETPILOT_CONTROL__FORECAST": "false",
        }
    )
    for k, v in control.items():
        env[f"FLEETPILOT_CONTROL__{k.upper()}"] = str(v)
    return env


def api(path: str, **params) -> dict:
    r = httpx.get(f"http://127.0.0.1:{API_PORT}{path}", params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_live_faults_are_detected_on_the_right_replica_in_advisory_mode(fleet, tmp_path):
    names = [r.name for r in fleet.replicas]
    victim = names[-1]
    load = SteadyLoad(lambda: [r.http_url for r in fleet.replicas], rate_rps=15.0).start()
    up = UpProcess(
        up_env(fleet, tmp_path), f"http://127.0.0.1:{API_PORT}", tmp_path / "up.log", ("--advisory",)
    )
    try:
        up.start()
        report = run_cases(
            set_faults=lambda name, f: fleet.manager.set_faults(name, f),
            victim=victim,
            events_since=ApiEvents(up.api_url).since,
            scrape_interval_s=SCRAPE_S,
            clean_s=40.0,
            settle_s=16.0,
        )
        print("live-fault report:", report)  # the figures quoted in the closing note
        assert report["clean_events"] == [], "a clean period must raise no incident"
        for name, r in report["faults"].items():
            # Detected within the case's window (10 scrape intervals + 5 s, run_cases). How fast is
            # the faults benchmark's to measure (`fleetpilot bench faults`), not a timed test's: a
            # clean-clone CI run took 17.6 s for the slow replica, whose latency was in the store
            # 1.7 s after the fault (other runs 3-7.6 s).
            assert r["detected"], f"{name} was not detected: {report}"
            assert r["after_injected_s"] <= 10 * SCRAPE_S + 5.0, f"{name}: {r}"
            # Two replicas: the peer detector blames the one that moved from its own history (a
            # CI run once read the reloading cache victim's hit ratio as 1.0 for a tick, and its
            # healthy peer at 0.52 was flagged before that rule).
            assert r["other_replicas_flagged"] == [], f"{name} flagged a healthy replica"
        # Advisory: decisions are recorded, nothing was actuated.
        assert api("/v1/decisions", since_s=600)["decisions"]
        assert api("/v1/actions", since_s=600)["actions"] == []
        assert [r.name for r in fleet.replicas] == names
    finally:
        load.stop()
        for n in names:
            fleet.manager.set_faults(n, Faults())
        code = up.stop()
    assert code == 0, up.log_tail()


def _router_weights(router_url: str) -> dict[str, float]:
    r = httpx.get(f"{router_url}/admin/state", headers={"Authorization": f"Bearer {TEST_TOKEN}"}, timeout=5)
    return {rep["name"]: rep["weight"] for rep in r.json()["replicas"]}


def test_active_loop_scales_drains_replaces_and_survives_a_blackout(fleet, router_url, tmp_path):
    env = up_env(
        fleet,
        tmp_path,
        mode="active",
        max_replicas=3,
        capacity_rps_by_model=f'{{"{MODEL}": 15}}',
        replace_after_s=45,
        restore_after_s=4,
        scale_down_window_s=20,
        step_interval_s=10,
    )
    up = UpProcess(env, f"http://127.0.0.1:{API_PORT}", tmp_path / "up.log")
    start_names = [r.name for r in fleet.replicas]
    surge = None
    try:
        up.start()
        # 1. A surge through the router (60 rps for 2 x 15 rps of capacity) adds a replica.
        surge = SteadyLoad(lambda: [router_url], rate_rps=60.0).start()
        wait_for(lambda: len(fleet.replicas) >= 3, 180, "a replica added for the surge")
        adds = wait_for(
            lambda: [a for a in api("/v1/actions", since_s=600)["actions"] if a["action"] == "add"],
            30,
            "the add action",
        )
        assert adds[0]["outcome"] == "ok" and adds[0]["decision_id"]
        surge.stop()
        surge = SteadyLoad(lambda: [router_url], rate_rps=12.0).start()

        # 2. A slowed replica is drained; once the fault is gone it is restored.
        slow = fleet.replicas[0].name
        wait_for(lambda: _router_weights(router_url).get(slow) == 100, 30, "the loop's weights applied")
        fleet.manager.set_faults(slow, Faults(added_latency_ms=150.0))
        wait_for(lambda: _router_weights(router_url)[slow] < 100, 60, f"{slow} drained")
        fleet.manager.set_faults(slow, Faults())
        wait_for(lambda: _router_weights(router_url)[slow] == 100, 90, f"{slow} restored")

        # 3. A killed replica is replaced.
        victim = fleet.replicas[-1]
        os.kill(victim.pid, signal.SIGKILL)
        wait_for(
            lambda: victim.name not in [r.name for r in fleet.replicas] and len(fleet.replicas) >= 3,
            180,
            f"{victim.name} replaced",
        )
        # Replaced after replace_after_s - or, when load has fallen meanwhile, removed first by a
        # scale-down (the dead replica, drained to 0, is the first one a scale-down takes).
        gone = wait_for(  # the action row reaches the store with the next tick's flush
            lambda: [
                a
                for a in api("/v1/actions", since_s=900)["actions"]
                if a["action"] in ("replace", "remove") and a["replica"] == victim.name
            ],
            30,
            f"the action that took {victim.name} out",
        )
        assert all(a["outcome"] == "ok" for a in gone), gone

        # 4. Blackout: every replica frozen (no telemetry) for longer than the scale-down window.
        surge.stop()
        surge = None
        before = sorted(r.name for r in fleet.replicas)
        pids = [r.pid for r in fleet.replicas]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(45)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert sorted(r.name for r in fleet.replicas) == before, "a blackout must not scale down or replace"
        last = api("/v1/decisions", model=MODEL, policy="replicas", since_s=60, limit=5)["decisions"]
        assert last and any(
            "stale_data" in d["reason_codes"] or "no_data" in d["reason_codes"] for d in last
        ), last
    finally:
        if surge is not None:
            surge.stop()
        code = up.stop()
    assert code == 0, up.log_tail()
    # The final flush: the store holds what the last ticks recorded.
    from controlplane.store import open_store

    with open_store(env["FLEETPILOT_STORE__DSN"]) as store:
        n = store.query("SELECT count() FROM decisions").rows[0][0]
        assert n > 0
    assert start_names  # the fleet fixture tears down whatever replicas remain
