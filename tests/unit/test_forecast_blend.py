"""The blend of cheap forecasters: its backcasts, its weights, its conformal p90, and selection."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.forecast import backcasts as bc
from controlplane.forecast.blend import Blend, conformal_offset, greedy_weights
from controlplane.forecast.forecasters import HoltWinters, OutageAware, SeasonalProfile
from controlplane.forecast.registry import Score, select
from controlplane.forecast.series import carry_forward

HOUR_S = 3600.0
N = 24 * 28  # four weeks of hourly rows


def hourly(n: int) -> np.ndarray:
    return np.arange(n) * HOUR_S


def cycle(n: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 + 50 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, noise, n)


def with_gaps(v: np.ndarray) -> np.ndarray:
    g = v.copy()
    for start in range(40, len(v) - 30, 97):
        g[start : start + 5] = np.nan
    return carry_forward(g)


def intermittent(n: int, seed: int = 0) -> np.ndarray:
    """Mostly zero buckets with isolated bursts, like requests of a code assistant per 10 s."""
    rng = np.random.default_rng(seed)
    v = np.zeros(n)
    v[rng.choice(n, size=n // 8, replace=False)] = rng.integers(20, 150, size=n // 8)
    return v


# name: (history + 6 future rows, tolerance on the p50 MAE over those rows)
SERIES = {
    "trend": (np.arange(N + 6, dtype=float), 3.0),
    "daily_cycle": (cycle(N + 6), 3.0),
    "noisy_daily_cycle": (cycle(N + 6, noise=8.0), 12.0),
    "level_shift": (np.r_[np.full(N - 50, 10.0), np.full(56, 60.0)], 2.0),
    "gaps": (with_gaps(cycle(N + 6)), 8.0),
    "zeros": (np.zeros(N + 6), 1e-9),
}


@pytest.mark.parametrize("name", list(SERIES))
def test_blend_tracks_constructed_series(name):
    v, tol = SERIES[name]
    hist, truth = v[:-6], v[-6:]
    q = Blend().forecast(hist, hourly(len(hist)), 6)
    assert q.p50.shape == (6,) and np.all(np.isfinite(q.p90)) and np.all(q.p90 >= q.p50)
    assert np.mean(np.abs(q.p50 - truth)) <= tol, (q.p50, truth)


def test_blend_on_intermittent_counts_forecasts_zero_and_p90_above():
    # MAE is minimised by the median, which is 0 for mostly-empty buckets: a burst in the last row
    # must not be carried forward.
    v = intermittent(600)
    v[-1] = 120.0
    q = Blend().forecast(v, np.arange(600) * 10.0, 6)
    np.testing.assert_array_equal(q.p50, 0.0)
    assert np.all(q.p90 > 0)


@pytest.mark.parametrize("n", [1, 5, 40, 80])
def test_blend_short_history_answers(n):
    v = np.linspace(1.0, 2.0, n)
    q = Blend().forecast(v, hourly(n), 3)
    assert q.p50.shape == (3,) and np.all(np.isfinite(q.p90))


@pytest.mark.parametrize(
    "backcast, forecaster",
    [(bc.seasonal_profile, SeasonalProfile()), (bc.holt_winters, HoltWinters())],
)
def test_backcast_at_the_end_is_the_forecasters_own_forecast(backcast, forecaster):
    v = cycle(24 * 15, noise=5.0)
    ts = hourly(len(v))
    out = backcast(v, ts, np.array([len(v)]), 4)
    np.testing.assert_allclose(out[0], forecaster.forecast(v, ts, 4).p50, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "backcast",
    [bc.last_value, bc.window_mean(6), bc.smoothed_level(0.3), bc.window_median(30), bc.seasonal_profile],
)
def test_backcasts_see_only_rows_before_each_origin(backcast):
    v = cycle(24 * 15, noise=5.0)
    ts = hourly(len(v))
    origins = np.array([24 * 10, 24 * 12 + 5])
    before = backcast(v, ts, origins, 3)
    changed = v.copy()
    changed[origins[0] :] += 1000.0  # everything from the first origin on
    after = backcast(changed, ts, origins[:1], 3)
    np.testing.assert_allclose(after[0], before[0])


@pytest.mark.parametrize(
    "backcast, expected",
    [
        (bc.last_value, [9.0, 9.0]),
        (bc.window_mean(3), [8.0, 8.0]),
        (bc.window_median(4), [7.5, 7.5]),
        # level 0 at row 0, then 0.5 * y + 0.5 * level: 0.5, 1.25, 2.125 after rows 1..3
        (bc.smoothed_level(0.5), [2.125, 2.125]),
    ],
)
def test_simple_backcasts_by_hand(backcast, expected):
    v = np.arange(20.0)
    origin = 4 if backcast.__name__.startswith("ses") else 10
    np.testing.assert_allclose(backcast(v, None, np.array([origin]), 2)[0], expected)


@pytest.mark.parametrize(
    "preds, actual, expected",
    [
        # The exact member gets all the weight.
        ([[1, 5], [2, 6], [3, 7]], [5, 6, 7], [0.0, 1.0]),
        # Errors of opposite sign: the even mix cancels them.
        ([[0, 10], [0, 10], [0, 10]], [5, 5, 5], [0.5, 0.5]),
    ],
)
def test_greedy_weights(preds, actual, expected):
    w = greedy_weights(np.array(preds, dtype=float), np.array(actual, dtype=float), rounds=10)
    np.testing.assert_allclose(w, expected)
    assert w.sum() == pytest.approx(1.0)


def test_greedy_weights_follow_the_recent_origins():
    # Member 0 was right long ago, member 1 recently: recency weights pick member 1.
    preds = np.array([[0.0, 1.0]] * 100)
    actual = np.r_[np.zeros(60), np.ones(40)]
    assert greedy_weights(preds, actual, 10)[0] == 1.0
    recent = 0.5 ** ((99 - np.arange(100)) / 5)
    assert greedy_weights(preds, actual, 10, recent)[1] == 1.0


def test_conformal_p90_covers_iid_noise():
    rng = np.random.default_rng(2)
    res = rng.normal(0, 1, 400)
    off = conformal_offset(res, 0.9)
    fresh = rng.normal(0, 1, 20000)
    assert 0.87 <= np.mean(fresh <= off) <= 0.93


def test_blend_p90_is_calibrated_on_noisy_counts():
    rng = np.random.default_rng(4)
    n = 24 * 35
    v = rng.poisson(20 + 100 * (1 + np.sin(2 * np.pi * np.arange(n) / 24)) / 2).astype(float)
    ts = hourly(n)
    covered = []
    for o in range(24 * 28, n - 3, 4):
        q = Blend().forecast(v[:o], ts[:o], 3)
        covered += list(v[o : o + 3] <= q.p90)
    assert 0.8 <= np.mean(covered) <= 0.97


def test_outage_aware_blend_ignores_past_outages():
    v = np.full(600, 100.0)
    for s in (100, 300, 500):
        v[s : s + 4] = 0.0
    q = OutageAware(Blend()).forecast(v, None, 3)
    np.testing.assert_allclose(q.p50, 100.0)


def score(mae: float, coverage: float = 0.9) -> Score:
    return Score(mae=mae, rel_mae=1.0, mae_by_step=[mae], pinball_p90=0.0, p90_coverage=coverage)


@pytest.mark.parametrize(
    "maes, expected",
    [
        ({"last_value": 10.0, "blend": 10.4}, "blend"),  # within 5%: the blend
        ({"last_value": 10.0, "blend": 10.6}, "last_value"),  # clearly beaten
        ({"last_value": 10.0, "blend": 9.0}, "blend"),
        ({"last_value": 10.0, "holt_winters": 10.0}, "last_value"),  # ties: registry order
        # Near ties: a calibrated p90 wins over a too-wide or too-narrow one ...
        ({"auto_ets": (10.0, 1.0), "last_value": (10.3, 0.92)}, "last_value"),
        ({"blend": (10.2, 0.7), "holt_winters": (10.4, 0.9), "mstl": (10.0, 1.0)}, "holt_winters"),
        # ... but not over a clearly lower MAE; with nothing calibrated, MAE and the blend decide.
        ({"auto_ets": (10.0, 1.0), "last_value": (11.0, 0.92)}, "auto_ets"),
        ({"blend": (10.4, 0.7), "mstl": (10.0, 1.0)}, "blend"),
    ],
)
def test_selection_prefers_the_blend_and_a_calibrated_p90_within_tolerance(maes, expected):
    scores = {k: score(*v) if isinstance(v, tuple) else score(v) for k, v in maes.items()}
    assert select(scores) == expected


def test_blend_p90_widens_when_the_series_turns_bursty():
    rng = np.random.default_rng(6)
    calm = 100 + rng.normal(0, 1, 800)
    bursty = calm.copy()
    bursty[-30:] = 100 + rng.normal(0, 20, 30)
    width = {}
    for name, v in (("calm", calm), ("bursty", bursty)):
        q = Blend().forecast(v, None, 3)
        width[name] = float(np.mean(q.p90 - q.p50))
    assert width["bursty"] > 5 * width["calm"]
