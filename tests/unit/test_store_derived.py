"""Derived series on real rows in the real embedded engine: rates, reset safety, percentiles, ratios, units.

Every test writes its own targets/models (the module shares one store) at timestamps near now
(TTL is real), then reads the same answer from raw samples, from the value-based window
function, and from the rollups.
"""

from __future__ import annotations

import time

import pytest

from controlplane.store import SampleBatch, open_store
from controlplane.store import derived as d

T0 = int(time.time() // 3600 * 3600) - 3600  # start of the previous hour: whole minutes, inside TTL
SOURCES = ("raw", "values", "1m")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = open_store(f"chdb:///{tmp_path_factory.mktemp('store-derived') / 'clickhouse'}")
    yield st
    st.close()


_tokens = iter(range(10**6))


def put(store, rows):
    store.insert_samples(SampleBatch.from_rows(rows), f"t{next(_tokens)}")


def counter(target, metric, values, *, model="", labels=None, kind="counter", step_s=15, t0=T0, zone="z1"):
    return [
        dict(
            ts=t0 + i * step_s,
            target=target,
            zone=zone,
            region="r1",
            model=model,
            metric=metric,
            kind=kind,
            value=float(v),
            labels=labels or {},
        )
        for i, v in enumerate(values)
    ]


def ramp(n, per_step, start=0.0):
    return [start + per_step * i for i in range(n)]


def rows_of(store, sql):
    return store.query(sql).to_dicts()


@pytest.mark.parametrize("source", SOURCES)
def test_request_rate(store, source):
    # 8 scrapes per minute-pair, +10 requests per 15 s scrape: 40 per minute = 0.667/s.
    if source == "raw":  # written once for all sources
        put(store, counter("rate-a", d.REQUEST_SUCCESS, ramp(12, 10, 100), model="rate-m"))
        put(store, counter("rate-b", d.REQUEST_SUCCESS, ramp(12, 5, 7), model="rate-m"))
    res = rows_of(store, d.request_rate(T0 + 60, T0 + 180, 60, models=["rate-m"], source=source))
    assert [r["requests_per_s"] for r in res] == pytest.approx([60 / 60, 60 / 60])
    per_target = rows_of(
        store, d.request_rate(T0 + 60, T0 + 180, 60, by=("target",), models=["rate-m"], source=source)
    )
    assert {
        r["target"]: r["requests_per_s"] for r in per_target if r["ts"].timestamp() == T0 + 60
    } == pytest.approx({"rate-a": 40 / 60, "rate-b": 20 / 60})


@pytest.mark.parametrize("source", SOURCES)
def test_counter_reset_mid_window_gives_no_negative_and_no_spike(store, source):
    # Steady +30 per scrape (2/s); the replica restarts at the 6th scrape and counts from 0 again.
    values = [1000, 1030, 1060, 1090, 1120, 1150, 20, 50, 80, 110, 140, 170]
    if source == "raw":
        put(store, counter("reset-a", d.REQUEST_SUCCESS, values, model="reset-m"))
    res = rows_of(store, d.request_rate(T0, T0 + 180, 60, models=["reset-m"], source=source))
    rates = [r["requests_per_s"] for r in res]
    assert min(rates) >= 0
    assert max(rates) <= 2.0 + 1e-9  # never above the true rate: no spike
    # Minute 0: 3 deltas of 30 (the first sample has no predecessor); minute 1: 30+30+20+30 (the
    # reset scrape counts its value, 20); minute 2: 4 x 30.
    assert rates == pytest.approx([90 / 60, 110 / 60, 120 / 60])
    naive = values[-1] - values[0]  # what a plain last-minus-first would say: negative
    assert naive < 0


@pytest.mark.parametrize("source", SOURCES)
def test_histogram_percentiles(store, source):
    # Per scrape 100 observations: 50 <= 10 ms, 40 in (10, 20], 9 in (20, 50], 1 above 50.
    cum = {"10": 50, "20": 90, "50": 99, "+Inf": 100}
    if source == "raw":
        rows = []
        for le, per_scrape in cum.items():
            rows += counter(
                "hist-a",
                d.LATENCY_HISTOGRAM_MS + "_bucket",
                ramp(9, per_scrape),
                model="hist-m",
                labels={"le": le},
                kind="histogram",
            )
        put(store, rows)
    res = rows_of(
        store, d.latency_percentile(T0 + 60, T0 + 120, 60, quantile=0.99, models=["hist-m"], source=source)
    )
    assert len(res) == 1
    assert res[0]["p99_latency_ms"] == pytest.approx(50.0)  # rank 396 of 400 hits le=50 exactly
    assert res[0]["observations_per_s"] == pytest.approx(400 / 60)
    p50 = rows_of(
        store, d.latency_percentile(T0 + 60, T0 + 120, 60, quantile=0.5, models=["hist-m"], source=source)
    )
    assert p50[0]["p50_latency_ms"] == pytest.approx(10.0)
    p70 = rows_of(
        store, d.latency_percentile(T0 + 60, T0 + 120, 60, quantile=0.7, models=["hist-m"], source=source)
    )
    assert p70[0]["p70_latency_ms"] == pytest.approx(
        10 + 10 * (280 - 200) / (360 - 200)
    )  # linear inside (10, 20]
    p995 = rows_of(
        store, d.latency_percentile(T0 + 60, T0 + 120, 60, quantile=0.995, models=["hist-m"], source=source)
    )
    assert p995[0]["p99_5_latency_ms"] == pytest.approx(50.0)  # in the +Inf bucket: highest finite bound


def test_ttft_and_inter_token_percentiles_in_seconds(store):
    rows = []
    for le, n in {"0.05": 8, "0.1": 10, "+Inf": 10}.items():
        rows += counter(
            "tok-a",
            d.TTFT_HISTOGRAM_S + "_bucket",
            ramp(5, n),
            model="chat",
            labels={"le": le},
            kind="histogram",
        )
    for le, n in {"0.01": 90, "0.02": 100, "+Inf": 100}.items():
        rows += counter(
            "tok-a",
            "vllm:inter_token_latency_seconds_bucket",
            ramp(5, n),
            model="chat",
            labels={"le": le},
            kind="histogram",
        )
    put(store, rows)
    ttft = rows_of(store, d.ttft_percentile(T0, T0 + 60, 60, quantile=0.5, models=["chat"], source="1m"))
    assert ttft[0]["ttft_p50_s"] == pytest.approx(0.05 * 0.5 / 0.8)
    itl = rows_of(
        store, d.inter_token_percentile(T0, T0 + 60, 60, quantile=0.95, models=["chat"], source="raw")
    )
    assert itl[0]["itl_p95_s"] == pytest.approx(0.01 + 0.01 * (0.95 * 400 - 360) / 40)


@pytest.mark.parametrize("source", SOURCES)
def test_cache_hit_ratio_and_batch_size(store, source):
    if source == "raw":
        put(
            store,
            counter("cache-a", d.CACHE_HITS, ramp(9, 30), model="cache-m")
            + counter("cache-a", d.CACHE_MISSES, ramp(9, 10), model="cache-m")
            + counter("cache-a", d.INFERENCE_COUNT, ramp(9, 64), model="cache-m")
            + counter("cache-a", d.EXEC_COUNT, ramp(9, 16), model="cache-m"),
        )
    res = rows_of(store, d.cache_hit_ratio(T0 + 60, T0 + 120, 60, models=["cache-m"], source=source))
    assert res[0]["cache_hit_ratio"] == pytest.approx(0.75)
    assert res[0]["cache_lookups_per_s"] == pytest.approx(160 / 60)
    bs = rows_of(store, d.batch_size(T0 + 60, T0 + 120, 60, models=["cache-m"], source=source))
    assert bs[0]["avg_batch_size"] == pytest.approx(4.0)


def test_request_times_are_milliseconds_per_request(store):
    put(
        store,
        counter("times-a", d.REQUEST_SUCCESS, ramp(9, 250), model="times-m")
        + counter("times-a", d.CACHE_HITS, ramp(9, 50), model="times-m")
        + counter("times-a", d.DURATIONS_US["queue"], ramp(9, 500_000), model="times-m")  # 2 ms per request
        + counter("times-a", d.DURATIONS_US["request"], ramp(9, 1_250_000), model="times-m")  # 5 ms
        + counter("times-a", d.DURATIONS_US["compute_infer"], ramp(9, 600_000), model="times-m"),
    )  # 3 ms per executed
    r = rows_of(store, d.request_times(T0 + 60, T0 + 120, 60, models=["times-m"], source="1m"))[0]
    assert r["avg_queue_ms"] == pytest.approx(2.0)
    assert r["avg_request_ms"] == pytest.approx(5.0)
    assert r["avg_compute_infer_ms"] == pytest.approx(3.0)  # 600 ms / (250 - 50) executed requests
    assert r["avg_compute_output_ms"] is None  # not reported: NULL, not 0


def test_failures_by_reason(store):
    put(
        store,
        counter("fail-a", d.REQUEST_FAILURE, ramp(5, 3), model="fail-m", labels={"reason": "BACKEND"})
        + counter(
            "fail-a", d.REQUEST_FAILURE, [0, 0, 6, 12, 18], model="fail-m", labels={"reason": "REJECTED"}
        ),
    )
    res = rows_of(store, d.failures_by_reason(T0, T0 + 60, 60, models=["fail-m"], source="1m"))
    # window [T0, T0+60) holds the first 4 scrapes of each series
    assert {r["reason"]: r["failures_per_s"] for r in res} == pytest.approx(
        {"BACKEND": 9 / 60, "REJECTED": 12 / 60}
    )


def test_tokens_per_second(store):
    put(
        store,
        counter("tokens-a", d.GENERATION_TOKENS, ramp(5, 150), model="tok-m")
        + counter("tokens-a", d.PROMPT_TOKENS, ramp(5, 600), model="tok-m"),
    )
    r = rows_of(store, d.token_rate(T0, T0 + 60, 60, models=["tok-m"], source="1m"))[0]
    assert (r["generation_tokens_per_s"], r["prompt_tokens_per_s"]) == pytest.approx((450 / 60, 1800 / 60))


@pytest.mark.parametrize("source", SOURCES)
def test_energy_per_1k_inferences(store, source):
    # Energy: +150 J per scrape (10 W); inferences: +300 per scrape (20/s) -> 500 J per 1,000.
    if source == "raw":
        put(
            store,
            counter("energy-a", d.ENERGY_J["triton"], ramp(9, 150, 5e6), labels={"gpu_uuid": "G"})
            + counter("energy-a", d.INFERENCE_COUNT, ramp(9, 200), model="e-m1")
            + counter("energy-a", d.INFERENCE_COUNT, ramp(9, 100), model="e-m2"),
        )
    r = rows_of(
        store, d.energy_per_1k_inferences(T0 + 60, T0 + 120, 60, targets=["energy-a"], source=source)
    )[0]
    assert r["energy_j_per_1k_inferences"] == pytest.approx(500.0)
    assert r["power_w"] == pytest.approx(10.0)


@pytest.mark.parametrize("family", ["triton", "dcgm"])
def test_gpu_gauges(store, family):
    m = d.GPU_METRICS[family]
    rows = []
    for gpu, util in (("G0", 0.5), ("G1", 0.7)):
        lab = {"gpu_uuid": gpu}
        rows += counter(f"gpu-{family}", m["util"], [util] * 4, labels=lab, kind="gauge", zone="gz")
        rows += counter(f"gpu-{family}", m["mem"], [8 * 2**30] * 4, labels=lab, kind="gauge", zone="gz")
        rows += counter(f"gpu-{family}", m["power"], [300.0] * 4, labels=lab, kind="gauge", zone="gz")
    put(store, rows)
    for source in SOURCES:
        r = rows_of(store, d.gpu(T0, T0 + 60, 60, zones=["gz"], family=family, source=source))[0]
        assert r["gpu_utilization_ratio"] == pytest.approx(0.6), source
        assert r["gpu_utilization_max_ratio"] == pytest.approx(0.7)
        assert r["gpu_memory_used_bytes"] == pytest.approx(8 * 2**30)
        assert r["gpu_power_w"] == pytest.approx(300.0)


def test_hourly_rollup_matches_raw(store):
    put(store, counter("hour-a", d.REQUEST_SUCCESS, ramp(240, 3), model="hour-m"))  # a whole hour at 15 s
    raw = rows_of(store, d.request_rate(T0, T0 + 3600, 3600, models=["hour-m"], source="raw"))
    hourly = rows_of(store, d.request_rate(T0, T0 + 3600, 3600, models=["hour-m"], source="1h"))
    assert raw == hourly
    assert hourly[0]["requests_per_s"] == pytest.approx(239 * 3 / 3600)


def test_unit_suffixes_on_every_value_column(store):
    units = ("_per_s", "_ms", "_s", "_ratio", "_bytes", "_w", "_per_1k_inferences", "avg_batch_size")
    sqls = [
        f(T0, T0 + 60, 60)
        for f in (
            d.request_rate,
            d.request_times,
            d.cache_hit_ratio,
            d.token_rate,
            d.batch_size,
            d.gpu,
            d.energy_per_1k_inferences,
            d.latency_percentile,
            d.ttft_percentile,
            d.inter_token_percentile,
        )
    ]
    for sql in sqls:
        for col in store.query(sql + " LIMIT 0").column_names:
            assert col in ("ts", "model") or col.endswith(units), col


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"step_s": 0}, "step_s"),
        ({"step_s": 90, "source": "1m"}, "multiple"),
        ({"source": "5m"}, "source"),
        ({"by": ("gpu",)}, "group by"),
    ],
)
def test_bad_arguments(kwargs, needle):
    kw = {"step_s": 60, **kwargs}
    with pytest.raises(ValueError, match=needle):
        d.request_rate(T0, T0 + 60, kw.pop("step_s"), **kw)
