"""Table-driven checks of each forecaster on constructed series, plus the CSV reader."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.forecast.anchors import StatsAnchor
from controlplane.forecast.forecasters import (
    HoltWinters,
    LastValue,
    OutageAware,
    QuantileGBM,
    SeasonalNaive,
    SeasonalProfile,
)
from controlplane.forecast.neural import TorchQuantileMLP
from controlplane.forecast.series import SeriesInputError, carry_forward, infer_seasons, read_series_csv

HOUR_S = 3600.0


def hourly(n: int) -> np.ndarray:
    return np.arange(n) * HOUR_S


def daily_cycle(n: int) -> np.ndarray:
    return 100 + 50 * np.sin(2 * np.pi * np.arange(n) / 24)


N = 24 * 21  # three weeks of hourly rows


def with_gaps(v: np.ndarray) -> np.ndarray:
    """Missing stretches (a collector down for hours) carried forward, as the CSV reader does."""
    g = v.copy()
    for start in range(40, len(v) - 30, 97):
        g[start : start + 5] = np.nan
    return carry_forward(g)


SERIES = {
    # name: (values, truth of the next 6 rows, tolerance on p50 MAE)
    "constant": (np.full(N, 7.0), np.full(6, 7.0), 1e-6),
    "zeros": (np.zeros(N), np.zeros(6), 1e-6),
    "trend": (np.arange(N, dtype=float), np.arange(N, N + 6, dtype=float), 8.0),
    "daily_cycle": (daily_cycle(N), daily_cycle(N + 6)[N:], 8.0),
    "level_shift": (np.r_[np.full(N - 50, 10.0), np.full(50, 60.0)], np.full(6, 60.0), 5.0),
    "gaps": (with_gaps(daily_cycle(N)), daily_cycle(N + 6)[N:], 12.0),
}
FORECASTERS = {
    "last_value": LastValue(),
    "seasonal_naive": SeasonalNaive("daily"),
    "holt_winters": HoltWinters(),
    "quantile_gbm": QuantileGBM(max_iter=40),
    "seasonal_profile": SeasonalProfile(),
    "torch_mlp": TorchQuantileMLP(epochs=150),
    "auto_arima": StatsAnchor("auto_arima"),
    "auto_ets": StatsAnchor("auto_ets"),
    "mstl": StatsAnchor("mstl"),
}
# Which forecasters must track which series closely (the others only need sane output).
MUST_TRACK = {
    "constant": set(FORECASTERS),
    "zeros": set(FORECASTERS),
    "trend": {
        "holt_winters",
        "quantile_gbm",
        "last_value",
        "seasonal_profile",
        "torch_mlp",
        "auto_arima",
        "auto_ets",
        "mstl",
    },
    "daily_cycle": {
        "seasonal_naive",
        "holt_winters",
        "quantile_gbm",
        "seasonal_profile",
        "torch_mlp",
        "auto_ets",
        "mstl",
    },
    # seasonal_profile lags a shift younger than its profile days (selection then passes it over).
    "level_shift": {"last_value", "holt_winters", "quantile_gbm", "torch_mlp", "auto_arima", "auto_ets"},
    "gaps": {"seasonal_naive", "holt_winters", "quantile_gbm", "seasonal_profile", "torch_mlp", "mstl"},
}


@pytest.mark.parametrize("series_name", list(SERIES))
@pytest.mark.parametrize("fname", list(FORECASTERS))
def test_forecaster_on_constructed_series(series_name, fname):
    values, truth, tol = SERIES[series_name]
    q = FORECASTERS[fname].forecast(values, hourly(len(values)), 6)
    assert q.p50.shape == (6,) and q.p90.shape == (6,)
    assert np.all(np.isfinite(q.p50)) and np.all(q.p90 >= q.p50)
    if values.min() >= 0:
        assert q.p50.min() >= 0
    if fname in MUST_TRACK[series_name]:
        assert np.mean(np.abs(q.p50 - truth)) <= tol, (q.p50, truth)


@pytest.mark.parametrize("fname", list(FORECASTERS))
@pytest.mark.parametrize("n", [1, 2, 5, 30])
def test_short_history_falls_back(fname, n):
    values = np.linspace(1.0, 2.0, n)
    q = FORECASTERS[fname].forecast(values, hourly(n), 3)
    assert q.p50.shape == (3,) and np.all(np.isfinite(q.p90))


def test_seasonal_naive_copies_yesterday_and_falls_back_under_two_days():
    v = daily_cycle(24 * 3)
    q = SeasonalNaive().forecast(v, hourly(len(v)), 30)  # h > season wraps to the last season
    np.testing.assert_allclose(q.p50, v[np.r_[np.arange(48, 72), np.arange(48, 54)]])
    short = daily_cycle(40)
    assert np.all(SeasonalNaive().forecast(short, hourly(40), 3).p50 == short[-1])
    # Without timestamps there is no season: last value.
    assert np.all(SeasonalNaive().forecast(v, None, 3).p50 == v[-1])


def test_seasonal_profile_beats_yesterday_on_noisy_counts_and_p90_covers():
    # Poisson counts around a daily cycle: one day back is mostly noise, a five-day profile is not.
    rng = np.random.default_rng(3)
    n = 24 * 28
    rate = 10 + 200 * (1 + np.sin(2 * np.pi * np.arange(n) / 24)) / 2
    v = rng.poisson(rate).astype(float)
    ts = hourly(n)
    errs = {"seasonal_profile": [], "seasonal_naive": []}
    covered = []
    for o in range(24 * 21, n - 3, 5):
        for name, f in (("seasonal_profile", SeasonalProfile()), ("seasonal_naive", SeasonalNaive())):
            q = f.forecast(v[:o], ts[:o], 3)
            errs[name].append(np.abs(q.p50 - v[o : o + 3]).mean())
            if name == "seasonal_profile":
                covered += list(v[o : o + 3] <= q.p90)
    assert np.mean(errs["seasonal_profile"]) < 0.8 * np.mean(errs["seasonal_naive"])
    assert 0.8 <= np.mean(covered) <= 0.97


def test_seasonal_profile_sees_only_history():
    v = daily_cycle(24 * 10)
    ts = hourly(len(v))
    # Smoothing a profile value must not reach past the origin: a spike in the last row moves the
    # level offset only (by spike / level_rows), not the profile.
    spiked = v.copy()
    spiked[-1] += 600.0
    a = SeasonalProfile().forecast(v, ts, 4)
    b = SeasonalProfile().forecast(spiked, ts, 4)
    np.testing.assert_allclose(b.p50 - a.p50, 600.0 / SeasonalProfile.level_rows)
    # Without timestamps (no daily season): the last value.
    assert np.all(SeasonalProfile().forecast(v, None, 3).p50 == v[-1])


def test_p90_covers_noise():
    rng = np.random.default_rng(1)
    v = 100 + rng.normal(0, 10, 24 * 14)
    q = LastValue().forecast(v, hourly(len(v)), 3)
    assert np.all(q.p90 > q.p50 + 5)  # about 1.28 * sqrt(2) * 10 above


@pytest.mark.parametrize(
    "ts, expected",
    [
        (hourly(24 * 21), (24, 168)),
        (np.arange(0, 14 * 86400, 600.0), (144, 1008)),
        # Open 07:00-21:00 (15 hourly rows) on weekdays only: the season counts rows, not hours.
        (
            np.array([d * 86400 + h * 3600.0 for d in range(35) if (d + 3) % 7 < 5 for h in range(7, 22)]),
            (15, 75),
        ),
        (None, (None, None)),
        (hourly(30), (None, None)),
    ],
)
def test_infer_seasons(ts, expected):
    assert infer_seasons(ts) == expected


def test_carry_forward():
    out = carry_forward(np.array([np.nan, 2.0, np.nan, np.nan, 5.0, np.nan]))
    np.testing.assert_array_equal(out, [2, 2, 2, 2, 5, 5])


def test_read_csv_gaps_and_errors(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("ts,v\n0,1\n600,\n1200,3\n1800,nan\n")
    s = read_series_csv(p)
    np.testing.assert_array_equal(s.values, [1, 1, 3, 3])
    np.testing.assert_array_equal(s.timestamps_s, [0, 600, 1200, 1800])
    iso = tmp_path / "iso.csv"
    iso.write_text("DateTime,Calls\n2003-03-03T07:00:00Z,1\n2003-03-03T07:05:00Z,2\n")
    assert read_series_csv(iso).timestamps_s[1] - read_series_csv(iso).timestamps_s[0] == 300
    with pytest.raises(SeriesInputError, match=r"s\.csv: no column 'x'"):
        read_series_csv(p, value_col="x")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,v\n0,1\n600,abc\n")
    with pytest.raises(SeriesInputError, match=r"bad\.csv:3: value 'abc'"):
        read_series_csv(bad)


def with_outages(n: int, run_rows: int, starts: list[int]) -> np.ndarray:
    v = np.full(n, 100.0)
    for s in starts:
        v[s : s + run_rows] = 0.0
    return v


@pytest.mark.parametrize(
    "values, expected_p50",
    [
        # Past outages lasted 3 rows; the history ends 1 row into one: 2 more zero rows, then back.
        (with_outages(200, 3, [50, 100, 150, 199]), [0.0, 0.0, 100.0, 100.0]),
        # History ends 3 rows into an outage, as long as any seen: expected to end now.
        (with_outages(200, 3, [50, 100, 150, 197]), [100.0] * 4),
        # An outage longer than any seen before persists.
        (with_outages(200, 2, [50, 100, 150]).tolist()[:-4] + [0.0] * 4, [0.0] * 4),
        # Outages in the past do not drag the level down once the series is back.
        (with_outages(200, 3, [50, 100, 150]), [100.0] * 4),
    ],
)
def test_outage_aware(values, expected_p50):
    q = OutageAware(LastValue()).forecast(np.array(values), None, 4)
    np.testing.assert_allclose(q.p50, expected_p50)
    assert np.all(q.p90 >= q.p50)


def test_outage_aware_keeps_all_zero_series():
    q = OutageAware(HoltWinters()).forecast(np.zeros(100), None, 3)
    np.testing.assert_array_equal(q.p50, 0.0)


def test_torch_forecaster_is_deterministic_and_its_p90_is_calibrated():
    rng = np.random.default_rng(5)
    n = 24 * 28
    v = rng.poisson(50 + 30 * np.sin(2 * np.pi * np.arange(n) / 24)).astype(float)
    ts = hourly(n)
    f = TorchQuantileMLP(epochs=120)
    a, b = f.forecast(v[:-24], ts[:-24], 3), f.forecast(v[:-24], ts[:-24], 3)
    np.testing.assert_array_equal(a.p50, b.p50)
    np.testing.assert_array_equal(a.p90, b.p90)
    covered = []
    for o in range(n - 24, n - 3, 3):
        q = f.forecast(v[:o], ts[:o], 3)
        covered += list(v[o : o + 3] <= q.p90)
    assert 0.6 <= np.mean(covered) <= 1.0  # 21 points: a loose band


@pytest.mark.parametrize("kind", ["auto_arima", "auto_ets", "mstl"])
def test_anchor_without_a_usable_history_answers_with_the_last_value(kind):
    q = StatsAnchor(kind).forecast(np.array([3.0, 4.0, 5.0]), hourly(3), 2)
    np.testing.assert_array_equal(q.p50, [5.0, 5.0])
    with pytest.raises(ValueError, match="unknown statsforecast anchor"):
        StatsAnchor("prophet")
