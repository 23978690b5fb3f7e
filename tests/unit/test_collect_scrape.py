"""Scrape + scheduler against a small aiohttp server: up/down, stats with token, spans, self-metrics."""

import asyncio
import json
from pathlib import Path

from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from collectors.scheduler import Collector
from collectors.targets import Target
from collectors.telemetry import CollectorMetrics, make_tracer
from collectors.triton_stats import stats_samples
from controlplane.config import CollectConfig
from tests.unit.collect_fakes import FakeStore

FIXTURES = Path(__file__).parent / "fixtures"
PORT = 18531


class FakeTriton:
    def __init__(self):
        self.metrics_text = (FIXTURES / "triton_cpu_metrics.txt").read_text()
        self.stats = json.loads((FIXTURES / "triton_stats_2_51.json").read_text())
        self.token_seen: list[str | None] = []
        self.runner = None

    async def _metrics(self, request):
        return web.Response(text=self.metrics_text)

    async def start(self):
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)

        async def stats(request):
            self.token_seen.append(request.headers.get("triton-access-token"))
            return web.json_response(self.stats)

        app.router.add_get("/v2/models/stats", stats)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", PORT).start()

    async def stop(self):
        await self.runner.cleanup()


def rows_of(store, target, metric):
    return [r for r in store.rows if r[0] == target and r[1] == metric]


def test_scrape_cycle_up_down_stats_spans_metrics(tmp_path):
    store = FakeStore()
    exporter = InMemorySpanExporter()
    metrics = CollectorMetrics()
    cfg = CollectConfig(batch_max_age_s=0, access_token="tok", scrape_timeout_s=1)
    targets = [
        Target(
            "replica-0", f"http://127.0.0.1:{PORT}/metrics", f"http://127.0.0.1:{PORT}", "zone-a", "local"
        ),
        Target(
            "replica-dead",
            f"http://127.0.0.1:{PORT + 1}/metrics",
            f"http://127.0.0.1:{PORT + 1}",
            "zone-b",
            "local",
        ),
    ]
    fake = FakeTriton()

    async def main():
        await fake.start()
        c = Collector(
            cfg,
            store,
            tmp_path / "spool",
            metrics=metrics,
            tracer=make_tracer(exporter=exporter),
            targets=targets,
        )
        try:
            r1 = await c.scrape_once(now_s=1000.0)
            fake.metrics_text = fake.metrics_text.replace(
                'nv_inference_request_success{model="classifier-small",version="1"} 5',
                'nv_inference_request_success{model="classifier-small",version="1"} 9',
            )
            r2 = await c.scrape_once(now_s=1005.0)
            await fake.stop()
            r3 = await c.scrape_once(now_s=1010.0)  # the live one went down too
        finally:
            await c.close()
        return r1, r2, r3

    r1, r2, r3 = asyncio.run(main())
    assert [o.up for o in r1.outcomes] == [True, False]
    assert r1.outcomes[1].error and "metrics" in r1.outcomes[1].error
    assert [(r[3], r[4]) for r in rows_of(store, "replica-0", "up")] == [
        (1000.0, 1.0),
        (1005.0, 1.0),
        (1010.0, 0.0),
    ]
    assert [r[4] for r in rows_of(store, "replica-dead", "up")] == [0.0, 0.0, 0.0]
    assert [r[4] for r in rows_of(store, "replica-0", "nv_inference_request_success")] == [5.0, 9.0]
    success = rows_of(store, "replica-0", "triton_stats_success_count")
    assert len(success) == 2 and success[0][5] == "classifier-small" and success[0][6] == "counter"
    assert fake.token_seen == ["tok", "tok"]
    assert all(r[4] > 0 for r in rows_of(store, "replica-0", "scrape_duration_seconds"))
    scraped = rows_of(store, "replica-0", "scrape_samples_scraped")
    assert scraped[0][4] == 30 + len(list(stats_samples(fake.stats)))  # exposition + statistics samples
    assert {r[6] for r in rows_of(store, "replica-0", "up")} == {"gauge"}
    assert all(r[1] != "nv_inference_request_success" for r in store.rows if r[0] == "replica-dead")
    # zone/region columns, series ids stable across scrapes
    ids = {r[7] for r in rows_of(store, "replica-0", "nv_inference_request_success")}
    assert len(ids) == 1
    # spans around scrape and insert
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("collector.scrape") == 6 and names.count("collector.insert") >= 1
    # self-metrics
    text = generate_latest(metrics.registry).decode()
    assert 'fleetpilot_collector_scrape_failures_total{target="replica-dead"} 3.0' in text
    assert (
        "fleetpilot_collector_samples_written_total" in text
        and "fleetpilot_collector_spool_bytes 0.0" in text
    )


def test_rejections_are_written_by_reason_and_rest_kept(tmp_path):
    store = FakeStore()
    cfg = CollectConfig(batch_max_age_s=0, series_limit_per_target=50)
    bad = "good 1\nbad{ 2\nnan NaN\n" + "".join(f'boom{{id="{i}"}} 1\n' for i in range(100))

    async def main():
        async def metrics(request):
            return web.Response(text=bad)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", PORT + 2).start()
        c = Collector(
            cfg,
            store,
            tmp_path / "spool",
            targets=[Target("t", f"http://127.0.0.1:{PORT + 2}/metrics", None)],
        )
        try:
            return await c.scrape_once(now_s=1.0)
        finally:
            await c.close()
            await runner.cleanup()

    report = asyncio.run(main())
    o = report.outcomes[0]
    assert o.up and o.rejected == {"malformed": 1, "nan_or_inf": 1, "series_limit": 52}
    by_reason = {dict(r[2])["reason"]: r[4] for r in rows_of(store, "t", "scrape_samples_rejected_by_reason")}
    assert by_reason == {"malformed": 1.0, "nan_or_inf": 1.0, "series_limit": 52.0}
    assert rows_of(store, "t", "scrape_samples_rejected")[0][4] == 54.0
    assert rows_of(store, "t", "good")[0][4] == 1.0
