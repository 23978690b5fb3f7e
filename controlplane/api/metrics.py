"""The API's own Prometheus metrics, on a registry per app (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "fleetpilot_api_requests_total",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "fleetpilot_api_request_duration_seconds",
            "HTTP request duration by route template",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.query_refusals = Counter(
            "fleetpilot_api_query_refusals_total",
            "POST /v1/query statements refused (guard, engine read-only, timeout, SQL error, limits)",
            ["reason"],
            registry=r,
        )
        self.query_truncated = Counter(
            "fleetpilot_api_query_truncated_total", "POST /v1/query results cut at the row limit", registry=r
        )
        self.store_errors = Counter(
            "fleetpilot_api_store_errors_total",
            "Store calls that failed, by kind (unavailable, rejected)",
            ["kind"],
            registry=r,
        )
        self.overrides = Counter(
            "fleetpilot_api_overrides_total", "Overrides stored, by action", ["action"], registry=r
        )
