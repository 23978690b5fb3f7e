"""A realistic seeded store and a running control-plane API, for API and dashboard tests.

`seed_store(store, now_s)` writes 30 minutes of telemetry (a scrape every 10 s) for 2 models on 3
Triton replicas in 2 zones, as the collectors write it (metric names as exposed, Triton's `model`
label in the model column, histograms as `_bucket{le}` / `_sum` / `_count` with kind "histogram",
GPU series labelled gpu_uuid without a model), plus control-plane rows: decisions, actions, an
open and a closed incident, forecasts, replica spec and status, overrides. It returns what was
seeded, so tests compare against numbers, not just status codes.

`running_api(tmp_dir)` opens an embedded store under tmp_dir, seeds it, serves the API on a free
port in 18600-18649 and yields a `RunningApi` (base_url, token, expected values). Only one embedded
store can be open per process: use one `running_api` at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controlplane.store import SampleBatch, Store
from tests.support.ports import free_port as ports_free_port

PORT_RANGE = range(18600, 18650)
TOKEN = "test-token-5d1c"
SCRAPE_S = 10
DURATION_S = 1800
MODELS = ("classifier-small", "chat-lm")
REPLICAS = (("replica-0", "zone-a"), ("replica-1", "zone-b"), ("replica-2", "zone-a"))
REGION = "local"
# Per replica, per model: successful requests per second.
RATE_RPS = {"classifier-small": 20.0, "chat-lm": 2.0}
FAILURE_RPS = {"classifier-small": 0.1, "chat-lm": 0.0}
CACHE_HIT_RATIO = {"classifier-small": 0.2}
BATCH_SIZE = {"classifier-small": 4.0, "chat-lm": 1.0}
REQUEST_MS = {"classifier-small": 12.0, "chat-lm": 300.0}
QUEUE_MS = {"classifier-small": 2.0, "chat-lm": 40.0}
# First-response latency (ms): cumulative share of requests at or under each bound.
LATENCY_CDF = {
    "classifier-small": [
        (1, 0.0),
        (5, 0.2),
        (10, 0.6),
        (25, 0.9),
        (50, 0.98),
        (100, 0.995),
        (250, 1.0),
        (500, 1.0),
    ],
    "chat-lm": [(50, 0.0), (100, 0.25), (250, 0.5), (500, 0.9), (1000, 1.0), (2500, 1.0)],
}
PROMPT_TOKENS_PER_REQ = 200
GEN_TOKENS_PER_REQ = 64
TTFT_CDF_S = [(0.05, 0.0), (0.1, 0.25), (0.25, 0.5), (0.5, 0.9), (1.0, 1.0)]
ITL_CDF_S = [(0.01, 0.1), (0.025, 0.7), (0.05, 0.98), (0.1, 1.0)]
GPU_UTIL = {"replica-0": 0.4, "replica-1": 0.5, "replica-2": 0.6}
GPU_MEM_BYTES = 20e9
GPU_POWER_W = 250.0
RESTART = ("replica-2", 900)  # this replica restarts (counters reset) this many seconds in


def _cdf_counts(cdf, n: float) -> list[tuple[str, float]]:
    out = [(f"{le:g}", round(share * n)) for le, share in cdf]
    return [*out, ("+Inf", n)]


def _telemetry_rows(start_s: int, end_s: int) -> list[dict]:
    rows: list[dict] = []
    restart_rep, restart_after = RESTART
    n_scrapes = (end_s - start_s) // SCRAPE_S + 1
    for k in range(n_scrapes):
        ts = start_s + k * SCRAPE_S
        for rep, zone in REPLICAS:
            # Scrapes since this replica's counters started (a restart resets them to zero).
            since = k
            if rep == restart_rep and ts - start_s >= restart_after:
                since = k - restart_after // SCRAPE_S + 1  # requests since the restart
            base = {"ts": ts, "target": rep, "zone": zone, "region": REGION}

            def put(metric, value, kind, model="", labels=None, _base=base):
                rows.append({**_base, "metric": metric, "value": float(value), "kind": kind, "model": model,
                             "labels": labels or {}})  # fmt: skip

            for model in MODELS:
                tri = {"version": "1"}
                req = RATE_RPS[model] * SCRAPE_S  # requests per scrape
                hits = req * CACHE_HIT_RATIO.get(model, 0.0)
                executed = req - hits
                c = since  # cumulative multiplier
                put("nv_inference_request_success", req * c, "counter", model, tri)
                for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
                    fail = FAILURE_RPS[model] * SCRAPE_S if reason == "BACKEND" else 0.0
                    put("nv_inference_request_failure", fail * c, "counter", model, {**tri, "reason": reason})
                put("nv_inference_count", executed * c, "counter", model, tri)
                put("nv_inference_exec_count", executed / BATCH_SIZE[model] * c, "counter", model, tri)
                put(
                    "nv_inference_request_duration_us",
                    req * REQUEST_MS[model] * 1000 * c,
                    "counter",
                    model,
                    tri,
                )
                put("nv_inference_queue_duration_us", req * QUEUE_MS[model] * 1000 * c, "counter", model, tri)
                compute_ms = REQUEST_MS[model] - QUEUE_MS[model]
                put(
                    "nv_inference_compute_input_duration_us",
                    executed * 0.1 * compute_ms * 1000 * c,
                    "counter",
                    model,
                    tri,
                )
                put(
                    "nv_inference_compute_infer_duration_us",
                    executed * 0.8 * compute_ms * 1000 * c,
                    "counter",
                    model,
                    tri,
                )
                put(
                    "nv_inference_compute_output_duration_us",
                    executed * 0.1 * compute_ms * 1000 * c,
                    "counter",
                    model,
                    tri,
                )
                put(
                    "nv_inference_pending_request_count",
                    1.0 if model == "chat-lm" else 0.0,
                    "gauge",
                    model,
                    tri,
                )
                if model in CACHE_HIT_RATIO:
                    put("nv_cache_num_hits_per_model", hits * c, "counter", model, tri)
                    put("nv_cache_num_misses_per_model", executed * c, "counter", model, tri)
                hist = "nv_inference_first_response_histogram_ms"
                for le, n in _cdf_counts(LATENCY_CDF[model], req):
                    put(f"{hist}_bucket", n * c, "histogram", model, {**tri, "le": le})
                put(f"{hist}_sum", req * REQUEST_MS[model] * c, "histogram", model, tri)
                put(f"{hist}_count", req * c, "histogram", model, tri)
            # vLLM-style token metrics for chat-lm (model in `model_name`, kept in labels too).
            chat = RATE_RPS["chat-lm"] * SCRAPE_S
            vl = {"model_name": "chat-lm"}
            put("vllm:prompt_tokens_total", chat * PROMPT_TOKENS_PER_REQ * since, "counter", "chat-lm", vl)
            put("vllm:generation_tokens_total", chat * GEN_TOKENS_PER_REQ * since, "counter", "chat-lm", vl)
            for name, cdf, per in (
                ("vllm:time_to_first_token_seconds", TTFT_CDF_S, chat),
                ("vllm:time_per_output_token_seconds", ITL_CDF_S, chat * GEN_TOKENS_PER_REQ),
            ):
                for le, n in _cdf_counts(cdf, per):
                    put(f"{name}_bucket", n * since, "histogram", "chat-lm", {**vl, "le": le})
                put(f"{name}_count", per * since, "histogram", "chat-lm", vl)
            # GPU (one per replica), no model label.
            gpu = {"gpu_uuid": f"GPU-{rep}"}
            put("nv_gpu_utilization", GPU_UTIL[rep], "gauge", "", gpu)
            put("nv_gpu_memory_used_bytes", GPU_MEM_BYTES, "gauge", "", gpu)
            put("nv_gpu_memory_total_bytes", 80e9, "gauge", "", gpu)
            put("nv_gpu_power_usage", GPU_POWER_W, "gauge", "", gpu)
            put("nv_energy_consumption", GPU_POWER_W * SCRAPE_S * since, "counter", "", gpu)
    return rows


def _utc(s: float) -> datetime:
    return datetime.fromtimestamp(s, tz=UTC)


def _control_rows(now_s: float) -> dict[str, list[dict]]:
    t = now_s
    dec = []
    for i, (model, cur, final, codes) in enumerate(
        [
            ("classifier-small", 2, 3, ["scale_up", "latency_over_slo"]),
            ("chat-lm", 3, 3, ["hold"]),
            ("classifier-small", 3, 3, ["hold", "within_tolerance"]),
        ]
    ):
        ts = t - 600 + i * 120
        dec.append(
            {
                "ts": _utc(ts),
                "decision_id": f"replicas:{model}:@{int(ts * 1000)}",
                "policy": "replicas",
                "mode": "active",
                "model": model,
                "replica": "",
                "action": "scale_up" if final > cur else "hold",
                "params": json.dumps(
                    {"current": cur, "recommended": final, "final": final, "actuate": final > cur}
                ),
                "reason_codes": codes,
                "inputs": json.dumps({"rate_rps": 60.0, "p99_ms": 83.3, "slo_p99_ms": 50.0}),
                "confidence_ratio": 1.0,
            }
        )
    dec.append(
        {
            "ts": _utc(t - 200),
            "decision_id": f"routing:chat-lm:replica-1@{int((t - 200) * 1000)}",
            "policy": "routing",
            "mode": "active",
            "model": "chat-lm",
            "replica": "replica-1",
            "action": "drain",
            "params": json.dumps({"current": 100, "final": 75}),
            "reason_codes": ["open_incident"],
            "inputs": json.dumps({"p99_ms": 900.0}),
            "confidence_ratio": 0.9,
        }
    )
    actions = [
        {
            "ts": _utc(t - 599),
            "action_id": "a-1",
            "decision_id": dec[0]["decision_id"],
            "actuator": "replicas",
            "action": "scale_up",
            "mode": "active",
            "model": "classifier-small",
            "replica": "replica-2",
            "params": json.dumps({"to": 3}),
            "outcome": "ok",
            "error": "",
            "duration_ms": 5200.0,
        },
        {
            "ts": _utc(t - 199),
            "action_id": "a-2",
            "decision_id": dec[3]["decision_id"],
            "actuator": "router",
            "action": "drain",
            "mode": "active",
            "model": "chat-lm",
            "replica": "replica-1",
            "params": json.dumps({"weight": 75}),
            "outcome": "failed",
            "error": "router admin endpoint unreachable",
            "duration_ms": 3.0,
        },
    ]

    def event(kind, inc_id, seq, ts, model, replica, zone, metric, severity, score, observed, expected):
        return {
            "ts": _utc(ts), "event_id": f"{inc_id}#{seq}", "detector": "robust+peer", "model": model,
            "replica": replica, "zone": zone, "metric": metric, "severity": severity, "score": score,
            "threshold": 0.6, "observed_value": observed, "expected_value": expected,
            "reason_codes": [kind, "detector:robust", "detector:peer"],
            "inputs": json.dumps({"incident_id": inc_id, "peak_score": score}),
            "window_start": _utc(ts - 60), "window_end": _utc(ts),
        }  # fmt: skip

    open_id = f"chat-lm/replica-1/p99_ms@{int((t - 300) * 1000)}"
    closed_id = f"classifier-small/replica-2/error_ratio@{int((t - 1500) * 1000)}"
    events = [
        event("opened", closed_id, 0, t - 1500, "classifier-small", "replica-2", "zone-a", "error_ratio", "warning", 0.8, 0.05, 0.005),
        event("closed", closed_id, 1, t - 1300, "classifier-small", "replica-2", "zone-a", "error_ratio", "warning", 0.8, 0.005, 0.005),
        event("opened", open_id, 0, t - 300, "chat-lm", "replica-1", "zone-b", "p99_ms", "warning", 0.8, 900.0, 310.0),
        event("updated", open_id, 1, t - 240, "chat-lm", "replica-1", "zone-b", "p99_ms", "critical", 0.95, 1400.0, 310.0),
    ]  # fmt: skip
    forecasts = []
    for model, rate in (("classifier-small", 60.0), ("chat-lm", 6.0)):
        for made in (t - 120, t - 60):
            for h in range(1, 11):
                forecasts.append(
                    {
                        "ts": _utc(made), "forecaster": "seasonal_naive", "model": model,
                        "metric": "request_rate_rps", "target_ts": _utc(made + 10 * h), "horizon_s": 10 * h,
                        "value": rate, "lower": rate * 0.8, "upper": rate * 1.25, "inputs": "{}",
                    }
                )  # fmt: skip
    spec, status = [], []
    for rep, zone in REPLICAS:
        for model in MODELS:
            weight = 75.0 if rep == "replica-1" else 100.0
            spec.append(
                {"ts": _utc(t - 900), "replica": rep, "model": model, "zone": zone, "region": REGION,
                 "desired_state": "running", "instance_count": 1, "weight": weight, "source": "policy",
                 "decision_id": ""}
            )  # fmt: skip
        for dt in (600, 30):
            state = "starting" if dt == 600 else "ready"
            status.append(
                {"ts": _utc(t - dt), "replica": rep, "model": "", "zone": zone, "region": REGION,
                 "state": state, "ready": 1 if state == "ready" else 0, "instance_count": 0,
                 "pid": 4000 + int(rep[-1]), "detail": ",".join(MODELS)}
            )  # fmt: skip
    overrides = [
        # Expired: a pause of classifier-small that lapsed 10 minutes ago.
        {"ts": _utc(t - 1200), "override_id": "ov-expired", "model": "classifier-small", "action": "pause",
         "replicas": None, "mode": "", "reason": "maintenance window", "expires_at": _utc(t - 600), "source": "api"},
        # Active: chat-lm pinned to 3 replicas.
        {"ts": _utc(t - 100), "override_id": "ov-pin", "model": "chat-lm", "action": "pin",
         "replicas": 3, "mode": "", "reason": "launch day", "expires_at": None, "source": "api"},
    ]  # fmt: skip
    curves = [
        {
            "ts": _utc(t - 3000), "curve_id": "c1", "source": "profile", "model": "classifier-small",
            "replica": "replica-0", "replica_kind": "cpu-x1", "device": "cpu", "instance_count": 1,
            "slo_metric": "p99_ms", "slo_ms": 50.0, "slo_itl_ms": 0.0, "capacity_rps": 35.0, "lower_bound": 0,
            "reason": "fitted", "points": "[]", "inputs": "{}",
        }
    ]  # fmt: skip
    return {
        "decisions": dec,
        "actions": actions,
        "anomaly_events": events,
        "forecasts": forecasts,
        "replica_spec": spec,
        "replica_status": status,
        "overrides": overrides,
        "capacity_curves": curves,
    }


def seed_store(store: Store, now_s: float) -> dict[str, Any]:
    """Write the seed; returns the window, expected rates and the ids tests look for."""
    end_s = int(now_s // SCRAPE_S * SCRAPE_S)
    start_s = end_s - DURATION_S
    rows = _telemetry_rows(start_s, end_s)
    for i in range(0, len(rows), 50_000):
        store.insert_samples(SampleBatch.from_rows(rows[i : i + 50_000]), f"api-seed-{start_s}-{i}")
    control = _control_rows(now_s)
    for table, trows in control.items():
        store.insert_rows(table, trows)
    n_rep = len(REPLICAS)
    return {
        "now_s": now_s,
        "start_s": start_s,
        "end_s": end_s,
        "samples": len(rows),
        "models": list(MODELS),
        "replicas": [r for r, _ in REPLICAS],
        "zones": sorted({z for _, z in REPLICAS}),
        "rate_rps": {m: RATE_RPS[m] * n_rep for m in MODELS},
        "rate_rps_per_replica": dict(RATE_RPS),
        "failure_rps": {m: FAILURE_RPS[m] * n_rep for m in MODELS},
        "cache_hit_ratio": dict(CACHE_HIT_RATIO),
        "batch_size": dict(BATCH_SIZE),
        "request_ms": dict(REQUEST_MS),
        "queue_ms": dict(QUEUE_MS),
        "latency_cdf": {m: list(v) for m, v in LATENCY_CDF.items()},
        "generation_tokens_per_s": RATE_RPS["chat-lm"] * n_rep * GEN_TOKENS_PER_REQ,
        "prompt_tokens_per_s": RATE_RPS["chat-lm"] * n_rep * PROMPT_TOKENS_PER_REQ,
        "gpu_util": dict(GPU_UTIL),
        "gpu_power_w": GPU_POWER_W,
        "gpu_memory_used_bytes": GPU_MEM_BYTES,
        "open_incident_id": json.loads(control["anomaly_events"][2]["inputs"])["incident_id"],
        "closed_incident_id": json.loads(control["anomaly_events"][0]["inputs"])["incident_id"],
        "rows": {t: len(r) for t, r in control.items()},
        "pinned": {"chat-lm": 3},
        "capacity_rps": {"classifier-small": 35.0},
        "forecast_p90_rps": {"classifier-small": 75.0, "chat-lm": 7.5},
    }


# ---- a running API ----------------------------------------------------------------------------


def free_port(ports: range = PORT_RANGE, host: str = "127.0.0.1") -> int:
    return ports_free_port(ports, host)


@dataclass
class RunningApi:
    base_url: str
    token: str
    seed: dict[str, Any]
    store: Store
    ctx: Any
    handle: Any
    data_dir: Path
    headers: dict[str, str] = field(default_factory=dict)


@contextmanager
def running_api(
    tmp_dir: str | Path,
    port: int | None = None,
    seed: bool = True,
    token: str | None = TOKEN,
    now_s: float | None = None,
    freeze_clock: bool = False,
    **settings_overrides: Any,
) -> Iterator[RunningApi]:
    """Embedded store under tmp_dir (seeded), the API on 127.0.0.1:<port> (free one in 18600-18649).

    `token=None` serves without a configured token (POST /v1/overrides answers 503).
    `freeze_clock=True` pins the API's "now" to the seed time, so windows hold exactly the seed.
    """
    from controlplane.api import ApiContext, create_app, start_api_thread  # noqa: PLC0415
    from controlplane.config import Settings  # noqa: PLC0415
    from controlplane.store import open_store  # noqa: PLC0415

    data_dir = Path(tmp_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, api_token=token, **settings_overrides)
    store = open_store(settings.store_dsn)
    handle = None
    try:
        now = time.time() if now_s is None else now_s
        info = seed_store(store, now) if seed else {}
        ctx = ApiContext(settings=settings, store=store, clock=(lambda: now) if freeze_clock else None)
        app = create_app(ctx)
        port = port or free_port()
        handle = start_api_thread(app, "127.0.0.1", port)
        yield RunningApi(
            base_url=handle.base_url,
            token=token or "",
            seed=info,
            store=store,
            ctx=ctx,
            handle=handle,
            data_dir=data_dir,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
    finally:
        if handle is not None:
            handle.stop(10.0)
        store.close()
