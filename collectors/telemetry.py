"""The collector's own telemetry: Prometheus metrics on a private registry and OpenTelemetry spans.

Spans go to OTLP when an endpoint is configured (opentelemetry-exporter-otlp-proto-http),
else nowhere; tests pass an InMemorySpanExporter.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger(__name__)


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.samples_scraped = Counter(
            "fleetpilot_collector_samples_scraped_total",
            "Samples accepted from targets",
            ["target"],
            registry=r,
        )
        self.samples_rejected = Counter(
            "fleetpilot_collector_samples_rejected_total",
            "Samples rejected at parse time",
            ["target", "reason"],
            registry=r,
        )
        self.samples_written = Counter(
            "fleetpilot_collector_samples_written_total", "Samples committed to the store", registry=r
        )
        self.samples_spooled = Counter(
            "fleetpilot_collector_samples_spooled_total", "Samples written to the disk spool", registry=r
        )
        self.samples_dropped = Counter(
            "fleetpilot_collector_samples_dropped_total",
            "Samples lost (spool full or dead-lettered)",
            ["reason"],
            registry=r,
        )
        self.spool_full = Counter(
            "fleetpilot_collector_spool_full_total", "Batches dropped because the spool was full", registry=r
        )
        self.spool_bytes = Gauge(
            "fleetpilot_collector_spool_bytes", "Bytes held in the disk spool", registry=r
        )
        self.spool_batches = Gauge(
            "fleetpilot_collector_spool_batches", "Batches waiting in the disk spool", registry=r
        )
        self.scrape_duration = Histogram(
            "fleetpilot_collector_scrape_duration_seconds",
            "Scrape duration per target",
            ["target"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.scrape_failures = Counter(
            "fleetpilot_collector_scrape_failures_total",
            "Scrapes that got no data (up=0)",
            ["target"],
            registry=r,
        )
        self.insert_duration = Histogram(
            "fleetpilot_collector_insert_duration_seconds",
            "Store insert duration per batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.targets = Gauge("fleetpilot_collector_targets", "Targets owned by this shard", registry=r)


def make_tracer(
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    name: str = "fleetpilot.collectors",
) -> Tracer:
    """A tracer of its own provider (the global one is left alone, so tests can run several):
    spans to `exporter` (tests), else OTLP/HTTP when an endpoint is set, else nowhere."""
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        except ImportError:
            log.error(
                "an OTLP endpoint (collect.otlp_endpoint) is set but opentelemetry-exporter-otlp-proto-http is not installed; spans are not exported"
            )
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider.get_tracer(name)
