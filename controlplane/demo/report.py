"""The demo's report, from what the API recorded and what the replay client saw (pure functions)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path


def ts_s(iso: str) -> float:
    return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()


def slo_attainment(results_path: Path, slo_ms: float) -> tuple[int, float | None]:
    """(requests, share answered ok within slo_ms end to end) from a replay results JSONL file."""
    n = ok = 0
    with open(results_path) as fh:
        for line in fh:
            r = json.loads(line)
            n += 1
            if r.get("status") == "ok" and r.get("latency_ms") is not None and r["latency_ms"] <= slo_ms:
                ok += 1
    return n, (ok / n if n else None)


def summarize_actions(actions: list[dict], decisions: list[dict]) -> list[dict]:
    """Each action with the reason codes of the decision that caused it."""
    reasons = {d["decision_id"]: d["reason_codes"] for d in decisions}
    out = []
    for a in sorted(actions, key=lambda a: a["ts"]):
        out.append(
            {
                "ts": a["ts"],
                "actuator": a["actuator"],
                "action": a["action"],
                "replica": a["replica"],
                "outcome": a["outcome"],
                "reason_codes": reasons.get(a["decision_id"], []),
                "decision_id": a["decision_id"],
            }
        )
    return out


def summarize_incidents(events: list[dict]) -> list[dict]:
    """One entry per incident (its opening event), with replica, metric and expected vs observed."""
    out = []
    for e in sorted(events, key=lambda e: e["ts"]):
        if e["reason_codes"] and e["reason_codes"][0] == "opened":
            out.append(
                {
                    "ts": e["ts"],
                    "model": e["model"],
                    "replica": e["replica"],
                    "metric": e["metric"],
                    "severity": e["severity"],
                    "expected_value": e["expected_value"],
                    "observed_value": e["observed_value"],
                }
            )
    return out


def fault_detected_s(incidents: list[dict], replica: str, injected_s: float | None) -> float | None:
    """Seconds from injecting the fault to the first incident opened on that replica."""
    if injected_s is None:
        return None
    times = [ts_s(i["ts"]) for i in incidents if i["replica"] == replica and ts_s(i["ts"]) >= injected_s]
    return round(min(times) - injected_s, 2) if times else None
