"""ForecastService against the real embedded store: counters in, forecasts out and written.

Timestamps are near now (TTL is real). One model reports request and token counters every 10 s
with a rate that steps from 5 rps to 20 rps; another reports nothing for the token metric.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from controlplane.forecast.service import ForecastService, ModelForecast, SeriesForecast, history_grid
from controlplane.store import SampleBatch, open_store
from controlplane.store import derived as d

STEP_S = 10
T0 = int(time.time() // 3600 * 3600) - 3 * 3600  # whole hours back, inside the raw TTL
N = 900  # 2.5 h of 10 s scrapes


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = open_store(f"chdb:///{tmp_path_factory.mktemp('forecast-service') / 'clickhouse'}")
    rows = []
    ok = tok = 0.0
    for i in range(N):
        rate = 5.0 if i < N - 200 else 20.0  # level shift 2000 s before the end
        ok += rate * STEP_S
        tok += 40.0 * rate * STEP_S
        ts = T0 + i * STEP_S + 5  # mid-bucket: exactly one scrape per 10 s bucket
        for target in ("rep-a", "rep-b"):  # two replicas share the load
            rows.append(
                dict(
                    ts=ts,
                    target=target,
                    model="svc-m",
                    metric=d.REQUEST_SUCCESS,
                    kind="counter",
                    value=ok / 2,
                )
            )
            rows.append(
                dict(
                    ts=ts,
                    target=target,
                    model="svc-m",
                    metric=d.GENERATION_TOKENS,
                    kind="counter",
                    value=tok / 2,
                )
            )
        rows.append(
            dict(
                ts=ts, target="rep-c", model="svc-n", metric=d.REQUEST_SUCCESS, kind="counter", value=i * 30.0
            )
        )
    st.insert_samples(SampleBatch.from_rows(rows), "svc-history")
    yield st
    st.close()


def test_tick_forecasts_every_model_and_writes_rows(store):
    now = T0 + N * STEP_S + 3
    svc = ForecastService(store, step_s=STEP_S, horizon_s=600, refit_every_s=300, background=False)
    try:
        out = svc.tick(now)
    finally:
        svc.close()
    assert set(out) == {"svc-m", "svc-n"}
    m = out["svc-m"]
    assert isinstance(m, ModelForecast)
    # After the shift the series sits at 20 rps: the p90 a minute ahead is near it, not at 5.
    p90 = m.p90_at(60)
    assert p90 is not None and 18.0 <= p90 <= 30.0, p90
    assert m.p50_at(60) <= p90
    assert m.p90_at(60, "token_rate_tps") == pytest.approx(40 * p90, rel=0.3)
    assert m.p90_at(601) is None  # beyond the horizon
    assert out["svc-n"].p90_at(30) == pytest.approx(3.0, abs=0.5)
    assert out["svc-n"].p90_at(30, "token_rate_tps") is None  # no token counters for this model
    with pytest.raises(ValueError, match="ahead_s"):
        m.p90_at(-1)

    rows = store.query(
        "SELECT forecaster, metric, toUnixTimestamp64Milli(ts) / 1000 AS made, "
        "toUnixTimestamp64Milli(target_ts) / 1000 AS target, horizon_s, value, upper, inputs "
        "FROM forecasts WHERE model = 'svc-m' ORDER BY metric, target"
    ).to_dicts()
    assert {r["metric"] for r in rows} == {"request_rate_rps", "token_rate_tps"}
    req = [r for r in rows if r["metric"] == "request_rate_rps"]
    # Targets are bucket starts: the first is the bucket holding now, then every step ahead.
    assert req[0]["target"] == pytest.approx(now // STEP_S * STEP_S) and req[0]["horizon_s"] == 0
    assert all(r["made"] == pytest.approx(now) and r["target"] > now - STEP_S for r in req)
    assert all(r["upper"] >= r["value"] >= 0 for r in req)
    assert max(r["horizon_s"] for r in req) <= 600
    assert json.loads(req[0]["inputs"])["step_s"] == STEP_S
    # Selected by the backtest at the first tick (synchronous here).
    assert json.loads(req[0]["inputs"])["selected_at_s"] == pytest.approx(now)


def test_refit_runs_on_schedule_in_the_background(store):
    now = T0 + N * STEP_S + 3
    svc = ForecastService(store, step_s=STEP_S, horizon_s=300, refit_every_s=300, background=True)
    try:
        svc.tick(now)  # starts the refit in the thread; the tick answers with the default forecaster
        svc.wait_refits(timeout_s=120)
        first = dict(svc._last_refit_s)
        out = svc.tick(now + 10)  # picks up the selection; no new refit yet
        assert svc._last_refit_s == first
        # A forecast made at the refit still reaches a full horizon ahead of a later tick.
        assert out["svc-m"].p90_at(300) is not None and out["svc-m"].p90_at(301) is None
        assert all(s.made_at_s == now for s in svc._selection.values())
        svc.tick(now + 310)  # past refit_every_s: refits again
        assert all(v == now + 310 for v in svc._last_refit_s.values())
    finally:
        svc.close()
    svc.close()  # idempotent


def test_history_grid_carries_gaps_forward():
    ts = np.array([100.0, 110.0, 140.0])
    grid, v = history_grid(ts, np.array([1.0, 2.0, 5.0]), 90.0, 160.0, 10.0)
    assert list(grid) == [100, 110, 120, 130, 140, 150]
    assert list(v) == [1, 2, 2, 2, 5, 5]
    assert history_grid(ts[:2], np.array([1.0, 2.0]), 90.0, 160.0, 10.0) is None


def test_series_forecast_index_by_target_time():
    sf = SeriesForecast("x", origin_s=1000.0, step_s=10.0, p50=np.arange(3.0), p90=np.arange(3.0) + 1)
    assert sf.index_at(1005.0) == 0 and sf.index_at(1010.0) == 0 and sf.index_at(1011.0) == 1
    assert sf.index_at(1030.0) == 2 and sf.index_at(1031.0) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(step_s=0), "step_s"),
        (dict(horizon_s=5), "horizon_s"),
        (dict(refit_every_s=0), "refit_every_s"),
        (dict(history_s=10), "history_s"),
    ],
)
def test_bad_settings_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForecastService(None, **kwargs)
