"""Synthetic replicas for loop tests: cumulative Triton counters advanced tick by tick."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.loop import live
from controlplane.loop.fleet_plan import FleetReplica
from controlplane.loop.live import TargetSample

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, float("inf"))


@dataclass
class SimReplica:
    name: str
    zone: str = "zone-a"
    started_at_s: float = 0.0
    memory_bytes: float = 1.5e9
    counters: dict = field(default_factory=dict)

    def advance(
        self,
        model: str,
        dt_s: float,
        rate_rps: float,
        latency_ms: float,
        error_ratio: float = 0.0,
        cache_hit_ratio: float | None = None,
        queue: float = 0.0,
    ) -> None:
        n = rate_rps * dt_s
        ok, failed = n * (1 - error_ratio), n * error_ratio
        c = self.counters

        def add(metric, v, le=""):
            c[(model, metric, le)] = c.get((model, metric, le), 0.0) + v

        add(live.SUCCESS, ok)
        add(live.FAILURE, failed)
        add(live.REQUEST_US, ok * latency_ms * 1000.0)
        add(live.QUEUE_US, ok * 0.2 * latency_ms * 1000.0)
        for le in BUCKETS_MS:
            key = "+Inf" if le == float("inf") else str(float(le))
            add(live.LATENCY_BUCKETS, ok if latency_ms <= le else 0.0, key)
        if cache_hit_ratio is not None:
            add(live.CACHE_HITS, n * cache_hit_ratio)
            add(live.CACHE_MISSES, n * (1 - cache_hit_ratio))
        c[(model, live.PENDING, "")] = queue

    def sample(self, ts_s: float, up: bool = True) -> TargetSample:
        values = dict(self.counters) if up else {}
        values[("", live.UP, "")] = 1.0 if up else 0.0
        if up:
            values[("", live.PROCESS_RSS, "")] = self.memory_bytes
        return TargetSample(ts_s, self.name, self.zone, values)

    def fleet(self) -> FleetReplica:
        return FleetReplica(self.name, self.zone, self.started_at_s)


class ListStore:
    """A store stand-in that keeps inserted rows (or fails while `down`)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}
        self.down = False

    def insert_rows(self, table: str, rows: list[dict]) -> int:
        if self.down:
            raise ConnectionError("store unreachable")
        self.rows.setdefault(table, []).extend(rows)
        return len(rows)
