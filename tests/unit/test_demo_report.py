"""The demo report's pure parts: SLO attainment from replay results, actions with reasons,
incidents, time to detect the injected fault."""

from __future__ import annotations

import json

from controlplane.demo import report


def test_slo_attainment_counts_only_ok_requests_within_the_slo(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [
        {"status": "ok", "latency_ms": 100.0},
        {"status": "ok", "latency_ms": 900.0},  # too slow
        {"status": "shed", "latency_ms": 1.0},  # shed requests miss the SLO
        {"status": "ok", "latency_ms": 499.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report.slo_attainment(path, 500.0) == (4, 0.5)


def test_actions_carry_their_decisions_reasons_and_incidents_their_replica_and_metric():
    decisions = [{"decision_id": "d1", "reason_codes": ["panic", "mode_active"]}]
    actions = [
        {"ts": "2026-01-01T00:00:02Z", "actuator": "replicas", "action": "add", "replica": "replica-3",
         "outcome": "ok", "decision_id": "d1"},
        {"ts": "2026-01-01T00:00:01Z", "actuator": "router", "action": "set_weights", "replica": "",
         "outcome": "ok", "decision_id": "unknown"},
    ]  # fmt: skip
    out = report.summarize_actions(actions, decisions)
    assert [a["action"] for a in out] == ["set_weights", "add"]  # in time order
    assert out[1]["reason_codes"] == ["panic", "mode_active"] and out[0]["reason_codes"] == []
    events = [
        {"ts": "2026-01-01T00:01:00Z", "reason_codes": ["closed"], "model": "m", "replica": "r0", "metric": "x",
         "severity": "warning", "expected_value": 1.0, "observed_value": 2.0},
        {"ts": "2026-01-01T00:00:10Z", "reason_codes": ["opened", "detector:peer"], "model": "m", "replica": "r0",
         "metric": "latency_ms", "severity": "critical", "expected_value": 2.0, "observed_value": 150.0},
    ]  # fmt: skip
    incidents = report.summarize_incidents(events)
    assert [(i["replica"], i["metric"]) for i in incidents] == [("r0", "latency_ms")]
    injected = report.ts_s("2026-01-01T00:00:04Z")
    assert report.fault_detected_s(incidents, "r0", injected) == 6.0
    assert report.fault_detected_s(incidents, "r1", injected) is None
    assert report.fault_detected_s(incidents, "r0", None) is None
