"""Capacity from stored telemetry on the real embedded store, and the newest curve for the loop.

One replica reports Triton's request counter and latency histogram every 15 s for ten minutes;
its load steps up each minute and its latency bucket with it, so the SLO is crossed at a known load.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from controlplane.capacity.model import INTERPOLATED, Slo
from controlplane.capacity.telemetry import (
    MEAN_FALLBACK,
    fit_from_store,
    latest_capacity,
    suspect_spans,
    telemetry_points,
)
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


def _rows(model: str, target: str, with_histogram: bool, latency_le=None) -> list[dict]:
    rows = []
    ok = 0.0
    hist = dict.fromkeys(LES, 0.0)
    dur_us = 0.0
    for k, rate in enumerate(RATES_RPS):
        for j in range(4):  # scrapes at :05 :20 :35 :50 of minute k
            ts = T0 + 60 * k + 5 + 15 * j
            n = rate * 15
            ok += n
            le = (latency_le or _latency_le)(rate)
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
    # Two replicas of one model: one healthy at every load, one slow from the start (a fault).
    for model in ("pair-flagged", "pair-unflagged"):
        st.insert_samples(SampleBatch.from_rows(_rows(model, f"{model}-ok", True, lambda r: "10")), "p1")
        st.insert_samples(SampleBatch.from_rows(_rows(model, f"{model}-slow", True, lambda r: "160")), "p2")
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


def _event(model: str, replica: str, kind: str, opened_s: float, ts_s: float, detector: str) -> dict:
    utc = lambda s: datetime.fromtimestamp(s, tz=UTC)  # noqa: E731
    return {
        "ts": utc(ts_s), "event_id": f"{replica}-{kind}", "detector": detector, "model": model,
        "replica": replica, "zone": "", "metric": "latency_ms", "severity": "warning", "score": 0.9,
        "threshold": 0.6, "observed_value": 150.0, "expected_value": 8.0, "reason_codes": [kind],
        "inputs": json.dumps({"incident_id": f"inc-{replica}"}), "window_start": utc(opened_s),
        "window_end": utc(ts_s),
    }  # fmt: skip


def test_a_replica_the_peer_detector_flagged_is_left_out_of_the_fit(store):
    now = T0 + 600
    store.insert_rows(
        "anomaly_events",
        [
            _event("pair-flagged", "pair-flagged-slow", "open", T0 + 30, T0 + 30, "peer+robust"),
            _event("pair-flagged", "pair-flagged-slow", "update", T0 + 30, T0 + 300, "peer"),
            # Not the peer detector (a fleet-wide latency rise is load, and is capacity evidence):
            _event("pair-unflagged", "pair-unflagged-slow", "open", T0 + 30, T0 + 30, "robust"),
        ],
    )
    spans = suspect_spans(store, "pair-flagged", T0, now)
    assert spans == {"pair-flagged-slow": [(T0 + 30.0, float(now))]}  # still open: to the end
    assert suspect_spans(store, "pair-unflagged", T0, now) == {}

    # The healthy replica alone: the SLO held at every load it saw (a lower bound at 20 rps).
    flagged = fit_from_store(store, "pair-flagged", Slo(p99_ms=50), now, 600)
    assert flagged.lower_bound and flagged.capacity_rps == pytest.approx(RATES_RPS[-1])
    assert latest_capacity(store, "pair-flagged") is None  # the load it carried, not its limit
    assert all(p.p99_ms < 50 for p in flagged.points_used)
    row = store.query(
        "SELECT inputs FROM capacity_curves WHERE model = 'pair-flagged' ORDER BY ts DESC LIMIT 1"
    ).to_dicts()[0]
    assert list(json.loads(row["inputs"])["excluded_spans"]) == ["pair-flagged-slow"]
    # Unflagged, the slow replica's points are kept: the pooled fit never meets the SLO.
    unflagged = fit_from_store(store, "pair-unflagged", Slo(p99_ms=50), now, 600)
    assert not unflagged.lower_bound and unflagged.capacity_rps < flagged.capacity_rps


def test_a_closed_peer_incident_excludes_only_its_minutes(store):
    store.insert_rows(
        "anomaly_events",
        [
            _event("pair-closed", "r-x", "open", T0 + 125, T0 + 125, "peer"),
            _event("pair-closed", "r-x", "close", T0 + 125, T0 + 230, "peer"),
        ],
    )
    assert suspect_spans(store, "pair-closed", T0, T0 + 600) == {"r-x": [(T0 + 125.0, T0 + 230.0)]}
