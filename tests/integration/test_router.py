"""The router in front of real tritonserver replicas (the session `fleet` fixture).

This module starts its own background router (serving.router.server.start_background) so
that it can change weights and use a long health-check period without disturbing other
tests: with active checks every 30 s, only passive ejection can take a killed replica out of
rotation within the kill test, so that is what the test exercises.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from controlplane.cli.router_cmd import router_options
from serving.router.bench import classifier_body  # fresh features: the response cache cannot answer
from serving.router.server import start_background, stop_background
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


class Router:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict | None = None,
        raw: bytes | None = None,
    ):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def admin(self, method: str, path: str, body: object = None) -> dict:
        status, _h, payload = self.call(method, path, body, {"Authorization": f"Bearer {self.token}"})
        assert status == 200, payload
        return json.loads(payload)

    def state(self) -> dict:
        return self.admin("GET", "/admin/state")

    def replica(self, name: str) -> dict | None:
        return next((r for r in self.state()["replicas"] if r["name"] == name), None)

    def wait_for(self, predicate, timeout_s: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; state: {self.state()}")


@pytest.fixture(scope="module")
def router(fleet, tmp_path_factory):
    options = replace(
        router_options(fleet.settings),
        port=free_port(),
        health_check_interval_s=30.0,
        ejection_s=120.0,
        retries=2,
        state_poll_interval_s=0.2,
    )
    run_dir = tmp_path_factory.mktemp("router-run")
    bg = start_background(options, run_dir)
    r = Router(bg.url, options.api_token)
    try:
        names = {rec.name for rec in fleet.replicas}
        r.wait_for(
            lambda: {x["name"] for x in r.state()["replicas"] if x["in_rotation"]} >= names,
            what="replicas in rotation",
        )
        yield r
    finally:
        stop_background(run_dir)


def test_weights_split_sequential_classifier_requests(router, fleet):
    a, b = sorted(rec.name for rec in fleet.replicas)[:2]
    router.admin("PUT", "/admin/weights", {"weights": {a: 3, b: 1}})
    rng = random.Random(7)
    try:
        seen = []
        for _ in range(200):
            status, headers, _ = router.call(
                "POST", "/v2/models/classifier-small/infer", raw=classifier_body(rng)
            )
            assert status == 200
            seen.append(headers["X-Fleetpilot-Replica"])
    finally:
        router.admin("PUT", "/admin/weights", {"weights": {a: 1, b: 1}})
    share_a = seen.count(a) / len(seen)
    assert abs(share_a - 0.75) <= 0.08, f"{a} got {share_a:.0%} of 200 requests at weights 3:1"
    assert set(seen) == {a, b}


def test_chat_tokens_stream_through_router(router, fleet):
    body = {"input_ids": [5, 6, 7], "max_tokens": 8}
    status, headers, payload = router.call("POST", "/v2/models/chat-lm/generate_stream", body)
    assert status == 200, payload
    assert headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in payload.decode().splitlines() if line.startswith("data:")]
    assert len(events) == 8
    assert all("token_id" in e and e["text_output"] for e in events)
    # Greedy decoding: the same prompt sent straight to the replica yields the same tokens.
    rec = next(r for r in fleet.replicas if r.name == headers["X-Fleetpilot-Replica"])
    req = urllib.request.Request(
        f"{rec.http_url}/v2/models/chat-lm/generate_stream", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        direct = [json.loads(x[5:]) for x in resp.read().decode().splitlines() if x.startswith("data:")]
    assert [e["token_id"] for e in events] == [e["token_id"] for e in direct]


def test_overload_sheds_batch_then_standard_then_premium(router):
    """Admission under overload against real Triton: long chat streams hold router slots.

    max_inflight 4; batch admitted below load 0.5, standard below 0.75, premium below 1.0.
    """
    before = router.state()["thresholds"]
    router.admin(
        "PUT",
        "/admin/thresholds",
        {
            "max_inflight_requests": 4,
            "admit_below_load_ratio": {"premium": 1.0, "standard": 0.75, "batch": 0.5},
        },
    )
    rng = random.Random(7)
    holders: list[threading.Thread] = []

    def hold() -> None:  # a premium stream of 4,000 tokens keeps one router slot busy for seconds
        body = {"input_ids": [1, 2, 3, 4, 5, 6, 7, 8], "max_tokens": 4000}
        router.call("POST", "/v2/models/chat-lm/generate_stream", body, {"X-Priority": "premium"})

    def classify(priority: str) -> int:
        headers = {"X-Priority": priority, "X-Tier": "small"}
        return router.call("POST", "/v2/models/classifier/infer", raw=classifier_body(rng), headers=headers)[
            0
        ]

    def hold_until(n: int) -> None:
        while len(holders) < n:
            holders.append(threading.Thread(target=hold))
            holders[-1].start()
        router.wait_for(lambda: router.state()["inflight"] >= n, timeout_s=20, what=f"{n} streams in flight")

    try:
        hold_until(2)  # load 0.5
        assert classify("batch") == 429  # 0.5 >= 0.5: batch shed first
        assert classify("standard") == 200
        hold_until(3)  # load 0.75
        assert classify("standard") == 429  # then standard
        assert classify("premium") == 200  # premium still admitted below 1.0
        status, _h, body = router.call(
            "POST", "/v2/models/classifier/infer", raw=classifier_body(rng), headers={"X-Priority": "batch"}
        )
        assert status == 429 and "batch" in json.loads(body)["error"]
    finally:
        router.admin("PUT", "/admin/thresholds", before)
        for t in holders:
            t.join(timeout=120)


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"X-Complexity": "0.1"}, "classifier-small"),
        ({"X-Complexity": "0.95"}, "classifier-large"),
        ({"X-Complexity": "0.95", "X-Tier": "small"}, "classifier-small"),
        ({"X-Tier": "large-int8"}, "classifier-large-int8"),
    ],
)
def test_tier_routing_hits_the_right_model(router, headers, expected):
    status, resp_headers, payload = router.call(
        "POST", "/v2/models/classifier/infer", headers=headers, raw=classifier_body(random.Random(3))
    )
    assert status == 200, payload
    assert resp_headers["X-Fleetpilot-Model"] == expected
    assert json.loads(payload)["model_name"] == expected  # Triton's own answer names the model


def test_killed_replica_is_ejected_and_requests_fail_over(router, fleet):
    before = {rec.name for rec in fleet.replicas}
    rec = fleet.manager.add()  # never kill the shared replicas
    try:
        router.wait_for(
            lambda: (router.replica(rec.name) or {}).get("in_rotation"), 60, f"{rec.name} in rotation"
        )
        router.admin("PUT", "/admin/weights", {"weights": {rec.name: 100}})
        rng = random.Random(11)
        status, headers, _ = router.call(
            "POST", "/v2/models/classifier-small/infer", raw=classifier_body(rng)
        )
        assert (status, headers["X-Fleetpilot-Replica"]) == (200, rec.name)

        os.kill(rec.pid, signal.SIGKILL)
        served_by = []
        for _ in range(20):
            status, headers, payload = router.call(
                "POST", "/v2/models/classifier-small/infer", raw=classifier_body(rng)
            )
            assert status == 200, payload
            served_by.append(headers["X-Fleetpilot-Replica"])
        assert rec.name not in served_by
        assert set(served_by) <= before

        state = router.replica(rec.name)
        assert state is not None and state["ejected"] and not state["in_rotation"], state
        _, _, metrics = router.call("GET", "/metrics")
        text = metrics.decode()
        assert f'fleetpilot_router_upstream_errors_total{{reason="connect",replica="{rec.name}"}}' in text
        retries = [
            line
            for line in text.splitlines()
            if line.startswith('fleetpilot_router_retries_total{route="infer"}')
        ]
        assert retries and float(retries[0].split()[-1]) >= 1
    finally:
        fleet.manager.remove(rec.name)
    router.wait_for(lambda: router.replica(rec.name) is None, 10, f"{rec.name} removed from the router")


def test_client_zone_stays_in_zone_until_the_spill_threshold(router, fleet):
    """Two zones (the fleet puts one replica in each). X-Client-Zone keeps requests in the
    client's zone; once the zone's mean in-flight per replica reaches the spill threshold (set
    live through the admin endpoint), its requests spill to the other zone."""
    by_zone: dict[str, set[str]] = {}
    for rec in fleet.replicas:
        by_zone.setdefault(rec.zone, set()).add(rec.name)
    assert len(by_zone) >= 2, f"the test fleet should span two zones: {by_zone}"
    za, zb = sorted(by_zone)[:2]
    before = router.state()["thresholds"]
    rng = random.Random(5)

    def served_by(n: int, zone: str) -> list[str]:
        out = []
        for _ in range(n):
            status, headers, payload = router.call(
                "POST",
                "/v2/models/classifier-small/infer",
                raw=classifier_body(rng),
                headers={"X-Client-Zone": zone},
            )
            assert status == 200, payload
            out.append(headers["X-Fleetpilot-Replica"])
        return out

    def spills(zone: str) -> float:
        text = router.call("GET", "/metrics")[2].decode()
        prefix = f'fleetpilot_router_zone_spills_total{{from_zone="{zone}",reason="saturated"}}'
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    stream = None
    try:
        router.admin("PUT", "/admin/thresholds", {"spill_inflight_per_replica": 8, "local_zone": ""})
        assert set(served_by(20, za)) <= by_zone[za]
        assert set(served_by(20, zb)) <= by_zone[zb]

        # A chat stream from zone za holds one request in flight on a za replica.
        body = json.dumps({"input_ids": [1, 2, 3, 4], "max_tokens": 1500}).encode()
        req = urllib.request.Request(
            f"{router.url}/v2/models/chat-lm/generate_stream",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-Client-Zone": za},
        )
        stream = urllib.request.urlopen(req, timeout=60)  # returns once the first token is out
        assert stream.headers["X-Fleetpilot-Replica"] in by_zone[za]
        mean = router.state()["zones"][za]["inflight_per_replica"]
        assert mean and mean > 0
        # Below the threshold (8 per replica) the zone keeps its requests.
        assert set(served_by(10, za)) <= by_zone[za]
        # Threshold at the zone's present mean in-flight: saturated, so requests spill to zb.
        spilled_before = spills(za)
        router.admin("PUT", "/admin/thresholds", {"spill_inflight_per_replica": mean})
        assert set(served_by(10, za)) <= by_zone[zb]
        assert spills(za) - spilled_before >= 10
        assert router.state()["thresholds"]["spill_inflight_per_replica"] == mean
    finally:
        if stream is not None:
            stream.close()  # the router stops relaying; the replica finishes the short stream alone
        router.admin(
            "PUT", "/admin/thresholds", {k: before[k] for k in ("spill_inflight_per_replica", "local_zone")}
        )
