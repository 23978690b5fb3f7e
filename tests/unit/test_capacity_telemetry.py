"""Capacity from stored telemetry on the real embedded store, and the newest curve for the loop.

One replica reports Triton's request counter and latency histogram every 15 s for ten minutes;
its load steps up each minute and its latency bucket with it, so the SLO is crossed at a known load.
"""

from __future__ import annotations

import json
import time

import pytest

from controlplane.capacity.model import INTERPOLATED, Slo
from controlplane.capacity.telemetry import MEAN_FALLBACK, fit_from_store, latest_capacity, telemetry_points
from controlplane.store import SampleBatch, open_store
from controlplane.store import derived as d

T0 = int(time.time() // 3600 * 3600) - 2 * 3600  # whole hours back: inside the raw TTL
LES = ("10", "20", "40", "80", "160", "+Inf")
RATES_RPS = [2.0 * (k + 1) for k in range(10)]  # minute k: 2, 4, ..., 20 rps


def _latency_le(rate_rps: float) -> str:
    return (
        "10"
        if rate_rps <= 4
        else "20"
        if rate_rps <= 8
        else "40"
        if rate_rps <= 12
        else "80"
        if rate_rps <= 16
        else "160"
    )


def _rows(model: str, target: str, with_histogram: bool) -> list[dict]:
    rows = []
    ok = 0.0
    hist = dict.fromkeys(LES, 0.0)
    dur_us = 0.0
    for k, rate in enumerate(RATES_RPS):
        for j in range(4):  # scrapes at :05 :20 :35 :50 of minute k
            ts = T0 + 60 * k + 5 + 15 * j
            n = rate * 15
            ok += n
            le = _latency_le(rate)
            for b in LES[LES.index(le) :]:
                hist[b] += n
            dur_us += n * 1000.0 * float(le) / 2
            base = dict(ts=ts, target=target, model=model, kind="counter")
            rows.append({**base, "metric": d.REQUEST_SUCCESS, "value": ok})
            rows.append({**base, "metric": d.DURATIONS_US["request"], "value": dur_us})
            if with_histogram:
                for b in LES:
                    rows.append(
                        {
                            **base,
                            "kind": "histogram",
                            "metric": d.LATENCY_HISTOGRAM_MS + "_bucket",
                            "labels": {"le": b},
                            "value": hist[b],
                        }
                    )
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = open_store(f"chdb:///{tmp_path_factory.mktemp('capacity-telemetry') / 'clickhouse'}")
    st.insert_samples(SampleBatch.from_rows(_rows("tel-m", "tel-a", True)), "tel-1")
    st.insert_samples(SampleBatch.from_rows(_rows("tel-avg", "tel-b", False)), "tel-2")
    yield st
    st.close()


def test_points_per_replica_and_minute(store):
    points, source, targets = telemetry_points(store, "tel-m", T0 + 600, 600, Slo(p99_ms=50))
    assert targets == ["tel-a"] and source == "histogram_p99"
    # The first minute lacks the increase before its first scrape (no predecessor): 45 s of 60.
    assert [p.offered_rps for p in points] == pytest.approx([1.5] + RATES_RPS[1:])
    assert points[-1].p99_ms == pytest.approx(80 + 80 * 0.99)  # inside (80, 160]
    assert all(p.error_ratio == 0 for p in points)


def test_fit_from_store_writes_a_telemetry_curve(store):
    now = T0 + 600
    est = fit_from_store(store, "tel-m", Slo(p99_ms=50), now, 600)
    # p99 is ~39.8 ms at 12 rps and ~79.6 ms at 14 rps: 50 ms is crossed in between.
    assert est.reason == INTERPOLATED and 12 < est.capacity_rps < 14, est.to_json()
    row = store.query(
        "SELECT source, replica, slo_metric, slo_ms, capacity_rps, lower_bound, inputs FROM capacity_curves "
        "WHERE model = 'tel-m'"
    ).to_dicts()
    assert len(row) == 1 and row[0]["source"] == "telemetry" and row[0]["replica"] == "tel-a"
    assert row[0]["slo_metric"] == "p99_ms" and row[0]["slo_ms"] == 50.0
    assert row[0]["capacity_rps"] == pytest.approx(est.capacity_rps)
    assert json.loads(row[0]["inputs"])["latency_source"] == "histogram_p99"
    assert latest_capacity(store, "tel-m") == pytest.approx(est.capacity_rps)


def test_without_histogram_the_mean_stands_in_and_says_so(store):
    points, source, _ = telemetry_points(store, "tel-avg", T0 + 600, 600, Slo(p99_ms=15))
    assert source == MEAN_FALLBACK
    assert points[-1].p99_ms == pytest.approx(80.0)  # mean request time of the last minute
    est = fit_from_store(store, "tel-avg", Slo(p99_ms=15), T0 + 600, 600)
    assert 6 < est.capacity_rps < 10


def test_latest_capacity_prefers_a_found_limit_over_a_newer_lower_bound(store):
    assert latest_capacity(store, "no-such-model") is None
    base = dict(
        curve_id="c", source="profile", replica="r", replica_kind="cpu-x1", device="cpu", instance_count=1,
        slo_metric="p99_ms", slo_ms=50.0, slo_itl_ms=0.0, reason="x", points="{}", inputs="{}", model="lb-m",
    )  # fmt: skip
    store.insert_rows("capacity_curves", [{**base, "ts": T0, "capacity_rps": 40.0, "lower_bound": 0}])
    store.insert_rows("capacity_curves", [{**base, "ts": T0 + 60, "capacity_rps": 3.0, "lower_bound": 1}])
    assert latest_capacity(store, "lb-m") == 40.0
    store.insert_rows("capacity_curves", [{**base, "ts": T0 + 120, "capacity_rps": 55.0, "lower_bound": 0}])
    assert latest_capacity(store, "lb-m") == 55.0


def test_window_shorter_than_a_step_is_rejected(store):
    with pytest.raises(ValueError, match="window_s"):
        telemetry_points(store, "tel-m", T0 + 600, 30, Slo(p99_ms=50))
