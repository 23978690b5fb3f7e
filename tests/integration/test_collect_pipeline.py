"""Real Triton replicas -> collector -> real embedded ClickHouse.

Uses the session `fleet` (2 real replicas). One embedded store for this module (chDB: one
process per path), isolated by its own temporary path.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from aiohttp import ClientSession, web

from collectors.scheduler import Collector
from collectors.targets import Target
from controlplane.config import CollectConfig
from controlplane.store import StoreUnavailable, open_store

pytestmark = pytest.mark.integration
MODEL = "classifier-small"
PROXY_PORT = 18541


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(f"chdb:///{tmp_path_factory.mktemp('collect-store') / 'clickhouse'}")
    try:
        yield s
    finally:
        s.close()


def _infer(http_url: str, n: int) -> None:
    for i in range(n):
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": [1, 64],
                        "datatype": "FP32",
                        "data": [float(i) / (j + 1) for j in range(64)],
                    }
                ]
            }
        ).encode()
        req = urllib.request.Request(
            f"{http_url}/v2/models/{MODEL}/infer", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200


def _values(store, target: str, metric: str, since_s: float) -> list[float]:
    rows = store.query(
        "SELECT value FROM samples WHERE target = {t:String} AND metric = {m:String} AND model = {model:String} "
        "AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') ORDER BY ts",
        {"t": target, "m": metric, "model": MODEL, "since": int(since_s * 1000)},
    ).rows
    return [r[0] for r in rows]


def test_inferences_sent_match_counters_in_the_store(fleet, store, tmp_path):
    """Send N requests to one replica between two scrapes: both the metrics port and the
    statistics API counters, as stored, rise by exactly N."""
    replica = fleet.replicas[0]
    cfg = CollectConfig(batch_max_age_s=0)
    n = 7

    async def main():
        c = Collector(cfg, store, tmp_path / "spool", fleet.settings.fleet_state_path)
        try:
            first = await c.scrape_once()
            await asyncio.to_thread(_infer, replica.http_url, n)
            await asyncio.sleep(1.5)  # Triton refreshes its metrics port every second
            second = await c.scrape_once()
            await c.flush()
        finally:
            await c.close()
        return first, second

    since = time.time() - 5
    first, second = asyncio.run(main())
    assert {o.target for o in first.outcomes} == {r.name for r in fleet.replicas}
    assert all(o.up and not o.rejected for o in first.outcomes + second.outcomes), first.to_json()
    for metric in ("nv_inference_request_success", "triton_stats_success_count"):
        vals = _values(store, replica.name, metric, since)
        assert len(vals) == 2, (metric, vals)
        assert vals[1] - vals[0] == n, (metric, vals)
    ups = store.query(
        "SELECT target, value FROM samples WHERE metric = 'up' AND ts >= fromUnixTimestamp64Milli({s:Int64}, 'UTC')",
        {"s": int(since * 1000)},
    ).rows
    assert {t for t, v in ups if v == 1.0} == {r.name for r in fleet.replicas}


class FlakyStore:
    """Fault-injecting proxy: raises StoreUnavailable while `down` is set."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False

    def insert_samples(self, batch, dedup_token):
        if self.down:
            raise StoreUnavailable("injected outage")
        return self.inner.insert_samples(batch, dedup_token)


def test_store_outage_loses_and_duplicates_nothing(fleet, store, tmp_path):
    """6 scrapes, the store is away for scrapes 2-4: afterwards every (series, scrape) is present exactly once."""
    flaky = FlakyStore(store)
    cfg = CollectConfig(batch_max_age_s=0)
    replica = fleet.replicas[1]
    target = Target(
        f"outage-{replica.name}", replica.metrics_url, replica.http_url, replica.zone, replica.region
    )
    base_s = time.time() - 60
    spooled = []

    async def main():
        c = Collector(cfg, flaky, tmp_path / "spool", targets=[target])
        try:
            for i in range(6):
                flaky.down = i in (1, 2, 3)
                report = await c.scrape_once(now_s=base_s + i)  # batch_max_age_s=0: flushes every scrape
                spooled.append((report.flush.spooled_rows, len(c.sink.spool)))
                assert report.outcomes[0].up
            # the last flush replayed the spool (in order) and wrote the new batch
        finally:
            await c.close()
        return c

    c = asyncio.run(main())
    assert [n for n, _ in spooled] == [0, spooled[1][0], spooled[2][0], spooled[3][0], 0, 0]
    assert all(n > 0 for n, _ in spooled[1:4]) and [b for _, b in spooled] == [0, 1, 2, 3, 0, 0]
    assert len(c.sink.spool) == 0
    rows = store.query(
        "SELECT series_id, ts, count() AS n FROM samples WHERE target = {t:String} GROUP BY series_id, ts HAVING n > 1",
        {"t": target.name},
    ).rows
    assert rows == []
    per_scrape = store.query(
        "SELECT toUnixTimestamp64Milli(ts) AS t, count() FROM samples WHERE target = {t:String} GROUP BY t ORDER BY t",
        {"t": target.name},
    ).rows
    assert len(per_scrape) == 6
    assert len({n for _, n in per_scrape}) == 1  # same number of samples in every scrape, none lost


def test_target_down_then_up_is_recorded(fleet, store, tmp_path):
    """A target whose port closes is up=0 (never silent) and up=1 again once it answers."""
    replica = fleet.replicas[0]
    target = Target("flapping", f"http://127.0.0.1:{PROXY_PORT}/metrics", None, "zone-x", "local")

    async def proxy_app():
        async def metrics(request):
            async with ClientSession() as s, s.get(replica.metrics_url) as r:
                return web.Response(text=await r.text())

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", PROXY_PORT).start()
        return runner

    base_s = time.time() - 30

    async def main():
        c = Collector(
            CollectConfig(batch_max_age_s=0, scrape_timeout_s=2), store, tmp_path / "spool", targets=[target]
        )
        try:
            await c.scrape_once(now_s=base_s)  # nothing listens: down
            runner = await proxy_app()
            await c.scrape_once(now_s=base_s + 1)  # up
            await runner.cleanup()
            await c.scrape_once(now_s=base_s + 2)  # down again
            await c.flush()
        finally:
            await c.close()

    asyncio.run(main())
    ups = [
        r[0]
        for r in store.query(
            "SELECT value FROM samples WHERE target = 'flapping' AND metric = 'up' ORDER BY ts"
        ).rows
    ]
    assert ups == [0.0, 1.0, 0.0]
    n_success = store.query(
        "SELECT count() FROM samples WHERE target = 'flapping' AND metric = 'nv_inference_request_success'"
    ).rows[0][0]
    assert n_success >= 1  # real series arrived while it was up
