"""One scrape of one target: metrics port + statistics API -> a Chunk of samples, always.

A target that does not answer still yields a chunk: `up`=0 and the scrape duration, so a dead
replica is visible in the store, never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np
from opentelemetry.trace import Tracer

from collectors.columns import Chunk
from collectors.exposition import ExpositionParser, ParsedScrape
from collectors.targets import Target
from collectors.telemetry import CollectorMetrics
from collectors.triton_stats import STATS_PATH, stats_headers, stats_samples

log = logging.getLogger(__name__)


@dataclass
class ScrapeOutcome:
    target: str
    up: bool
    duration_s: float
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    chunk: Chunk | None = None


class TargetState:
    """What survives between scrapes of one target: its parser (series identity) and last error."""

    def __init__(self, target: Target, series_limit: int, max_label_length_bytes: int):
        self.target = target
        self.parser = ExpositionParser(target.name, series_limit, max_label_length_bytes)
        self.last_error: str | None = None


async def _get_text(
    session: aiohttp.ClientSession, url: str, timeout_s: float, headers: dict | None = None
) -> str:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status} from {url}")
        return await resp.text()


async def _get_json(session: aiohttp.ClientSession, url: str, timeout_s: float, headers: dict) -> dict:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status} from {url}")
        return await resp.json(content_type=None)


def stats_to_indices(parser: ExpositionParser, body: dict) -> tuple[list[int], list[float]]:
    idx: list[int] = []
    vals: list[float] = []
    for model, (metric, labels, kind, value) in stats_samples(body):
        idx.append(parser.labelled(metric, {**labels, "model": model}, kind))
        vals.append(value)
    return idx, vals


def build_chunk(
    state: TargetState,
    ts_s: float,
    parsed: ParsedScrape | None,
    stats: tuple[list[int], list[float]] | None,
    up: bool,
    duration_s: float,
    stats_up: bool | None,
) -> Chunk:
    """Assemble one chunk: parsed samples, statistics samples, then the synthetic series."""
    p = state.parser
    accepted = (len(parsed.idx) if parsed else 0) + (len(stats[0]) if stats else 0)
    rejected = parsed.rejected_total if parsed else 0
    syn = [
        (p.synthetic("up"), 1.0 if up else 0.0),
        (p.synthetic("scrape_duration_seconds"), duration_s),
        (p.synthetic("scrape_samples_scraped"), float(accepted)),
        (p.synthetic("scrape_samples_rejected"), float(rejected)),
    ]
    if stats_up is not None:
        syn.append((p.synthetic("stats_up"), 1.0 if stats_up else 0.0))
    if parsed is not None:
        for reason, n in parsed.rejected.items():
            syn.append(
                (p.labelled("scrape_samples_rejected_by_reason", {"reason": reason}, "gauge"), float(n))
            )
    idx_parts = [np.fromiter((i for i, _ in syn), dtype=np.int64, count=len(syn))]
    val_parts = [np.fromiter((v for _, v in syn), dtype=np.float64, count=len(syn))]
    if stats and stats[0]:
        idx_parts.insert(0, np.array(stats[0], dtype=np.int64))
        val_parts.insert(0, np.array(stats[1], dtype=np.float64))
    # A parse done before a table compaction refers to the old table; it is only ever the current one here
    # because parse and chunk assembly run back to back on the event loop.
    if parsed is not None and len(parsed.idx):
        idx_parts.insert(0, parsed.idx)
        val_parts.insert(0, parsed.values)
    t = state.target
    return Chunk(
        ts_s, t.name, t.zone, t.region, p.table, np.concatenate(idx_parts), np.concatenate(val_parts)
    )


async def scrape(
    session: aiohttp.ClientSession,
    state: TargetState,
    *,
    timeout_s: float,
    access_token: str | None,
    tracer: Tracer,
    metrics: CollectorMetrics,
    now_s: float | None = None,
) -> ScrapeOutcome:
    t = state.target
    ts_s = time.time() if now_s is None else now_s
    t0 = time.perf_counter()
    with tracer.start_as_current_span("collector.scrape") as span:
        span.set_attribute("target", t.name)
        errors: list[str] = []
        metrics_task = _get_text(session, t.metrics_url, timeout_s) if t.metrics_url else None
        stats_task = (
            _get_json(session, t.stats_url.rstrip("/") + STATS_PATH, timeout_s, stats_headers(access_token))
            if t.stats_url
            else None
        )
        results = await asyncio.gather(
            *(x for x in (metrics_task, stats_task) if x is not None), return_exceptions=True
        )
        text = results.pop(0) if metrics_task is not None else None
        body = results.pop(0) if stats_task is not None else None
        parsed = None
        if isinstance(text, BaseException):
            errors.append(f"metrics: {text!r}")
        elif text is not None:
            parsed = state.parser.parse(text)
        stats = None
        stats_up = None
        if isinstance(body, BaseException):
            errors.append(f"stats: {body!r}")
            stats_up = False
        elif body is not None:
            try:
                stats = stats_to_indices(state.parser, body)
                stats_up = True
            except (TypeError, ValueError, AttributeError) as exc:  # unexpected shape: say so, keep the rest
                errors.append(f"stats: unexpected body ({exc})")
                stats_up = False
        up = parsed is not None if t.metrics_url else bool(stats_up)
        duration_s = time.perf_counter() - t0
        chunk = build_chunk(state, ts_s, parsed, stats, up, duration_s, stats_up)
        span.set_attribute("up", up)
        span.set_attribute("samples", len(chunk))
        error = "; ".join(errors) or None
        if error:
            span.set_attribute("error", error)
        metrics.scrape_duration.labels(t.name).observe(duration_s)
        if not up:
            metrics.scrape_failures.labels(t.name).inc()
        accepted = len(chunk)
        metrics.samples_scraped.labels(t.name).inc(accepted)
        rejected = dict(parsed.rejected) if parsed else {}
        for reason, n in rejected.items():
            metrics.samples_rejected.labels(t.name, reason).inc(n)
        if parsed is not None and parsed.rejected and state.last_error != str(sorted(rejected.items())):
            log.warning("target %s: rejected samples %s, e.g. %s", t.name, rejected, parsed.examples)
        if error and error != state.last_error:
            log.warning("target %s: %s", t.name, error)
        state.last_error = error or (str(sorted(rejected.items())) if rejected else None)
        return ScrapeOutcome(t.name, up, duration_s, accepted, rejected, error, chunk)
