"""The API's tracer: its own provider (the global one is left alone, so tests can run several)."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)


def make_api_tracer(otlp_endpoint: str | None = None, exporter: SpanExporter | None = None) -> Tracer:
    """Spans to `exporter` (tests: InMemorySpanExporter), else OTLP/HTTP when an endpoint is set, else nowhere."""
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        except ImportError:
            log.error("an OTLP endpoint is set but opentelemetry-exporter-otlp-proto-http is not installed")
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider.get_tracer("fleetpilot.api")
