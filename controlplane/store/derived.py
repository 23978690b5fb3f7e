"""Derived series as SQL strings: the one place rates, averages and percentiles are defined.

Every function takes a window [start_s, end_s) (epoch seconds), a step (bucket width, seconds),
optional filters (models, targets, zones) and `by` (group columns from model, target, zone,
region), and returns a SELECT whose first column is `ts` (bucket start, DateTime UTC), then the
`by` columns, then values whose names carry their unit.

Reset safety: counters are never differenced here. Each sample's `delta` (the reset-safe
increase since the previous sample of its series, computed at insert: `v - prev` if `v >= prev`
else `v`) is summed, and rollups hold the same sums, so a restart mid-window adds the new
counter value instead of a negative or a spike. `source="values"` recomputes the same increase
from raw values with a window function (slow; used to cross-check).

Source: "auto" picks fleet_1h / fleet_1m (per model, summed across all targets) when the step is
a multiple of an hour / minute and nothing per target, zone or region is asked, samples_1h /
samples_1m when it is, and raw samples below a minute. "raw", "1m", "1h" force a resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALLOWED_BY = ("model", "target", "zone", "region")
SOURCES = ("auto", "raw", "values", "1m", "1h")

# Triton / vLLM / DCGM metric names the derived series read (as exposed; see FACTS.md).
REQUEST_SUCCESS = "nv_inference_request_success"
REQUEST_FAILURE = "nv_inference_request_failure"
# Triton counts a python-backend error response as a success (server issue #7713); our models
# count them themselves (serving/models/error_metrics.py).
MODEL_ERROR_RESPONSES = "fleetpilot_model_error_responses_total"
INFERENCE_COUNT = "nv_inference_count"
EXEC_COUNT = "nv_inference_exec_count"
CACHE_HITS = "nv_cache_num_hits_per_model"
CACHE_MISSES = "nv_cache_num_misses_per_model"
DURATIONS_US = {
    "request": "nv_inference_request_duration_us",
    "queue": "nv_inference_queue_duration_us",
    "compute_input": "nv_inference_compute_input_duration_us",
    "compute_infer": "nv_inference_compute_infer_duration_us",
    "compute_output": "nv_inference_compute_output_duration_us",
}
LATENCY_HISTOGRAM_MS = "nv_inference_first_response_histogram_ms"  # --metrics-config histogram_latencies=true
GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
TTFT_HISTOGRAM_S = "vllm:time_to_first_token_seconds"
# vLLM renamed time_per_output_token to inter_token_latency; either is read.
INTER_TOKEN_HISTOGRAMS_S = ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds")
GPU_METRICS = {
    "triton": {
        "util": "nv_gpu_utilization",
        "mem": "nv_gpu_memory_used_bytes",
        "power": "nv_gpu_power_usage",
    },
    "dcgm": {
        "util": "DCGM_FI_DEV_GPU_UTIL",
        "mem": "DCGM_FI_DEV_FB_USED",
        "power": "DCGM_FI_DEV_POWER_USAGE",
    },
}
ENERGY_J = {"triton": "nv_energy_consumption", "dcgm": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}


def q(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qlist(items: Sequence[str]) -> str:
    return "(" + ", ".join(q(x) for x in items) + ")"


@dataclass(frozen=True)
class _Src:
    table: str
    inc: str  # reset-safe increase column
    sum: str
    count: str
    max: str
    le: str
    reason: str
    raw: bool  # ts is DateTime64 at sample resolution


_RAW = dict(
    inc="delta", sum="value", count="1", max="value", le="labels['le']", reason="labels['reason']", raw=True
)
# Per-series and fleet rollups both keep `le` and `reason` as columns.
_SERIES = _FLEET = dict(
    inc="increase", sum="sum_value", count="count", max="max_value", le="le", reason="reason", raw=False
)


@dataclass(frozen=True)
class _Query:
    start_s: int
    end_s: int
    step_s: int
    src: _Src
    by: tuple[str, ...]
    filters: str  # extra WHERE terms (model/target/zone)


def _plan(
    start_s: float,
    end_s: float,
    step_s: int,
    by: Sequence[str],
    models: Sequence[str] | None,
    targets: Sequence[str] | None,
    zones: Sequence[str] | None,
    source: str,
    per_series: bool = False,
) -> _Query:
    step = int(step_s)
    if step < 1:
        raise ValueError(f"step_s must be >= 1 (got {step_s})")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES} (got {source!r})")
    bad = [b for b in by if b not in ALLOWED_BY]
    if bad:
        raise ValueError(f"cannot group by {bad}; allowed: {ALLOWED_BY}")
    res = source
    if source == "auto":
        res = "1h" if step % 3600 == 0 else "1m" if step % 60 == 0 else "raw"
    if res in ("1m", "1h") and step % (60 if res == "1m" else 3600):
        raise ValueError(f"step_s={step} is not a multiple of the {res} rollup")
    # Buckets are aligned to multiples of the step since the epoch.
    start = int(math.floor(start_s / step) * step)
    end = int(math.ceil(end_s / step) * step)
    # Fleet rollups hold per-model sums only; anything per target, zone or region reads per-series rows.
    need_series = (
        per_series or bool(targets) or bool(zones) or any(b in by for b in ("target", "zone", "region"))
    )
    if res == "raw":
        src = _Src(table="samples", **_RAW)
    elif res == "values":
        src = _Src(table="", **_RAW)  # filled in by _from: a window-function subquery
    else:
        src = _Src(
            table=("samples_" if need_series else "fleet_") + res, **(_SERIES if need_series else _FLEET)
        )
    terms = []
    if models:
        terms.append(f"model IN {qlist(models)}")
    if targets:
        terms.append(f"target IN {qlist(targets)}")
    if zones:
        terms.append(f"zone IN {qlist(zones)}")
    return _Query(start, end, step, src, tuple(by), " AND ".join(terms))


def _time_filter(p: _Query) -> str:
    if p.src.raw:
        return f"ts >= toDateTime64({p.start_s}, 3, 'UTC') AND ts < toDateTime64({p.end_s}, 3, 'UTC')"
    return f"ts >= toDateTime({p.start_s}, 'UTC') AND ts < toDateTime({p.end_s}, 'UTC')"


def _from(p: _Query, metrics: Sequence[str]) -> str:
    """FROM ... WHERE ... for the given metrics, window and filters."""
    extra = f" AND {p.filters}" if p.filters else ""
    if p.src.table:
        return f"FROM {p.src.table} WHERE metric IN {qlist(metrics)} AND {_time_filter(p)}{extra}"
    # "values": the contract's increase from consecutive raw values (one step of lookback so
    # the first bucket has a predecessor), independent of the stored delta.
    lookback = p.start_s - max(p.step_s, 300)
    inner = (
        "SELECT ts, metric, model, target, zone, region, labels, value, "
        "if(rn > 1, if(value >= prev, value - prev, value), 0) AS delta FROM ("
        "SELECT *, lagInFrame(value) OVER w AS prev, row_number() OVER w AS rn FROM samples "
        f"WHERE metric IN {qlist(metrics)} AND ts >= toDateTime64({lookback}, 3, 'UTC') "
        f"AND ts < toDateTime64({p.end_s}, 3, 'UTC'){extra} "
        "WINDOW w AS (PARTITION BY series_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))"
    )
    return f"FROM ({inner}) WHERE {_time_filter(p)}"


def _bucket(p: _Query) -> str:
    return f"toDateTime(toStartOfInterval(ts, INTERVAL {p.step_s} SECOND), 'UTC') AS bucket"


def _by_cols(p: _Query, extra: Sequence[str] = ()) -> str:
    return "".join(f", {c}" for c in (*p.by, *extra))


def _finish(p: _Query, inner: str, values: Sequence[str], extra_by: Sequence[str] = ()) -> str:
    cols = ", ".join(["bucket AS ts", *p.by, *extra_by, *values])
    order = ", ".join(["ts", *p.by, *extra_by])
    return f"SELECT {cols} FROM ({inner}) ORDER BY {order}"


def _counters(p: _Query, metrics: dict[str, Sequence[str]], extra_by: Sequence[tuple[str, str]] = ()) -> str:
    """Per bucket: `<alias>` = summed increase of the alias' metrics."""
    all_metrics = sorted({m for ms in metrics.values() for m in ms})
    # NULL (not 0) when a metric was not reported at all in the bucket: "unknown" is not "zero".
    sums = ", ".join(
        f"if(countIf(metric IN {qlist(ms)}) = 0, NULL, sumIf({p.src.inc}, metric IN {qlist(ms)})) AS {alias}"
        for alias, ms in metrics.items()
    )
    extra_sel = "".join(f", {expr} AS {name}" for name, expr in extra_by)
    extra_grp = [name for name, _ in extra_by]
    return (
        f"SELECT {_bucket(p)}{_by_cols(p)}{extra_sel}, {sums} {_from(p, all_metrics)} "
        f"GROUP BY bucket{_by_cols(p, extra_grp)}"
    )


def _gauges(p: _Query, metrics: dict[str, str]) -> str:
    """Per bucket: `<alias>_avg` and `<alias>_max` over all samples of the alias' metric."""
    parts = []
    for alias, m in metrics.items():
        parts.append(
            f"sumIf({p.src.sum}, metric = {q(m)}) / nullIf(sumIf({p.src.count}, metric = {q(m)}), 0) AS {alias}_avg"
        )
        parts.append(
            f"if(countIf(metric = {q(m)}) = 0, NULL, maxIf({p.src.max}, metric = {q(m)})) AS {alias}_max"
        )
    return f"SELECT {_bucket(p)}{_by_cols(p)}, {', '.join(parts)} {_from(p, list(metrics.values()))} GROUP BY bucket{_by_cols(p)}"


# ---- counters ---------------------------------------------------------------------------------


def request_rate(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """requests_per_s (successful), failures_per_s: Triton request counters, corrected for
    python-backend error responses (counted by Triton as successes; see MODEL_ERROR_RESPONSES)."""
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    inner = _counters(
        p,
        {
            "ok": [REQUEST_SUCCESS],
            "failed": [REQUEST_FAILURE, MODEL_ERROR_RESPONSES],
            "model_errors": [MODEL_ERROR_RESPONSES],
        },
    )
    return _finish(
        p,
        inner,
        [
            f"greatest(ok - ifNull(model_errors, 0), 0) / {p.step_s} AS requests_per_s",
            f"failed / {p.step_s} AS failures_per_s",
        ],
    )


def failures_by_reason(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """failures_per_s per `reason` label (REJECTED, CANCELED, BACKEND, OTHER)."""
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    inner = _counters(p, {"failed": [REQUEST_FAILURE]}, extra_by=[("reason", p.src.reason)])
    return _finish(p, inner, [f"failed / {p.step_s} AS failures_per_s"], extra_by=["reason"])


def request_times(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """avg_{request,queue,compute_input,compute_infer,compute_output}_ms per successful request.

    Triton's compute durations exclude response-cache hits, so they are divided by the requests
    that actually executed (success - cache hits); request and queue time by all successes.
    """
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    metrics = {name: [m] for name, m in DURATIONS_US.items()}
    metrics |= {"ok": [REQUEST_SUCCESS], "hits": [CACHE_HITS]}
    inner = _counters(p, metrics)
    values = []
    for name in DURATIONS_US:
        den = "ok" if name in ("request", "queue") else "greatest(ok - ifNull(hits, 0), 0)"
        values.append(f"{name} / 1000.0 / nullIf({den}, 0) AS avg_{name}_ms")
    return _finish(p, inner, values)


def batch_size(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """avg_batch_size: inferences per model execution (dynamic batching efficiency)."""
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    inner = _counters(p, {"inferences": [INFERENCE_COUNT], "execs": [EXEC_COUNT]})
    return _finish(p, inner, ["inferences / nullIf(execs, 0) AS avg_batch_size"])


def cache_hit_ratio(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """cache_hit_ratio (0-1): response-cache hits / lookups."""
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    inner = _counters(p, {"hits": [CACHE_HITS], "misses": [CACHE_MISSES]})
    return _finish(
        p,
        inner,
        [
            "hits / nullIf(hits + misses, 0) AS cache_hit_ratio",
            f"(hits + misses) / {p.step_s} AS cache_lookups_per_s",
        ],
    )


def token_rate(
    start_s, end_s, step_s=60, *, by=("model",), models=None, targets=None, zones=None, source="auto"
) -> str:
    """generation_tokens_per_s, prompt_tokens_per_s (vLLM-style token counters)."""
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    inner = _counters(p, {"gen": [GENERATION_TOKENS], "prompt": [PROMPT_TOKENS]})
    return _finish(
        p,
        inner,
        [f"gen / {p.step_s} AS generation_tokens_per_s", f"prompt / {p.step_s} AS prompt_tokens_per_s"],
    )


def energy_per_1k_inferences(
    start_s, end_s, step_s=60, *, by=(), targets=None, zones=None, family="triton", source="auto"
) -> str:
    """energy_j_per_1k_inferences: GPU energy (J, counter; no model label) per 1,000 inferences.

    Energy is not attributable to a model, so `by` may hold target/zone/region only.
    """
    if "model" in by:
        raise ValueError("energy has no model label; group by target, zone or region")
    p = _plan(start_s, end_s, step_s, by, None, targets, zones, source)
    inner = _counters(p, {"energy_j": [ENERGY_J[family]], "inferences": [INFERENCE_COUNT]})
    return _finish(
        p,
        inner,
        [
            "energy_j * 1000.0 / nullIf(inferences, 0) AS energy_j_per_1k_inferences",
            f"energy_j / {p.step_s} AS power_w",
        ],
    )


# ---- gauges -----------------------------------------------------------------------------------


def gpu(start_s, end_s, step_s=60, *, by=(), targets=None, zones=None, family="triton", source="auto") -> str:
    """gpu_utilization_ratio (avg and max over GPUs and samples), gpu_memory_used_bytes and gpu_power_w (avg per GPU).

    Units are normalised at ingest (DCGM's 0-100 and MiB become 0-1 and bytes), so both families read alike.
    """
    p = _plan(start_s, end_s, step_s, by, None, targets, zones, source)
    m = GPU_METRICS[family]
    inner = _gauges(p, {"util": m["util"], "mem": m["mem"], "power": m["power"]})
    return _finish(
        p,
        inner,
        [
            "util_avg AS gpu_utilization_ratio",
            "util_max AS gpu_utilization_max_ratio",
            "mem_avg AS gpu_memory_used_bytes",
            "power_avg AS gpu_power_w",
        ],
    )


# ---- histograms -------------------------------------------------------------------------------


def _unit(metric: str) -> str:
    for suffix, unit in (("_seconds", "s"), ("_ms", "ms"), ("_us", "us"), ("_ns", "ns"), ("_bytes", "bytes")):
        if metric.endswith(suffix):
            return unit
    return "value"


def histogram_quantile(
    metric: str | Sequence[str],
    quantile: float,
    start_s,
    end_s,
    step_s=60,
    *,
    name: str | None = None,
    by=("model",),
    models=None,
    targets=None,
    zones=None,
    source="auto",
) -> str:
    """The `quantile` of a Prometheus histogram per bucket, from summed `_bucket` increases.

    Same estimate as Prometheus' histogram_quantile: linear interpolation inside the bucket that
    holds the rank; a rank in the +Inf bucket gives the highest finite bound; no observations → NULL.
    Output column: `name` or p<q>_<unit>, e.g. p99_ms.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1) (got {quantile})")
    bases = [metric] if isinstance(metric, str) else list(metric)
    col = name or f"p{quantile * 100:g}_{_unit(bases[0])}".replace(".", "_")
    p = _plan(start_s, end_s, step_s, by, models, targets, zones, source)
    buckets = [b + "_bucket" for b in bases]
    per_le = (
        f"SELECT {_bucket(p)}{_by_cols(p)}, toFloat64OrNull({p.src.le}) AS le_f, sum({p.src.inc}) AS n "
        f"{_from(p, buckets)} GROUP BY bucket{_by_cols(p)}, le_f HAVING le_f IS NOT NULL"
    )
    hist = (
        f"SELECT bucket{_by_cols(p)}, arraySort(x -> x.1, groupArray((assumeNotNull(le_f), n))) AS h "
        f"FROM ({per_le}) GROUP BY bucket{_by_cols(p)}"
    )
    est = (
        f"SELECT bucket{_by_cols(p)}, arrayMap(x -> x.1, h) AS les, arrayMap(x -> x.2, h) AS cum, "
        f"cum[-1] AS total, {quantile!r} * total AS rank, arrayFirstIndex(c -> c >= rank, cum) AS i, "
        "if(i <= 1, 0.0, les[i - 1]) AS lo, if(i <= 1, 0.0, cum[i - 1]) AS lo_n, "
        "multiIf(total <= 0 OR i = 0, NULL, isInfinite(les[i]), if(i = 1, NULL, lo), "
        "les[i] = lo OR cum[i] = lo_n, les[i], lo + (les[i] - lo) * (rank - lo_n) / (cum[i] - lo_n)) AS qv "
        f"FROM ({hist})"
    )
    return _finish(p, est, [f"qv AS {col}", f"total / {p.step_s} AS observations_per_s"])


def latency_percentile(start_s, end_s, step_s=60, *, quantile=0.99, metric=LATENCY_HISTOGRAM_MS, **kw) -> str:
    """p<q>_latency_ms per model from Triton's first-response latency histogram (ms)."""
    return histogram_quantile(
        metric,
        quantile,
        start_s,
        end_s,
        step_s,
        name=f"p{quantile * 100:g}_latency_ms".replace(".", "_"),
        **kw,
    )


def ttft_percentile(start_s, end_s, step_s=60, *, quantile=0.99, **kw) -> str:
    """ttft_p<q>_s: time to first token (s)."""
    return histogram_quantile(
        TTFT_HISTOGRAM_S,
        quantile,
        start_s,
        end_s,
        step_s,
        name=f"ttft_p{quantile * 100:g}_s".replace(".", "_"),
        **kw,
    )


def inter_token_percentile(start_s, end_s, step_s=60, *, quantile=0.99, **kw) -> str:
    """itl_p<q>_s: time between output tokens (s)."""
    return histogram_quantile(
        INTER_TOKEN_HISTOGRAMS_S,
        quantile,
        start_s,
        end_s,
        step_s,
        name=f"itl_p{quantile * 100:g}_s".replace(".", "_"),
        **kw,
    )


# The dashboard's standard panels (also what `bench query` times).
def standard_panels(start_s, end_s, step_s=60, source="auto") -> dict[str, str]:
    return {
        "p99_latency_per_model": latency_percentile(start_s, end_s, step_s, source=source),
        "request_rate_per_model": request_rate(start_s, end_s, step_s, source=source),
        "gpu_utilization": gpu(start_s, end_s, step_s, source=source),
    }
