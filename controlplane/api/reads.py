"""Store reads behind the API: one function per question, each one span under the store lock.

The SQL reads the table names every layout exposes (a Distributed table in a cluster).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from controlplane.api.context import ApiContext, store_span
from controlplane.api.jsonify import cell, row
from controlplane.api.overrides import Override
from controlplane.store import derived as d
from controlplane.store.derived import q
from controlplane.store.errors import StoreUnavailable

E2E_HISTOGRAM_S = "vllm:e2e_request_latency_seconds"  # token models' end-to-end latency
FORECAST_RATE_METRICS = ("request_rate_rps",)  # as controlplane/forecast/service.py writes it
_INCIDENT_ID = "replaceRegexpOne(event_id, '#[0-9]+$', '')"
OPEN_LOOKBACK_S = 30 * 86400  # incidents older than this are not looked for
RECENT_TARGETS_S = 900  # a target that reported within this window counts as present


def _since(now_s: float, since_s: float) -> str:
    return f"fromUnixTimestamp64Milli({int((now_s - since_s) * 1000)}, 'UTC')"


def _where(*terms: str | None) -> str:
    t = [x for x in terms if x]
    return " WHERE " + " AND ".join(t) if t else ""


def _eq(col: str, value: str | None) -> str | None:
    return f"{col} = {q(value)}" if value else None


def query(ctx: ApiContext, name: str, sql: str) -> list[dict[str, Any]]:
    with store_span(ctx, name, **{"db.system": "clickhouse", "db.statement": sql[:2000]}) as span:
        if ctx.store.client is None:  # closed during shutdown: an outage, not a bad query
            raise StoreUnavailable("the store is closed (the process is shutting down)")
        res = ctx.store.query(sql)
        span.set_attribute("db.rows", len(res.rows))
    return res.to_dicts()


# ---- audit trail ----------------------------------------------------------------------------


def decisions(ctx, *, now_s, since_s, limit, model=None, policy=None) -> list[dict]:
    sql = (
        "SELECT * FROM decisions"
        + _where(f"ts >= {_since(now_s, since_s)}", _eq("model", model), _eq("policy", policy))
        + f" ORDER BY ts DESC, decision_id DESC LIMIT {int(limit)}"
    )
    return [row(r, ("params", "inputs")) for r in query(ctx, "decisions", sql)]


def actions(ctx, *, now_s, since_s, limit, model=None) -> list[dict]:
    sql = (
        "SELECT * FROM actions"
        + _where(f"ts >= {_since(now_s, since_s)}", _eq("model", model))
        + f" ORDER BY ts DESC, action_id DESC LIMIT {int(limit)}"
    )
    return [row(r, ("params",)) for r in query(ctx, "actions", sql)]


def _event(r: dict) -> dict:
    out = row(r, ("inputs",))
    codes = r.get("reason_codes") or []
    out["incident_id"] = r.get("incident_id") or str(r.get("event_id", "")).rsplit("#", 1)[0]
    out["kind"] = codes[0] if codes else ""
    return out


def open_incidents(ctx, *, now_s, model=None, replica=None) -> list[dict]:
    """The newest event of every incident whose newest event is not a close."""
    sql = (
        f"SELECT *, {_INCIDENT_ID} AS incident_id FROM anomaly_events"
        + _where(f"ts >= {_since(now_s, OPEN_LOOKBACK_S)}", _eq("model", model), _eq("replica", replica))
        + " ORDER BY incident_id, ts DESC, length(event_id) DESC, event_id DESC LIMIT 1 BY incident_id"
    )
    events = [_event(r) for r in query(ctx, "open_incidents", sql)]
    live = [e for e in events if e["kind"] != "closed"]
    return sorted(live, key=lambda e: e["ts"] or "", reverse=True)


def anomalies(ctx, *, now_s, since_s, limit, model=None, replica=None, state="all") -> dict:
    open_ = open_incidents(ctx, now_s=now_s, model=model, replica=replica)
    only = None
    if state == "open":
        ids = [e["incident_id"] for e in open_]
        only = f"{_INCIDENT_ID} IN ({', '.join(q(i) for i in ids)})" if ids else "0"
    sql = (
        f"SELECT *, {_INCIDENT_ID} AS incident_id FROM anomaly_events"
        + _where(f"ts >= {_since(now_s, since_s)}", _eq("model", model), _eq("replica", replica), only)
        + f" ORDER BY ts DESC, event_id DESC LIMIT {int(limit)}"
    )
    return {"events": [_event(r) for r in query(ctx, "anomaly_events", sql)], "open": open_}


def forecasts(ctx, *, now_s, since_s, limit, model=None, metric=None) -> list[dict]:
    """Newest `limit` forecast rows, returned oldest first (ts, then target_ts) for plotting."""
    sql = (
        "SELECT * FROM forecasts"
        + _where(f"ts >= {_since(now_s, since_s)}", _eq("model", model), _eq("metric", metric))
        + f" ORDER BY ts DESC, target_ts DESC LIMIT {int(limit)}"
    )
    rows = [row(r, ("inputs",)) for r in query(ctx, "forecasts", sql)]
    rows.reverse()
    return rows


def override_rows(ctx) -> list[Override]:
    sql = "SELECT * FROM overrides ORDER BY ts, override_id"
    return [Override.from_row(r) for r in query(ctx, "overrides", sql)]


def insert_override(ctx, ov: Override) -> None:
    with store_span(ctx, "insert_override", **{"db.system": "clickhouse"}):
        ctx.store.insert_rows("overrides", [ov.as_row()])


def store_ok(ctx) -> bool:
    try:
        query(ctx, "ping", "SELECT 1 AS ok")
    except Exception:  # noqa: BLE001 - any failure means "not ok" here
        return False
    return True


# ---- fleet state from the store (when no controller runs in this process) -------------------


def replica_spec(ctx) -> list[dict]:
    sql = (
        "SELECT replica, model, argMax(zone, ts) AS zone, argMax(region, ts) AS region, "
        "argMax(desired_state, ts) AS desired_state, argMax(instance_count, ts) AS instance_count, "
        "argMax(weight, ts) AS weight, argMax(decision_id, ts) AS decision_id, max(ts) AS last_ts "
        "FROM replica_spec GROUP BY replica, model ORDER BY replica, model"
    )
    return query(ctx, "replica_spec", sql)


def replica_status(ctx, *, now_s: float) -> list[dict]:
    sql = (
        "SELECT replica, model, argMax(zone, ts) AS zone, argMax(region, ts) AS region, "
        "argMax(state, ts) AS state, argMax(ready, ts) AS ready, argMax(instance_count, ts) AS instance_count, "
        "argMax(pid, ts) AS pid, argMax(detail, ts) AS detail, max(ts) AS last_ts FROM replica_status"
        + _where(f"ts >= {_since(now_s, OPEN_LOOKBACK_S)}")
        + " GROUP BY replica, model ORDER BY replica, model"
    )
    return query(ctx, "replica_status", sql)


def recent_targets(ctx, *, now_s: float) -> list[dict]:
    """Triton targets that reported request counters recently: (target, zone, region, models)."""
    start = int((now_s - RECENT_TARGETS_S) // 60 * 60)
    sql = (
        "SELECT target, any(zone) AS zone, any(region) AS region, groupUniqArray(model) AS models, "
        "max(ts) AS last_ts FROM samples_1m"
        + _where(
            f"metric = {q(d.REQUEST_SUCCESS)}",
            f"ts >= toDateTime({start}, 'UTC')",
            "model != ''",
        )
        + " GROUP BY target ORDER BY target"
    )
    return query(ctx, "recent_targets", sql)


def model_window_stats(ctx, *, now_s: float, window_s: float) -> dict[str, dict[str, float | None]]:
    """rate_rps and p99_ms per model over the last complete `window_s` (one aligned bucket)."""
    step = int(window_s)
    end = math.floor(now_s / step) * step
    start = end - step
    out: dict[str, dict[str, float | None]] = defaultdict(dict)
    for r in query(ctx, "model_rate", d.request_rate(start, end, step)):
        out[r["model"]]["rate_rps"] = cell(r["requests_per_s"])
    for r in query(ctx, "model_p99", d.latency_percentile(start, end, step)):
        out[r["model"]]["p99_ms"] = cell(r["p99_latency_ms"])
    return dict(out)


def capacity_by_model(ctx) -> dict[str, float]:
    sql = "SELECT model, argMax(capacity_rps, ts) AS capacity_rps FROM capacity_curves GROUP BY model"
    return {r["model"]: float(r["capacity_rps"]) for r in query(ctx, "capacity", sql)}


def forecast_p90_by_model(ctx, *, now_s: float, ahead_s: float) -> dict[str, float]:
    """`upper` (p90) of each model's newest rate forecast, at the target time nearest now + ahead_s."""
    target_ms = int((now_s + ahead_s) * 1000)
    sql = (
        "SELECT model, argMin(upper, abs(toUnixTimestamp64Milli(target_ts) - "
        f"{target_ms})) AS p90 FROM forecasts "
        f"WHERE metric IN {d.qlist(FORECAST_RATE_METRICS)} AND ts >= {_since(now_s, 3600)} "
        "AND (model, ts) IN (SELECT model, max(ts) FROM forecasts "
        f"WHERE metric IN {d.qlist(FORECAST_RATE_METRICS)} AND ts >= {_since(now_s, 3600)} GROUP BY model) "
        "GROUP BY model"
    )
    return {r["model"]: float(r["p90"]) for r in query(ctx, "forecast_p90", sql)}


def last_decisions(ctx, *, now_s: float) -> dict[str, dict]:
    """The newest decision of each model (replicas policy first, else any), within a day."""
    sql = (
        "SELECT * FROM decisions"
        + _where(f"ts >= {_since(now_s, 86400)}", "model != ''")
        + " ORDER BY model, policy = 'replicas' DESC, ts DESC LIMIT 1 BY model"
    )
    return {r["model"]: row(r, ("params", "inputs")) for r in query(ctx, "last_decisions", sql)}


# ---- SLO and cost ---------------------------------------------------------------------------


def latency_buckets(ctx, *, now_s: float, since_s: float) -> dict[str, list[tuple[float, float]]]:
    """Per model, cumulative (le in ms, count) of its latency histogram over the window: Triton's
    first-response histogram, or for token models without it (a decoupled python model has
    none) the engine's end-to-end histogram, in seconds, converted to ms."""
    start = int((now_s - since_s) // 60 * 60)
    end = int(math.ceil(now_s / 60) * 60)
    first, e2e = d.LATENCY_HISTOGRAM_MS + "_bucket", E2E_HISTOGRAM_S + "_bucket"
    sql = (
        "SELECT model, metric, toFloat64OrNull(le) AS le_f, sum(increase) AS n FROM fleet_1m"
        + _where(
            f"metric IN ({q(first)}, {q(e2e)})",
            f"ts >= toDateTime({start}, 'UTC')",
            f"ts < toDateTime({end}, 'UTC')",
        )
        + " GROUP BY model, metric, le_f HAVING le_f IS NOT NULL ORDER BY model, metric, le_f"
    )
    by: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in query(ctx, "slo_buckets", sql):
        scale = 1000.0 if r["metric"] == e2e else 1.0
        by[(r["model"], r["metric"])].append((float(r["le_f"]) * scale, float(r["n"])))
    out: dict[str, list[tuple[float, float]]] = {}
    for (model, metric), buckets in by.items():
        if metric == first or model not in out:
            out[model] = buckets
    return out


def cost_inputs(ctx, *, now_s: float, since_s: float) -> dict[str, float | None]:
    """Replica-hours and GPU-hours (buckets with samples x bucket length), inferences and energy.

    Windows up to two days count minutes (samples_1m); longer ones count hours (samples_1h), so a
    400-day window reads hourly rows.
    """
    bucket_s = 60 if since_s <= 2 * 86400 else 3600
    table = "samples_1m" if bucket_s == 60 else "samples_1h"
    per_hour = 3600 / bucket_s
    start = int((now_s - since_s) // bucket_s * bucket_s)
    end = int(math.ceil(now_s / bucket_s) * bucket_s)
    window = f"ts >= toDateTime({start}, 'UTC') AND ts < toDateTime({end}, 'UTC')"
    sql = (
        "SELECT "
        f"uniqExactIf((target, ts), metric = {q(d.REQUEST_SUCCESS)}) / {per_hour} AS replica_hours, "
        f"uniqExactIf((series_id, ts), metric IN {d.qlist([d.GPU_METRICS['triton']['util'], d.GPU_METRICS['dcgm']['util']])}) / {per_hour} AS gpu_hours, "
        f"sumIf(increase, metric = {q(d.INFERENCE_COUNT)}) AS inferences, "
        f"if(countIf(metric IN {d.qlist(list(d.ENERGY_J.values()))}) = 0, NULL, "
        f"sumIf(increase, metric IN {d.qlist(list(d.ENERGY_J.values()))})) AS energy_j "
        f"FROM {table} WHERE metric IN "
        + d.qlist(
            [
                d.REQUEST_SUCCESS,
                d.INFERENCE_COUNT,
                d.GPU_METRICS["triton"]["util"],
                d.GPU_METRICS["dcgm"]["util"],
                *d.ENERGY_J.values(),
            ]
        )
        + f" AND {window}"
    )
    r = query(ctx, "cost_inputs", sql)[0]
    return {k: (None if v is None else float(v)) for k, v in r.items()}
