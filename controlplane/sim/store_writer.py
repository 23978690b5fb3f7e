"""Simulated telemetry into the store, in the real `samples` schema, so detectors, rollups and
dashboards work on a simulated fleet as on a real one.

One target per simulated model (`sim:<model>`), scraped every scrape_s of simulated time, with
Triton's own metric names and kinds: cumulative counters nv_inference_request_success,
nv_inference_request_duration_us and nv_inference_queue_duration_us (microseconds, as Triton
reports them), the gauge nv_inference_pending_request_count, plus two gauges of the simulator,
fleetpilot_sim_replicas (billed) and fleetpilot_sim_ready_replicas.
"""

from __future__ import annotations

import numpy as np

from controlplane.sim.metrics import SimResult
from controlplane.store.samples import SampleBatch, series_id_of

COUNTERS = {
    "nv_inference_request_success": "served",
    "nv_inference_request_duration_us": "latency_sum_ms",
    "nv_inference_queue_duration_us": "wait_sum_ms",
}
TO_US = {"nv_inference_request_success": 1.0, "nv_inference_request_duration_us": 1000.0,
         "nv_inference_queue_duration_us": 1000.0}  # fmt: skip


def samples_from_result(
    result: SimResult,
    model: str,
    start_s: float,
    scrape_s: float = 15.0,
    zone: str = "sim",
    region: str = "sim",
) -> SampleBatch:
    """The scrapes a collector would have stored for this run (ts = start_s + simulated time)."""
    if result.served is None or result.latency_sum_ms is None or result.wait_sum_ms is None:
        raise ValueError(
            "this SimResult has no per-tick telemetry (run it with controlplane.sim.run.simulate)"
        )
    if not (scrape_s > 0):
        raise ValueError(f"scrape_s={scrape_s} must be > 0")
    every = max(1, round(scrape_s / result.tick_s))
    ends = np.arange(every, len(result.served) + 1, every)  # ticks done at each scrape
    ts = start_s + ends * result.tick_s
    target = f"sim:{model}"
    labels = {"version": "1"}
    series = []
    for metric, attr in COUNTERS.items():
        cum = np.cumsum(getattr(result, attr))[ends - 1] * TO_US[metric]
        series.append((metric, "counter", cum))
    series.append(("nv_inference_pending_request_count", "gauge", result.queue_len[ends - 1]))  # type: ignore[index]
    series.append(("fleetpilot_sim_replicas", "gauge", result.replicas[ends - 1].astype(float)))
    series.append(("fleetpilot_sim_ready_replicas", "gauge", result.ready[ends - 1].astype(float)))
    n = len(ends)
    cols: dict[str, list] = {c: [] for c in ("ts", "metric", "kind", "value", "series_id")}
    for metric, kind, values in series:
        cols["ts"].append(ts)
        cols["metric"] += [metric] * n
        cols["kind"] += [kind] * n
        cols["value"].append(np.asarray(values, dtype=float))
        cols["series_id"] += [series_id_of(target, metric, {**labels, "model": model})] * n
    total = n * len(series)
    return SampleBatch(
        ts=np.concatenate(cols["ts"]),
        target=[target] * total,
        zone=[zone] * total,
        region=[region] * total,
        model=[model] * total,
        metric=cols["metric"],
        labels=[labels] * total,
        kind=cols["kind"],
        value=np.concatenate(cols["value"]),
        series_id=cols["series_id"],
    )


def write_result(store, result: SimResult, model: str, start_s: float, scrape_s: float = 15.0) -> int:
    """Insert the run's scrapes (idempotent: the dedup token names the run); returns rows."""
    batch = samples_from_result(result, model, start_s, scrape_s)
    token = f"sim:{model}:{result.policy}:{start_s:.3f}:{len(result.served)}"  # type: ignore[arg-type]
    return store.insert_samples(batch, token)
