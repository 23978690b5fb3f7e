"""GET /v1/series/{name}: the derived series of controlplane/store/derived.py by name.

`by` is a comma list from model, target, zone; `replica` filters targets; `model` filters models.
GPU and energy series have no model label: asking them per model is a 400 naming the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.store import derived as d

BY_ALLOWED = ("model", "target", "zone")
MAX_POINTS = 20_000  # buckets per series (since_s / step_s)


@dataclass(frozen=True)
class SeriesDef:
    build: Callable[..., str]
    per_model: bool  # has a model label (may filter and group by model)
    default_by: tuple[str, ...]
    doc: str


SERIES: dict[str, SeriesDef] = {
    "request_rate": SeriesDef(
        d.request_rate, True, ("model",), "requests_per_s, failures_per_s (successful / failed requests)"
    ),
    "request_times": SeriesDef(
        d.request_times, True, ("model",), "avg request/queue/compute times per request (ms)"
    ),
    "batch_size": SeriesDef(d.batch_size, True, ("model",), "avg_batch_size (inferences per execution)"),
    "cache_hit_ratio": SeriesDef(
        d.cache_hit_ratio, True, ("model",), "cache_hit_ratio (0-1), cache_lookups_per_s"
    ),
    "token_rate": SeriesDef(d.token_rate, True, ("model",), "generation/prompt tokens per second"),
    "latency_p99": SeriesDef(
        d.latency_percentile, True, ("model",), "p99_latency_ms from the first-response histogram"
    ),
    "ttft_p99": SeriesDef(d.ttft_percentile, True, ("model",), "ttft_p99_s: time to first token"),
    "itl_p99": SeriesDef(d.inter_token_percentile, True, ("model",), "itl_p99_s: inter-token latency"),
    "gpu": SeriesDef(d.gpu, False, (), "GPU utilisation (0-1), memory (bytes), power (W)"),
    "energy": SeriesDef(
        d.energy_per_1k_inferences, False, (), "energy_j_per_1k_inferences, power_w (GPU energy counter)"
    ),
}


class SeriesParamError(ValueError):
    """A parameter does not fit the series (400)."""


def parse_by(by: str | None, series: SeriesDef, name: str) -> tuple[str, ...]:
    if by is None:
        return series.default_by
    cols = tuple(c.strip() for c in by.split(",") if c.strip())
    bad = [c for c in cols if c not in BY_ALLOWED]
    if bad:
        raise SeriesParamError(f"by: cannot group by {bad}; allowed: {', '.join(BY_ALLOWED)}")
    if len(set(cols)) != len(cols):
        raise SeriesParamError(f"by: {by!r} names a column twice")
    if "model" in cols and not series.per_model:
        raise SeriesParamError(
            f"by: {name} has no model label (GPU telemetry is per target); use target or zone"
        )
    return cols


def series_sql(
    name: str,
    *,
    now_s: float,
    since_s: float,
    step_s: int,
    by: str | None,
    model: str | None,
    replica: str | None,
) -> tuple[str, tuple[str, ...]]:
    """(SQL, by columns) for a named series; SeriesParamError for parameters that do not fit."""
    series = SERIES[name]
    if since_s / step_s > MAX_POINTS:
        raise SeriesParamError(
            f"since_s / step_s = {since_s / step_s:.0f} buckets; at most {MAX_POINTS} (raise step_s)"
        )
    cols = parse_by(by, series, name)
    kw: dict = {"by": cols}
    if replica:
        kw["targets"] = [r.strip() for r in replica.split(",") if r.strip()]
    if model:
        if not series.per_model:
            raise SeriesParamError(f"model: {name} has no model label; filter by replica instead")
        kw["models"] = [m.strip() for m in model.split(",") if m.strip()]
    start_s = now_s - since_s
    try:
        return series.build(start_s, now_s, step_s, **kw), cols
    except ValueError as exc:
        raise SeriesParamError(str(exc)) from None
