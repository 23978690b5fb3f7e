"""Simulated telemetry in the real `samples` schema, through the real embedded store."""

from __future__ import annotations

import time

import numpy as np
import pytest

from controlplane.sim.fleet import FleetModel
from controlplane.sim.latency import ReplicaModel
from controlplane.sim.run import SimOptions, simulate
from controlplane.sim.store_writer import samples_from_result, write_result
from controlplane.sim.workload import Workload
from controlplane.store import open_store
from tests.unit.test_sim_bench import Recorder


@pytest.fixture(scope="module")
def result():
    w = Workload("w", 1.0, np.full(120, 10, dtype=np.int64))  # 10 rps for 2 minutes
    return simulate(w, Recorder(2), FleetModel(ReplicaModel(), startup_s=0.0), SimOptions(initial_replicas=2))


def test_scrapes_are_cumulative_counters_and_gauges(result):
    b = samples_from_result(result, "m", start_s=1000.0, scrape_s=15.0)
    rows = list(zip(b.ts, b.metric, b.kind, b.value, strict=True))
    success = [(t, v) for t, m, _, v in rows if m == "nv_inference_request_success"]
    assert [t for t, _ in success] == [1000.0 + 15 * i for i in range(1, 9)]
    assert [v for _, v in success] == pytest.approx([150.0 * i for i in range(1, 9)])  # 10 rps, none queued
    dur = [v for _, m, _, v in rows if m == "nv_inference_request_duration_us"]
    assert all(b > a for a, b in zip(dur, dur[1:], strict=False))  # counters only grow
    assert 1000 * 150 * 150 < dur[0] < 1000 * 150 * 2 * 1000  # mean latency 150 ms .. 2 s, in us
    assert {m for _, m, k, _ in rows if k == "gauge"} == {
        "nv_inference_pending_request_count",
        "fleetpilot_sim_replicas",
        "fleetpilot_sim_ready_replicas",
    }


def test_written_to_the_embedded_store(result, tmp_path):
    store = open_store(f"chdb:///{tmp_path / 'clickhouse'}")
    try:
        now = float(int(time.time()))  # near now: raw samples have a TTL
        n = write_result(store, result, "sim-model", start_s=now - 300)
        assert n == 8 * 6
        assert write_result(store, result, "sim-model", start_s=now - 300) == n  # a replay ...
        got = store.query(
            "SELECT count(), max(value) FROM samples WHERE model = 'sim-model' "
            "AND metric = 'nv_inference_request_success'"
        ).rows
        assert got[0][0] == 8 and got[0][1] == pytest.approx(1200.0)  # ... is deduplicated
    finally:
        store.close()
