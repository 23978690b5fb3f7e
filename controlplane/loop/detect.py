"""Anomaly detection inside the loop: the live view's per-replica signals -> detect_tick -> events.

Which series are watched, which side of each is bad, and the smallest change worth a look:
  latency_ms, queue_ms, error_ratio    per (model, replica), high is bad
  cache_hit_ratio                      per (model, replica), low is bad
  memory_bytes, memory_growth_bytes_per_s, gpu_util_ratio   per replica (model "")
The floors keep sub-noise wiggles (1 ms vs 2 ms, a few MiB of allocator churn) from counting as
surprises, and the ratios' per-tick sampling noise keeps a 9-of-30 draw from looking like a
fault to the peer comparison; above them, the detectors in controlplane/anomaly judge against
each series' own past and against the peer replicas. The layout is rebuilt when replicas come
or go; the incident state (open incidents, cool-downs) is carried across rebuilds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np

from controlplane.anomaly import incidents
from controlplane.anomaly.tick import EngineParams, EngineState, Layout, SeriesKey, detect_tick, init_state
from controlplane.loop.live import LiveView, TargetSample, WindowStats, window_stats

MIB = float(1 << 20)


@dataclass(frozen=True)
class Watch:
    direction: int  # +1 high is bad, -1 low is bad, 0 both
    floor: float  # smallest meaningful spread, in the metric's unit


MODEL_METRICS: dict[str, Watch] = {
    "latency_ms": Watch(+1, 3.0),
    "queue_ms": Watch(+1, 3.0),
    # Ratios over one scrape window of a few dozen requests carry binomial noise (+-0.09 at 30
    # requests and p=0.5), so their floors sit near it; the peer comparison also widens by each
    # tick's own noise (Observation.trials), which a fixed floor cannot follow as traffic changes.
    "error_ratio": Watch(+1, 0.05),
    "cache_hit_ratio": Watch(-1, 0.1),
}
LATENCY_METRICS = ("latency_ms", "queue_ms")
REPLICA_METRICS: dict[str, Watch] = {
    "memory_bytes": Watch(+1, 128 * MIB),
    "memory_growth_bytes_per_s": Watch(+1, 2 * MIB),
    "gpu_util_ratio": Watch(0, 0.1),
}


def memory_growth_bytes_per_s(history: list[TargetSample], window_s: float) -> float | None:
    """Resident memory growth over the window (least-squares slope, >= 0: a leak is a climb; a
    replica that frees memory must not make its peers look like they grow)."""
    from controlplane.loop.live import PROCESS_RSS

    if not history:
        return None
    end = history[-1].ts_s
    pts = [(s.ts_s, s.gauge("", PROCESS_RSS)) for s in history if end - s.ts_s <= window_s + 1e-6]
    pts = [(t, v) for t, v in pts if v is not None]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts]) - end
    v = np.array([p[1] for p in pts])
    if np.ptp(t) <= 0:
        return None
    return max(0.0, float(np.polyfit(t, v, 1)[0]))


# A ratio over a few requests is mostly noise (0 cache hits of 10 against a peer's 5 of 10 is a
# 2.5-sigma draw of two equal caches): its window reaches back, a scrape at a time, until it holds
# this many requests (at most RATIO_MAX_SCRAPES scrapes), so a low-traffic replica's collapse is
# judged over enough requests a few scrapes later instead of never.
RATIO_MIN_TRIALS = 30.0
RATIO_MAX_SCRAPES = 8


@dataclass(frozen=True)
class Observation:
    values: dict[SeriesKey, float]  # this tick's value per watched series (NaN: no data)
    # the count behind each ratio series (requests for the error ratio, lookups for the cache hit
    # ratio): the peer comparison weighs a ratio's difference by its binomial noise
    trials: dict[SeriesKey, float]


def ratio_window(w: WindowStats, history: list[TargetSample]) -> WindowStats:
    """`w` (the detection window), or the shortest window ending with it that holds
    RATIO_MIN_TRIALS requests (the longest allowed, if none does)."""
    if w.requests >= RATIO_MIN_TRIALS or not history or history[-1].ts_s != w.end_s:
        return w
    start_s = w.end_s - w.window_s
    out = w
    for old in islice(reversed(history), 1, RATIO_MAX_SCRAPES + 1):
        if old.ts_s > start_s + 1e-6:
            continue  # inside the detection window already
        out = window_stats(old, history[-1], w.model)
        if out.requests >= RATIO_MIN_TRIALS:
            break
    return out


def observe(view: LiveView, histories: dict[str, list[TargetSample]], growth_window_s: float) -> Observation:
    """This tick's value per watched series, and the counts behind its ratios."""
    out: dict[SeriesKey, float] = {}
    trials: dict[SeriesKey, float] = {}
    for (model, replica), w in view.per_replica.items():
        if not model:
            continue
        r = ratio_window(w, histories.get(replica, []))
        vals = {
            "latency_ms": w.latency_ms,
            "queue_ms": w.queue_ms,
            "error_ratio": r.error_ratio,
            "cache_hit_ratio": r.cache_hit_ratio,
        }
        for metric, v in vals.items():
            out[SeriesKey(model, replica, metric, w.zone)] = math.nan if v is None else float(v)
        if r.error_ratio is not None:
            trials[SeriesKey(model, replica, "error_ratio", w.zone)] = r.requests
        if r.cache_hit_ratio is not None:
            # a collapsed cache looks nothing up: its 0 was measured over the requests served
            trials[SeriesKey(model, replica, "cache_hit_ratio", w.zone)] = r.cache_lookups or r.requests
    for replica, lvl in view.replicas.items():
        if not lvl.up:
            continue
        growth = memory_growth_bytes_per_s(histories.get(replica, []), growth_window_s)
        vals = {
            "memory_bytes": lvl.memory_bytes,
            "memory_growth_bytes_per_s": growth,
            "gpu_util_ratio": lvl.gpu_util_ratio,
        }
        for metric, v in vals.items():
            if v is not None:
                out[SeriesKey("", replica, metric, lvl.zone)] = float(v)
    return Observation(out, trials)


def watch_of(key: SeriesKey) -> Watch:
    return MODEL_METRICS.get(key.metric) or REPLICA_METRICS[key.metric]


@dataclass
class Detector:
    """Stateful shell around the pure engine; one per loop."""

    params: EngineParams = field(default_factory=EngineParams)
    # Latency and queue floors grow with the model's SLO: 20 ms more matters at an SLO of 50 ms,
    # not at 2 s (a busy replica under a surge is not a faulty one).
    slo_ms: Callable[[str], float] | None = None
    latency_floor_slo_ratio: float = 0.02
    layout: Layout | None = None
    state: EngineState | None = None
    _keys: tuple[SeriesKey, ...] = ()

    def tick(
        self, now_s: float, observed: dict[SeriesKey, float], trials: dict[SeriesKey, float] | None = None
    ) -> list[incidents.AnomalyEvent]:
        """`trials`: the count behind each ratio series this tick (Observation.trials), where known."""
        keys = tuple(sorted(observed, key=lambda k: (k.model, k.replica, k.metric)))
        if not keys:
            return []
        if keys != self._keys:
            self._rebuild(keys)
        values = np.array([observed[k] for k in keys])
        n = None if not trials else np.array([trials.get(k, math.nan) for k in keys])
        self.state, _findings, events = detect_tick(
            self.state, self.layout, now_s, values, self.params, trials=n
        )
        return events

    def _rebuild(self, keys: tuple[SeriesKey, ...]) -> None:
        old = self.state
        watches = [watch_of(k) for k in keys]
        self.layout = Layout.build(
            list(keys),
            direction=[w.direction for w in watches],
            floor=[self._floor(k, w) for k, w in zip(keys, watches, strict=True)],
        )
        self.state = init_state(self.layout, self.params)
        if old is not None:
            self.state = replace(self.state, incidents=old.incidents)
        self._keys = keys

    def _floor(self, key: SeriesKey, w: Watch) -> float:
        if key.metric in LATENCY_METRICS and self.slo_ms is not None and key.model:
            return max(w.floor, self.latency_floor_slo_ratio * self.slo_ms(key.model))
        return w.floor

    def open_incidents(self) -> list[incidents.Incident]:
        return [] if self.state is None else list(self.state.incidents.open.values())

    def open_by_replica(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for inc in self.open_incidents():
            out[inc.replica] = out.get(inc.replica, 0) + 1
        return out
