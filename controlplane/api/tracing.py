"""The API's tracer: its own provider (the global one is left alone, so tests can run several)."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer

from collectors.telemetry import make_tracer


def make_api_tracer(otlp_endpoint: str | None = None, exporter: SpanExporter | None = None) -> Tracer:
    """Spans to `exporter` (tests: InMemorySpanExporter), else OTLP/HTTP when an endpoint is set, else nowhere."""
    return make_tracer(otlp_endpoint, exporter, name="fleetpilot.api")
