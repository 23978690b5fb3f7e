"""Models and replicas as the store records them (used when no controller runs in this process).

Pure: the reads (controlplane/api/reads.py) are passed in, so the composition is testable alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from controlplane.api.jsonify import cell, iso
from controlplane.api.overrides import EffectiveOverride, override_for
from controlplane.config import Settings

DOWN_STATES = ("stopped", "removed")


def _status_models(r: Mapping[str, Any]) -> list[str]:
    """Models a status row is about: its model, or (a per-replica row) the comma list in detail."""
    if r.get("model"):
        return [r["model"]]
    return [m for m in str(r.get("detail") or "").split(",") if m and "=" not in m and " " not in m]


def compose_replicas(
    spec: list[dict], status: list[dict], targets: list[dict], open_events: list[dict]
) -> list[dict]:
    reps: dict[str, dict[str, Any]] = {}

    def rep(name: str) -> dict[str, Any]:
        return reps.setdefault(
            name,
            {"replica": name, "zone": "", "region": "", "models": set(), "spec": None, "observed": None,
             "weight": None, "open_incidents": 0, "_spec_ts": None, "_status_ts": None},
        )  # fmt: skip

    for r in spec:
        x = rep(r["replica"])
        if r.get("model"):
            x["models"].add(r["model"])
        x["zone"] = x["zone"] or r.get("zone") or ""
        x["region"] = x["region"] or r.get("region") or ""
        if x["_spec_ts"] is None or r["last_ts"] >= x["_spec_ts"]:
            x["_spec_ts"] = r["last_ts"]
            x["spec"] = {
                "desired_state": r["desired_state"],
                "weight": cell(float(r["weight"])),
                "instance_count": int(r["instance_count"]),
            }
            x["weight"] = cell(float(r["weight"]))
    for r in status:
        x = rep(r["replica"])
        x["models"].update(_status_models(r))
        x["zone"] = x["zone"] or r.get("zone") or ""
        x["region"] = x["region"] or r.get("region") or ""
        if x["_status_ts"] is None or r["last_ts"] >= x["_status_ts"]:
            x["_status_ts"] = r["last_ts"]
            x["observed"] = {
                "state": r["state"],
                "ready": bool(r["ready"]),
                "pid": int(r["pid"]) or None,
                "detail": r.get("detail") or "",
                "ts": iso(r["last_ts"]),
            }
    for t in targets:
        x = rep(t["target"])
        x["models"].update(m for m in t.get("models") or [] if m)
        x["zone"] = x["zone"] or t.get("zone") or ""
        x["region"] = x["region"] or t.get("region") or ""
    opened = defaultdict(int)
    for e in open_events:
        opened[e.get("replica") or ""] += 1
    out = []
    for name in sorted(reps):
        x = reps[name]
        x["models"] = sorted(x["models"])
        x["open_incidents"] = opened.get(name, 0)
        del x["_spec_ts"], x["_status_ts"]
        out.append(x)
    return out


def compose_models(
    *,
    settings: Settings,
    spec: list[dict],
    status: list[dict],
    targets: list[dict],
    stats: Mapping[str, Mapping[str, float | None]],
    capacity: Mapping[str, float],
    forecast_p90: Mapping[str, float],
    last_decision: Mapping[str, dict],
    open_events: list[dict],
    effective: Mapping[str, EffectiveOverride],
) -> list[dict]:
    names: set[str] = set()
    names.update(r["model"] for r in spec if r.get("model"))
    for r in status:
        names.update(_status_models(r))
    for t in targets:
        names.update(m for m in t.get("models") or [] if m)
    names.update(m for m in stats if m)
    names.update(m for m in last_decision if m)

    running: dict[str, int] = defaultdict(int)
    for r in spec:
        if r.get("model") and r["desired_state"] == "running":
            running[r["model"]] += 1
    observed: dict[str, set[str]] = defaultdict(set)
    ready: dict[str, set[str]] = defaultdict(set)
    for r in status:
        for m in _status_models(r):
            if r["state"] not in DOWN_STATES:
                observed[m].add(r["replica"])
            if r["ready"]:
                ready[m].add(r["replica"])
    reporting: dict[str, set[str]] = defaultdict(set)
    for t in targets:
        for m in t.get("models") or []:
            reporting[m].add(t["target"])
    incidents: dict[str, int] = defaultdict(int)
    for e in open_events:
        incidents[e.get("model") or ""] += 1

    rows = []
    for m in sorted(names):
        ov = override_for(effective, m)
        dec = last_decision.get(m)
        desired = None
        if dec is not None and isinstance(dec.get("params"), dict):
            final = dec["params"].get("final")
            desired = (
                int(final) if isinstance(final, int | float) and dec.get("policy") == "replicas" else None
            )
        if desired is None and running.get(m):
            desired = running[m]
        st = stats.get(m, {})
        rows.append(
            {
                "model": m,
                "mode": ov.mode or settings.control.mode_for(m),
                "paused": ov.paused,
                "pinned_replicas": ov.pinned_replicas,
                "desired_replicas": desired,
                # Without status rows (an external fleet), the targets reporting the model count.
                "observed_replicas": len(observed[m]) if m in observed else len(reporting[m]),
                "ready_replicas": len(ready[m]) if m in observed else len(reporting[m]),
                "rate_rps": cell(st.get("rate_rps")),
                "p99_ms": cell(st.get("p99_ms")),
                "slo_p99_ms": settings.control.slo_for(m),
                "capacity_rps": capacity.get(m, settings.control.capacity_rps_by_model.get(m)),
                "forecast_p90_rps": forecast_p90.get(m),
                "open_incidents": incidents.get(m, 0),
                "last_decision": dec,
            }
        )
    return rows
