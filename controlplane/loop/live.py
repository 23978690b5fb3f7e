"""The loop's in-memory view of recent scrapes: per replica and model, rates, latencies, queues.

The collector hands every scrape (a `Chunk`) to `LiveWindow.add` as well as to the store's sink,
so the controller reacts to the newest scrape without a store round trip (Knative's autoscaler
keeps its metric buckets in memory the same way). Only the metrics the loop reads are kept, as
cumulative values summed over their other labels; a window is the difference between the newest
scrape of a target and the newest one at least `window_s` older. A counter that went down (a
replica restart) counts its new value as the increase, as the store's `delta` does.

Everything past `add` is pure arithmetic on `TargetSample`s.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
MODEL_ERRORS = "fleetpilot_model_error_responses_total"  # Triton counts these as successes (#7713)
REQUEST_US = "nv_inference_request_duration_us"
QUEUE_US = "nv_inference_queue_duration_us"
CACHE_HITS = "nv_cache_num_hits_per_model"
CACHE_MISSES = "nv_cache_num_misses_per_model"
PENDING = "nv_inference_pending_request_count"
LATENCY_BUCKETS = "nv_inference_first_response_histogram_ms_bucket"
# Time to first response: for a decoupled (streaming) model Triton's request duration ends when
# execute() hands the request to the engine, so only this histogram sees generation delays.
FIRST_RESPONSE_SUM_MS = "nv_inference_first_response_histogram_ms_sum"
FIRST_RESPONSE_COUNT = "nv_inference_first_response_histogram_ms_count"
E2E_BUCKETS_S = "vllm:e2e_request_latency_seconds_bucket"  # token models: arrival to last token
# Token models report their own time to first token (Triton has no first-response histogram
# for a decoupled python model); it includes time waiting for admission to the engine.
TTFT_SUM_S = "vllm:time_to_first_token_seconds_sum"
TTFT_COUNT = "vllm:time_to_first_token_seconds_count"
GEN_TOKENS = "vllm:generation_tokens_total"
WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
GPU_UTIL = "nv_gpu_utilization"
GPU_MEM = "nv_gpu_memory_used_bytes"
PROCESS_RSS = "process_resident_memory_bytes"  # collectors/procmem.py, per local replica
UP = "up"

COUNTERS = (
    SUCCESS,
    FAILURE,
    MODEL_ERRORS,
    REQUEST_US,
    QUEUE_US,
    CACHE_HITS,
    CACHE_MISSES,
    LATENCY_BUCKETS,
    FIRST_RESPONSE_SUM_MS,
    FIRST_RESPONSE_COUNT,
    E2E_BUCKETS_S,
    TTFT_SUM_S,
    TTFT_COUNT,
    GEN_TOKENS,
)
GAUGES = (PENDING, WAITING, RUNNING, GPU_UTIL, GPU_MEM, PROCESS_RSS, UP)
WANTED = frozenset(COUNTERS + GAUGES)

Key = tuple[str, str, str]  # (model, metric, le) - le only for histogram buckets


@dataclass(frozen=True)
class TargetSample:
    """One scrape of one target, reduced to the wanted metrics."""

    ts_s: float
    target: str
    zone: str
    values: dict[Key, float]

    def models(self) -> set[str]:
        return {m for (m, metric, _) in self.values if m and metric in (SUCCESS, PENDING, WAITING)}

    def gauge(self, model: str, metric: str) -> float | None:
        return self.values.get((model, metric, ""))


def reduce_chunk(ts_s: float, target: str, zone: str, metrics, models, labels, values) -> TargetSample:
    """Sum the wanted series of one scrape over their labels (except `le`).

    `metrics`, `models`, `labels` are per-series sequences (a SeriesTable's columns gathered by the
    chunk's indices) and `values` the scraped values."""
    out: dict[Key, float] = {}
    for metric, model, lab, v in zip(metrics, models, labels, values, strict=True):
        if metric not in WANTED or not math.isfinite(v):
            continue
        le = lab.get("le", "") if metric in (LATENCY_BUCKETS, E2E_BUCKETS_S) else ""
        key = (model, metric, le)
        out[key] = out.get(key, 0.0) + float(v)
    return TargetSample(ts_s, target, zone, out)


def increase(old: float | None, new: float | None) -> float | None:
    """Reset-safe counter increase (a restart counts the new value)."""
    if new is None:
        return None
    if old is None:
        return None
    return new - old if new >= old else new


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style quantile from cumulative bucket counts {upper bound: count}."""
    if not buckets:
        return None
    les = sorted(buckets)
    cum = [buckets[le] for le in les]
    total = cum[-1]
    if total <= 0:
        return None
    rank = q * total
    for i, (le, c) in enumerate(zip(les, cum, strict=True)):
        if c >= rank:
            if math.isinf(le):
                return les[i - 1] if i > 0 else None
            lo = les[i - 1] if i > 0 else 0.0
            lo_n = cum[i - 1] if i > 0 else 0.0
            if c == lo_n:
                return le
            return lo + (le - lo) * (rank - lo_n) / (c - lo_n)
    return None


@dataclass(frozen=True)
class WindowStats:
    """One replica serving one model over a window (all None when nothing was served)."""

    model: str
    replica: str
    zone: str
    window_s: float
    end_s: float
    requests: float
    rate_rps: float
    error_ratio: float | None
    latency_ms: float | None  # mean request duration
    queue_ms: float | None  # mean queue time
    p99_ms: float | None  # from the first-response histogram
    cache_hit_ratio: float | None
    queue_len: float | None  # pending requests (Triton) or waiting ones (vLLM) at the window end
    tokens_per_s: float | None
    # the cache hit ratio's denominator: its binomial noise depends on it (detect.observe)
    cache_lookups: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # first-response bucket increases (ms)
    e2e_buckets: dict[float, float] = field(default_factory=dict)  # end-to-end bucket increases (ms)


def _inc(old: TargetSample, new: TargetSample, model: str, metric: str) -> float | None:
    # A counter absent from the older scrape was 0 then (Triton creates e.g. failure counters on
    # the first failure).
    return increase(old.values.get((model, metric, ""), 0.0), new.values.get((model, metric, "")))


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _bucket_increases(
    old: TargetSample, new: TargetSample, model: str, metric: str, to_ms: float
) -> dict[float, float]:
    out: dict[float, float] = {}
    for (m, name, le), v in new.values.items():
        if m == model and name == metric:
            d = increase(old.values.get((m, name, le), 0.0), v)
            if d is not None:
                out[float(le) * to_ms] = d
    return out


def window_stats(old: TargetSample, new: TargetSample, model: str) -> WindowStats:
    dt = max(new.ts_s - old.ts_s, 1e-9)
    model_errors = _inc(old, new, model, MODEL_ERRORS) or 0.0
    ok = max(0.0, (_inc(old, new, model, SUCCESS) or 0.0) - model_errors)
    failed = (_inc(old, new, model, FAILURE) or 0.0) + model_errors
    total = ok + failed
    hits, misses = _inc(old, new, model, CACHE_HITS), _inc(old, new, model, CACHE_MISSES)
    lookups = (hits or 0.0) + (misses or 0.0)
    cache_hit_ratio = _ratio(hits, lookups) if lookups > 0 else None
    if cache_hit_ratio is None and total > 0 and (model, CACHE_HITS, "") in old.values:
        cache_hit_ratio = 0.0  # the cache answered before and now answers nothing: it collapsed
    buckets = _bucket_increases(old, new, model, LATENCY_BUCKETS, 1.0)
    e2e_buckets = _bucket_increases(old, new, model, E2E_BUCKETS_S, 1000.0)
    first_n = _inc(old, new, model, FIRST_RESPONSE_COUNT)
    first_ms = _inc(old, new, model, FIRST_RESPONSE_SUM_MS)
    ttft_n = _inc(old, new, model, TTFT_COUNT)
    ttft_s = _inc(old, new, model, TTFT_SUM_S)
    if first_n and first_n > 0 and first_ms is not None:
        latency_ms: float | None = first_ms / first_n
    elif ttft_n and ttft_n > 0 and ttft_s is not None:
        latency_ms = ttft_s * 1000.0 / ttft_n
    else:
        latency_ms = _ratio((_inc(old, new, model, REQUEST_US) or 0.0) / 1000.0, ok) if ok > 0 else None
    p99s = [
        q for q in (histogram_quantile(buckets, 0.99), histogram_quantile(e2e_buckets, 0.99)) if q is not None
    ]
    pending = new.gauge(model, PENDING)
    waiting = new.gauge(model, WAITING)
    queue_len = None if pending is None and waiting is None else (pending or 0.0) + (waiting or 0.0)
    gen = _inc(old, new, model, GEN_TOKENS)
    return WindowStats(
        model=model,
        replica=new.target,
        zone=new.zone,
        window_s=dt,
        end_s=new.ts_s,
        requests=total,
        rate_rps=ok / dt,
        error_ratio=_ratio(failed, total),
        latency_ms=latency_ms,
        queue_ms=_ratio((_inc(old, new, model, QUEUE_US) or 0.0) / 1000.0, ok) if ok > 0 else None,
        p99_ms=max(p99s) if p99s else None,
        cache_hit_ratio=cache_hit_ratio,
        queue_len=queue_len,
        tokens_per_s=None if gen is None else gen / dt,
        cache_lookups=lookups,
        buckets=buckets,
        e2e_buckets=e2e_buckets,
    )


@dataclass(frozen=True)
class ReplicaLevel:
    """Per replica (not per model): liveness, memory and GPU."""

    replica: str
    zone: str
    end_s: float
    up: bool
    memory_bytes: float | None
    gpu_util_ratio: float | None
    gpu_memory_bytes: float | None


def replica_level(new: TargetSample) -> ReplicaLevel:
    up = new.gauge("", UP)
    return ReplicaLevel(
        replica=new.target,
        zone=new.zone,
        end_s=new.ts_s,
        up=bool(up) if up is not None else True,
        memory_bytes=new.gauge("", PROCESS_RSS),
        gpu_util_ratio=new.gauge("", GPU_UTIL),
        gpu_memory_bytes=new.gauge("", GPU_MEM),
    )


def baseline_for(history: deque[TargetSample], window_s: float) -> TargetSample | None:
    """The newest sample at least window_s older than the newest (the oldest one if none is)."""
    if len(history) < 2:
        return None
    newest = history[-1]
    for s in reversed(history):
        if newest.ts_s - s.ts_s >= window_s - 1e-6:
            return s
    return history[0]


@dataclass(frozen=True)
class ModelAggregate:
    """A model across its replicas, for the replica policy."""

    model: str
    rate_rps: float | None
    short_rate_rps: float | None
    newest_s: float | None
    queue_len: float | None
    p99_ms: float | None
    replicas: int
    mean_latency_ms: float | None = None  # request-weighted mean over the replicas in rotation


def aggregate(
    model: str,
    stable: list[WindowStats],
    short: list[WindowStats],
    exclude_latency: frozenset[str] = frozenset(),
) -> ModelAggregate:
    """Rates and queues over every replica; latency over the replicas in rotation only (one
    faulty replica being drained is the routing policy's job, not a reason to add replicas)."""
    if not stable:
        return ModelAggregate(model, None, None, None, None, None, 0)
    in_rotation = [w for w in stable if w.replica not in exclude_latency] or stable
    p99s = []
    for attr in ("buckets", "e2e_buckets"):
        merged: dict[float, float] = {}
        for w in in_rotation:
            for le, n in getattr(w, attr).items():
                merged[le] = merged.get(le, 0.0) + n
        q = histogram_quantile(merged, 0.99)
        if q is not None:
            p99s.append(q)
    p99 = max(p99s) if p99s else None
    if p99 is None:
        lat = [w.latency_ms for w in in_rotation if w.latency_ms is not None]
        p99 = max(lat) if lat else None
    queues = [w.queue_len for w in short or stable if w.queue_len is not None]
    # weighted by the ok requests the mean is over
    timed = [(w.latency_ms, w.rate_rps * w.window_s) for w in in_rotation if w.latency_ms is not None]
    served = sum(n for _, n in timed)
    return ModelAggregate(
        model=model,
        rate_rps=sum(w.rate_rps for w in stable),
        short_rate_rps=sum(w.rate_rps for w in short) if short else None,
        newest_s=max(w.end_s for w in stable),
        queue_len=sum(queues) if queues else None,
        p99_ms=p99,
        replicas=len(stable),
        mean_latency_ms=sum(lat * n for lat, n in timed) / served if served > 0 else None,
    )


class LiveWindow:
    """Thread-safe ring of recent `TargetSample`s per target (the collector adds, the loop reads)."""

    def __init__(self, keep_s: float = 180.0) -> None:
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self._by_target: dict[str, deque[TargetSample]] = {}

    def add(self, sample: TargetSample) -> None:
        with self._lock:
            h = self._by_target.setdefault(sample.target, deque())
            if h and sample.ts_s == h[-1].ts_s:  # another chunk of the same scrape (process memory)
                h[-1] = TargetSample(
                    sample.ts_s, sample.target, sample.zone, {**h[-1].values, **sample.values}
                )
                return
            if h and sample.ts_s < h[-1].ts_s:
                return  # a replayed or out-of-order scrape adds nothing new
            h.append(sample)
            while h and sample.ts_s - h[0].ts_s > self.keep_s:
                h.popleft()

    def add_chunk(self, chunk) -> None:
        """A collector `Chunk` (collectors/columns.py)."""
        t = chunk.table
        idx = np.asarray(chunk.idx)
        self.add(
            reduce_chunk(
                chunk.ts_s,
                chunk.target,
                chunk.zone,
                [t.metrics[i] for i in idx],
                [t.models[i] for i in idx],
                [t.labels[i] for i in idx],
                np.asarray(chunk.values).tolist(),
            )
        )

    def forget_missing(self, live_targets: set[str]) -> None:
        with self._lock:
            for name in [n for n in self._by_target if n not in live_targets]:
                del self._by_target[name]

    def histories(self) -> dict[str, deque[TargetSample]]:
        with self._lock:
            return {k: deque(v) for k, v in self._by_target.items()}


@dataclass(frozen=True)
class LiveView:
    """What the loop reads at one tick."""

    now_s: float
    per_replica: dict[tuple[str, str], WindowStats]  # (model, replica) over the detection window
    stable: dict[tuple[str, str], WindowStats]  # over the stable window
    short: dict[tuple[str, str], WindowStats]  # over the short (panic) window
    replicas: dict[str, ReplicaLevel]
    models: tuple[str, ...]

    def model_aggregate(self, model: str, exclude_latency: frozenset[str] = frozenset()) -> ModelAggregate:
        stable = [w for (m, _), w in self.stable.items() if m == model]
        short = [w for (m, _), w in self.short.items() if m == model]
        return aggregate(model, stable, short, exclude_latency)


def build_view(
    histories: dict[str, deque[TargetSample]],
    now_s: float,
    *,
    detect_window_s: float,
    stable_window_s: float,
    short_window_s: float,
) -> LiveView:
    per, stable, short, reps = {}, {}, {}, {}
    models: set[str] = set()
    for target, h in histories.items():
        if not h:
            continue
        newest = h[-1]
        reps[target] = replica_level(newest)
        if not reps[target].up:
            continue
        tm = newest.models()
        models |= tm
        for out, win in ((per, detect_window_s), (stable, stable_window_s), (short, short_window_s)):
            base = baseline_for(h, win)
            if base is None:
                continue
            for m in tm:
                out[(m, target)] = window_stats(base, newest, m)
    return LiveView(now_s, per, stable, short, reps, tuple(sorted(models)))
