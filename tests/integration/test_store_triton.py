"""A real Triton replica's metrics, scraped into the real embedded store: derived series match what was sent.

Independent of the collector (it parses with prometheus_client), so it checks the store side:
column mapping, reset-safe deltas, rollups and derived SQL on Triton's own counters.
"""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

from controlplane.store import SampleBatch, open_store
from controlplane.store import derived as d

pytestmark = pytest.mark.integration
MODEL = "classifier-small"
KINDS = {"counter", "gauge", "histogram", "summary"}


def _exposed_name(sample_name: str, family_name: str, text: str) -> str:
    """prometheus_client renames counters to <name>_total; the store keeps names as exposed."""
    if (
        sample_name.endswith("_total")
        and f"\n{sample_name}{{" not in text
        and f"\n{sample_name} " not in text
    ):
        return family_name
    return sample_name


def _scrape(rec) -> SampleBatch:
    with urllib.request.urlopen(rec.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    ts = time.time()
    rows = []
    for fam in text_string_to_metric_families(text):
        kind = fam.type if fam.type in KINDS else "untyped"
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if k != "model"}
            rows.append(
                dict(
                    ts=ts,
                    target=rec.name,
                    zone=rec.zone,
                    region=rec.region,
                    model=s.labels.get("model", ""),
                    metric=_exposed_name(s.name, fam.name, text),
                    labels=labels,
                    kind=kind,
                    value=s.value,
                )
            )
    return SampleBatch.from_rows(rows)


def _infer(rec, n: int) -> None:
    client = httpclient.InferenceServerClient(rec.http_url.removeprefix("http://"))
    rng = np.random.default_rng(time.time_ns())
    for _ in range(n):
        inp = httpclient.InferInput("features", [1, 64], "FP32")
        inp.set_data_from_numpy(rng.standard_normal((1, 64)).astype(np.float32))  # unique: no cache hit
        client.infer(MODEL, [inp])


def test_triton_counters_through_the_store(fleet, tmp_path):
    rec = fleet.replicas[0]
    store = open_store(f"chdb:///{tmp_path / 'clickhouse'}")
    try:
        start = time.time()
        store.insert_samples(_scrape(rec), "s1")
        _infer(rec, 20)
        time.sleep(2.5)  # Triton refreshes some metric families on its metrics interval (2 s)
        store.insert_samples(_scrape(rec), "s2")
        end = time.time() + 1
        where = f"target = {d.q(rec.name)} AND model = {d.q(MODEL)}"
        inc = store.query(
            f"SELECT sum(delta) FROM samples WHERE metric = {d.q(d.REQUEST_SUCCESS)} AND {where}"
        ).rows[0][0]
        assert inc == 20
        for source in ("raw", "1m", "values"):
            res = store.query(d.request_rate(start - 60, end, 60, models=[MODEL], source=source)).to_dicts()
            assert sum(r["requests_per_s"] * 60 for r in res) == pytest.approx(20), source
        times = store.query(d.request_times(start - 60, end, 60, models=[MODEL], source="1m")).to_dicts()
        last = [r for r in times if r["avg_request_ms"] is not None][-1]
        assert 0 < last["avg_compute_infer_ms"] <= last["avg_request_ms"] < 10_000
        bs = store.query(d.batch_size(start - 60, end, 60, models=[MODEL], source="1m")).to_dicts()
        assert [r["avg_batch_size"] for r in bs if r["avg_batch_size"] is not None][-1] >= 1.0
    finally:
        store.close()
