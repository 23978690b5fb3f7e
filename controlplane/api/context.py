"""What the API is built from: settings, the store, and (inside `fleetpilot up`) the live loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opentelemetry.trace import Tracer

from controlplane.config import Settings
from controlplane.store import Store

if TYPE_CHECKING:
    from controlplane.api.overrides import Override


@runtime_checkable
class ControllerView(Protocol):
    """The in-process control loop as the API sees it (shapes: see the API contract)."""

    def status(self) -> dict: ...

    def models(self) -> list[dict]: ...

    def replicas(self) -> list[dict]: ...

    def on_override(self, ov: Override) -> None: ...


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    controller: ControllerView | None = None
    # The embedded store is shared by several threads of one process: hold this around every call.
    store_lock: threading.Lock = field(default_factory=threading.Lock)
    # Spans around every store query; None: a tracer of its own that exports nowhere
    # (or to settings.collect.otlp_endpoint when set).
    tracer: Tracer | None = None
    # Seconds since the epoch; replaced in tests that pin "now".
    clock: Callable[[], float] | None = None

    def now_s(self) -> float:
        return self.clock() if self.clock is not None else time.time()


@contextmanager
def store_span(ctx: ApiContext, name: str, **attrs: Any):
    """Hold the store lock inside a span named for the query (the span times the wait too)."""
    tracer = ctx.tracer
    assert tracer is not None, "create_app sets ctx.tracer"
    with tracer.start_as_current_span(f"store.{name}") as span:
        for k, v in attrs.items():
            span.set_attribute(k, v)
        with ctx.store_lock:
            yield span
