"""Prometheus metrics of the router, on its own CollectorRegistry (served at GET /metrics).

Per-replica gauges (in-flight, healthy, weight, ejected) are read from the registry at
scrape time by a custom collector, so the hot path pays nothing for them. Labelled children
of the hot-path metrics are cached so a request costs a dict lookup, not a labels() call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from serving.router.registry import Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _ReplicaCollector(Collector):
    def __init__(self, registry: Registry, router_inflight: Callable[[], int]) -> None:
        self._registry = registry
        self._router_inflight = router_inflight

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._registry.snapshot()
        inflight = GaugeMetricFamily(
            "fleetpilot_router_replica_inflight_requests",
            "Requests the router has outstanding on a replica.",
            labels=["replica"],
        )
        healthy = GaugeMetricFamily(
            "fleetpilot_router_replica_healthy",
            "1 when the replica's last health check passed.",
            labels=["replica"],
        )
        weight = GaugeMetricFamily(
            "fleetpilot_router_replica_weight", "Balancing weight (0 = drained).", labels=["replica"]
        )
        ejected = GaugeMetricFamily(
            "fleetpilot_router_replica_ejected",
            "1 while the replica is ejected after a connection failure.",
            labels=["replica"],
        )
        for r in snap:
            inflight.add_metric([r["name"]], r["inflight"])
            healthy.add_metric([r["name"]], 1.0 if r["healthy"] else 0.0)
            weight.add_metric([r["name"]], r["weight"])
            ejected.add_metric([r["name"]], 1.0 if r["ejected"] else 0.0)
        total = GaugeMetricFamily(
            "fleetpilot_router_inflight_requests", "Requests in flight through the router."
        )
        total.add_metric([], self._router_inflight())
        yield from (inflight, healthy, weight, ejected, total)


class RouterMetrics:
    def __init__(self, registry: Registry, router_inflight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "fleetpilot_router_request_duration_seconds",
            "Time from request received to response finished, per route, model and priority class.",
            ["route", "model", "priority"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.requests = Counter(
            "fleetpilot_router_requests_total",
            "Requests answered, per route, model, priority class and HTTP status code.",
            ["route", "model", "priority", "code"],
            registry=self.registry,
        )
        self.shed = Counter(
            "fleetpilot_router_shed_total",
            "Requests shed by admission control (HTTP 429).",
            ["priority"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "fleetpilot_router_upstream_errors_total",
            "Failed upstream requests per replica and reason (connect, disconnected, timeout, status_5xx, stream_broken).",
            ["replica", "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "fleetpilot_router_retries_total",
            "Requests retried on another replica.",
            ["route"],
            registry=self.registry,
        )
        self.zone_spills = Counter(
            "fleetpilot_router_zone_spills_total",
            "Replica picks that left the client's zone, per zone left (other: a zone no replica is in) "
            "and reason (saturated: mean in-flight per replica at the spill threshold; no_replica: "
            "no eligible replica in the zone).",
            ["from_zone", "reason"],
            registry=self.registry,
        )
        self.registry.register(_ReplicaCollector(registry, router_inflight))
        self._latency_children: dict[tuple[str, str, str], object] = {}
        self._request_children: dict[tuple[str, str, str, int], object] = {}

    def observe(self, route: str, model: str, priority: str, code: int, seconds: float) -> None:
        key = (route, model, priority)
        h = self._latency_children.get(key)
        if h is None:
            h = self._latency_children[key] = self.latency.labels(route, model, priority)
        h.observe(seconds)  # type: ignore[attr-defined]
        rkey = (route, model, priority, code)
        c = self._request_children.get(rkey)
        if c is None:
            c = self._request_children[rkey] = self.requests.labels(route, model, priority, str(code))
        c.inc()  # type: ignore[attr-defined]

    def render(self) -> bytes:
        return generate_latest(self.registry)
