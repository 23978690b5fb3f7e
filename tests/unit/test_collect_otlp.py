"""Spans reach a real OTLP/HTTP endpoint when collect.otlp_endpoint is set."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from collectors.telemetry import make_tracer


def test_spans_are_exported_to_the_configured_otlp_endpoint():
    received: list[tuple[str, str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], len(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracer = make_tracer(f"http://127.0.0.1:{server.server_port}/v1/traces")
        with tracer.start_as_current_span("scrape", attributes={"target": "replica-0"}):
            pass
        assert tracer.span_processor.force_flush(5000)  # the batch processor sends now
    finally:
        server.shutdown()
    assert received and received[0][0] == "/v1/traces"
    assert received[0][1] == "application/x-protobuf" and received[0][2] > 0
