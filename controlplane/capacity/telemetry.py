"""Capacity learned from stored telemetry, and the newest capacity for the loop.

`fit_from_store` turns what the fleet already reports into load points: per replica (target) and
minute, load = requests per second (ok + failed), latency = the p99 of Triton's latency histogram
(classifiers; `--metrics-config histogram_latencies=true`) or the TTFT / inter-token p99 of the
vLLM-style histograms (chat-lm). Without a latency histogram the mean request time stands in for
p99 and the curve says so (`inputs.latency_source`): a mean under-states p99, so that capacity is
optimistic. The points are fitted with the same isotonic model as a profiling sweep and stored
as a `capacity_curves` row with source='telemetry'.

A replica the peer detector singled out (slower or failing where its peers were not) is faulty,
not loaded: its minutes under such an incident are left out, or one slow replica would make the
whole model's capacity look tiny (`suspect_spans`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from controlplane.capacity.model import CapacityEstimate, LoadPoint, Slo, capacity_at_slo

STEP_S = 60  # one point per replica per minute
MIN_POINT_REQUESTS = 20  # a minute with fewer requests has no usable p99
HISTOGRAM = "histogram_p99"
MEAN_FALLBACK = "avg_request_ms"


def _rows(store, sql: str) -> list[dict]:
    return store.query(sql).to_dicts()


def suspect_spans(store, model: str, start_s: float, end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Replica -> [(from_s, to_s)] of the incidents on `model` that the peer detector raised
    between start and end; one still open runs to `end_s`."""
    from controlplane.store.derived import q  # noqa: PLC0415

    rows = _rows(
        store,
        "SELECT replica, JSONExtractString(inputs, 'incident_id') AS incident, "
        "toUnixTimestamp64Milli(min(window_start)) / 1000 AS from_s, "
        "toUnixTimestamp64Milli(max(window_end)) / 1000 AS to_s, "
        "argMax(reason_codes[1], ts) AS last_kind "
        f"FROM anomaly_events WHERE model = {q(model)} AND replica != '' "
        f"AND ts >= fromUnixTimestamp64Milli({int(start_s * 1000)}) "
        f"AND window_start < fromUnixTimestamp64Milli({int(end_s * 1000)}) "
        "GROUP BY replica, incident HAVING countIf(position(detector, 'peer') > 0) > 0",
    )
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        to_s = float(r["to_s"]) if r["last_kind"] == "close" else end_s
        spans.setdefault(r["replica"], []).append((float(r["from_s"]), to_s))
    return spans


def _overlaps(spans: list[tuple[float, float]], from_s: float, to_s: float) -> bool:
    return any(a < to_s and b > from_s for a, b in spans)


def telemetry_points(
    store,
    model: str,
    now_s: float,
    window_s: float,
    slo: Slo,
    step_s: int = STEP_S,
    exclude: dict[str, list[tuple[float, float]]] | None = None,
) -> tuple[list[LoadPoint], str, list[str]]:
    """(points, latency source, targets) for `model` over [now - window, now), one per target and
    minute; a target's minutes that overlap its spans in `exclude` are left out."""
    from controlplane.store import derived  # noqa: PLC0415

    if window_s < step_s:
        raise ValueError(f"window_s={window_s} must be >= step_s={step_s} (seconds)")
    end = int(now_s // step_s * step_s)  # the minute holding now is still filling
    start = end - window_s
    kw = dict(by=("target",), models=[model])
    key = lambda r: (r["ts"].timestamp(), r["target"])  # noqa: E731
    load = {key(r): r for r in _rows(store, derived.request_rate(start, end, step_s, **kw))}
    lat: dict[tuple, dict[str, float]] = {}
    chat = slo.p99_ms is None
    source = HISTOGRAM
    if chat:
        for sql, col, attr in (
            (derived.ttft_percentile(start, end, step_s, **kw), "ttft_p99_s", "ttft_p99_ms"),
            (derived.inter_token_percentile(start, end, step_s, **kw), "itl_p99_s", "itl_p99_ms"),
        ):
            for r in _rows(store, sql):
                if r.get(col) is not None:
                    lat.setdefault(key(r), {})[attr] = 1000.0 * float(r[col])
        for v in lat.values():  # end-to-end stand-in: the points' p99 must be set to be usable
            v["p99_ms"] = v.get("ttft_p99_ms", 0.0)
    else:
        for r in _rows(store, derived.latency_percentile(start, end, step_s, **kw)):
            if r.get("p99_latency_ms") is not None:
                lat.setdefault(key(r), {})["p99_ms"] = float(r["p99_latency_ms"])
        if not lat:
            source = MEAN_FALLBACK
            for r in _rows(store, derived.request_times(start, end, step_s, **kw)):
                if r.get("avg_request_ms") is not None:
                    lat.setdefault(key(r), {})["p99_ms"] = float(r["avg_request_ms"])
    points = []
    for k, r in sorted(load.items()):
        ok_rps = float(r.get("requests_per_s") or 0.0)
        failed_rps = float(r.get("failures_per_s") or 0.0)
        total = ok_rps + failed_rps
        requests = int(round(total * step_s))
        if requests < MIN_POINT_REQUESTS or k not in lat:
            continue
        if exclude and _overlaps(exclude.get(k[1], []), k[0], k[0] + step_s):
            continue
        points.append(
            LoadPoint(
                offered_rps=total,
                achieved_rps=ok_rps,
                p99_ms=lat[k].get("p99_ms"),
                error_ratio=failed_rps / total,
                requests=requests,
                ttft_p99_ms=lat[k].get("ttft_p99_ms"),
                itl_p99_ms=lat[k].get("itl_p99_ms"),
            )
        )
    targets = sorted({k[1] for k in load})
    return points, source, targets


def telemetry_curve_row(
    model: str,
    estimate: CapacityEstimate,
    now_s: float,
    window_s: float,
    source: str,
    targets: Sequence[str],
    replica_kind: str = "telemetry",
    step_s: int = STEP_S,
    excluded: dict[str, list[tuple[float, float]]] | None = None,
) -> dict:
    """The `capacity_curves` row for a telemetry fit (pure)."""
    slo = estimate.slo
    chat = slo.p99_ms is None
    body = estimate.to_json()
    return {
        "ts": now_s,
        "curve_id": uuid.uuid4().hex,
        "source": "telemetry",
        "model": model,
        "replica": ",".join(targets),
        "replica_kind": replica_kind,
        "device": "unknown",
        "instance_count": 0,
        "slo_metric": "+".join(slo.metrics()),
        "slo_ms": float((slo.ttft_p99_ms if chat else slo.p99_ms) or 0.0),
        "slo_itl_ms": float(slo.itl_p99_ms or 0.0),
        "capacity_rps": float(estimate.capacity_rps),
        "lower_bound": int(estimate.lower_bound),
        "reason": estimate.reason,
        "points": json.dumps({k: body[k] for k in ("points", "failed_points", "fitted")}),
        "inputs": json.dumps(
            {
                "window_s": window_s,
                "step_s": step_s,
                "latency_source": source,
                "targets": list(targets),
                "excluded_spans": excluded or {},
            }
        ),
    }


def fit_from_store(
    store,
    model: str,
    slo: Slo,
    now_s: float,
    window_s: float,
    replica_kind: str = "telemetry",
    step_s: int = STEP_S,
) -> CapacityEstimate:
    """Fit the capacity of one replica of `model` from the last `window_s` of telemetry and store
    it (source='telemetry'). Replicas are pooled: they are assumed to be of one kind. Minutes of
    a replica under a peer incident are left out (and listed in the row's inputs)."""
    spans = suspect_spans(store, model, now_s - window_s, now_s)
    points, source, targets = telemetry_points(store, model, now_s, window_s, slo, step_s, spans)
    est = capacity_at_slo(points, slo)
    store.insert_rows(
        "capacity_curves",
        [telemetry_curve_row(model, est, now_s, window_s, source, targets, replica_kind, step_s, spans)],
    )
    return est


def latest_capacity(store, model: str) -> float | None:
    """Capacity (rps per replica) of the newest curve for `model`, profile or telemetry.

    A curve whose SLO held at every load seen is only a lower bound, so the newest curve that
    found the limit wins; a profile's lower bound (the sweep's load generator topped out) answers
    only when no curve found one. A telemetry lower bound never answers: it is the load the fleet
    happened to carry, and sizing by it would add replicas at every refit. None: no usable curve.
    """
    from controlplane.store.derived import q  # noqa: PLC0415

    res = store.query(
        "SELECT capacity_rps FROM capacity_curves "
        f"WHERE model = {q(model)} AND capacity_rps > 0 AND NOT (source = 'telemetry' AND lower_bound = 1) "
        "ORDER BY lower_bound ASC, ts DESC LIMIT 1"
    )
    return float(res.rows[0][0]) if res.rows else None
