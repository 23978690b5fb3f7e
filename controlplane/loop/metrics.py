"""The control loop's own Prometheus metrics (served on the API's /metrics with the API's and
the collector's, from one registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_TICK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class LoopMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.tick_seconds = Histogram(
            "fleetpilot_loop_tick_seconds", "Duration of one control tick (detect, decide, act, record)",
            buckets=_TICK_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.tick_errors = Counter("fleetpilot_loop_tick_errors_total", "Ticks that raised", registry=r)
        self.decisions = Counter(
            "fleetpilot_loop_decisions_total", "Decisions made, by policy, action and mode",
            ["policy", "action", "mode"], registry=r,
        )  # fmt: skip
        self.actions = Counter(
            "fleetpilot_loop_actions_total", "Actions taken, by actuator, action and outcome",
            ["actuator", "action", "outcome"], registry=r,
        )  # fmt: skip
        self.anomaly_events = Counter(
            "fleetpilot_loop_anomaly_events_total",
            "Anomaly events (opened, updated, closed)",
            ["kind"],
            registry=r,
        )
        self.open_incidents = Gauge("fleetpilot_loop_open_incidents", "Incidents open now", registry=r)
        self.fleet_replicas = Gauge(
            "fleetpilot_loop_fleet_replicas", "Replicas in the fleet state", registry=r
        )
        self.recorder_pending_rows = Gauge(
            "fleetpilot_loop_recorder_pending_rows", "Rows waiting for the store (outage buffer)", registry=r
        )
        self.recorder_dropped_rows = Gauge(
            "fleetpilot_loop_recorder_dropped_rows",
            "Rows dropped because the outage buffer was full",
            registry=r,
        )
