"""The collector loop: every interval, scrape this shard's targets concurrently, hand the chunks
to the sink, flush what is due. One `except` per tick keeps it alive; close() flushes once more."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from opentelemetry.trace import Tracer

from collectors.columns import Chunk
from collectors.gpu import NvmlSampler
from collectors.procmem import METRIC as PROCMEM_METRIC
from collectors.procmem import ProcMemSampler
from collectors.scrape import ScrapeOutcome, TargetState, scrape
from collectors.sink import FlushResult, SampleStore, Sink
from collectors.targets import Target, discover
from collectors.telemetry import CollectorMetrics, make_tracer
from controlplane.config import CollectConfig

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    ts_s: float
    outcomes: list[ScrapeOutcome] = field(default_factory=list)
    flush: FlushResult | None = None

    @property
    def samples(self) -> int:
        return sum(o.accepted for o in self.outcomes)

    def to_json(self) -> dict:
        return {
            "ts_s": self.ts_s,
            "targets": [
                {
                    "target": o.target,
                    "up": o.up,
                    "duration_s": round(o.duration_s, 4),
                    "samples": o.accepted,
                    "rejected": o.rejected,
                    "error": o.error,
                }
                for o in self.outcomes
            ],
            "samples": self.samples,
            "flush": vars(self.flush) if self.flush else None,
        }


class Collector:
    def __init__(
        self,
        cfg: CollectConfig,
        store: SampleStore,
        spool_dir: Path,
        state_path: Path | None = None,
        *,
        metrics: CollectorMetrics | None = None,
        tracer: Tracer | None = None,
        nvml: NvmlSampler | None = None,
        targets: list[Target] | None = None,
        procmem: ProcMemSampler | None = None,
        on_chunk: Callable[[Chunk], None] | None = None,
    ):
        self.cfg = cfg
        self.state_path = state_path
        self.metrics = metrics or CollectorMetrics()
        self.tracer = tracer or make_tracer(cfg.otlp_endpoint)
        self.sink = Sink(
            store,
            spool_dir,
            batch_max_rows=cfg.batch_max_rows,
            batch_max_age_s=cfg.batch_max_age_s,
            spool_max_bytes=cfg.spool_max_bytes,
            metrics=self.metrics,
            tracer=self.tracer,
        )
        self.nvml = nvml
        self.procmem = procmem  # resident memory per local replica (collectors/procmem.py)
        self.on_chunk = on_chunk  # an in-process reader of every scrape (the control loop's live view)
        self._procmem_states: dict[str, TargetState] = {}
        self._fixed_targets = targets  # tests and `--target` use a fixed list instead of discovery
        self._states: dict[str, TargetState] = {}
        self._nvml_state: TargetState | None = None
        self._session: aiohttp.ClientSession | None = None
        self._flush_lock = asyncio.Lock()
        self._closed = False

    def targets(self) -> list[Target]:
        if self._fixed_targets is not None:
            return list(self._fixed_targets)
        return discover(self.cfg, self.state_path)

    def _state_for(self, t: Target) -> TargetState:
        st = self._states.get(t.name)
        if st is None or st.target != t:  # new target, or it moved (new ports after a replace)
            st = TargetState(t, self.cfg.series_limit_per_target, self.cfg.max_label_length_bytes)
            self._states[t.name] = st
        return st

    async def scrape_once(self, now_s: float | None = None) -> CycleReport:
        """Scrape every target once and hand the samples to the sink (flushing when due)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        ts_s = time.time() if now_s is None else now_s
        report = CycleReport(ts_s)
        try:
            targets = self.targets()
        except Exception as exc:  # noqa: BLE001 - keep scraping what we had
            log.error("target discovery failed: %s; keeping the previous targets", exc)
            targets = [s.target for s in self._states.values()]
        self.metrics.targets.set(len(targets))
        live = {t.name for t in targets}
        for name in [n for n in self._states if n not in live]:
            del self._states[name]
        token = self.cfg.access_token.get_secret_value() if self.cfg.access_token else None
        outcomes = await asyncio.gather(
            *(
                scrape(
                    self._session,
                    self._state_for(t),
                    timeout_s=self.cfg.scrape_timeout_s,
                    access_token=token,
                    tracer=self.tracer,
                    metrics=self.metrics,
                    now_s=ts_s,
                )
                for t in targets
            )
        )
        for o in outcomes:
            report.outcomes.append(o)
            if o.chunk is not None:
                self._add(o.chunk)
        if self.nvml is not None:
            self._add(self._nvml_chunk(ts_s))
        if self.procmem is not None:
            for chunk in self._procmem_chunks(ts_s, live):
                self._add(chunk)
        if self.sink.due() or self.sink.full():
            report.flush = await self.flush()
        return report

    def _add(self, chunk: Chunk) -> None:
        # Only queue here: the store is called from flush() in a worker thread, never on the loop.
        self.sink.queue(chunk)
        if self.on_chunk is not None:
            try:
                self.on_chunk(chunk)
            except Exception:  # noqa: BLE001 - a reader's bug must not stop collection
                log.exception("chunk listener failed")

    def _procmem_chunks(self, ts_s: float, live: set[str]) -> list[Chunk]:
        out = []
        for name, zone, region, rss in self.procmem.sample():
            if name not in live:
                continue  # not this shard's replica
            st = self._procmem_states.get(name)
            if st is None:
                st = TargetState(
                    Target(name, None, None, zone, region, kind="procmem"),
                    self.cfg.series_limit_per_target,
                    self.cfg.max_label_length_bytes,
                )
                self._procmem_states[name] = st
            i = st.parser.labelled(PROCMEM_METRIC, {}, "gauge")
            out.append(
                Chunk(ts_s, name, zone, region, st.parser.table, np.array([i], np.int64), np.array([rss]))
            )
        return out

    def _nvml_chunk(self, ts_s: float) -> Chunk:
        if self._nvml_state is None:
            self._nvml_state = TargetState(
                Target(self.nvml.target_name, None, None, kind="nvml"),
                self.cfg.series_limit_per_target,
                self.cfg.max_label_length_bytes,
            )
        p = self._nvml_state.parser
        samples = self.nvml.sample()
        idx = np.array(
            [p.labelled(m, lab, k) for m, lab, k, _ in samples] + [p.synthetic("up")], dtype=np.int64
        )
        vals = np.array([v for *_, v in samples] + [1.0 if samples else 0.0], dtype=np.float64)
        return Chunk(ts_s, self.nvml.target_name, "", "", p.table, idx, vals)

    async def flush(self) -> FlushResult:
        """Insert pending samples in a worker thread (the store call blocks), one flush at a time."""
        async with self._flush_lock:
            return await asyncio.to_thread(self.sink.flush)

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape every scrape_interval_s until `stop` is set, then flush and close."""
        interval = self.cfg.scrape_interval_s
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await self.scrape_once()
                except Exception:  # noqa: BLE001 - one bad tick must not end collection
                    log.exception("collector tick failed")
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (slow targets): skip missed ticks instead of bursting
                    next_at = time.monotonic()
                    delay = 0
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None
