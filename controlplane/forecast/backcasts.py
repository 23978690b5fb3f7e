"""Backcasts: what a cheap forecaster would have said at many past origins, in one vectorised pass.

`backcast(y, ts, origins, H)` returns an (len(origins), H) array whose row i is the p50 forecast of
y[o .. o+H-1] made from y[:o], o = origins[i]; the origin len(y) gives today's forecast. They feed
the blend's weights and its conformal p90 with thousands of inner origins at the cost of one fit.
Holt-Winters is fitted once on the whole history (its smoothing parameters see the future of old
origins; its states do not): a small optimism the conformal window absorbs.
"""

from __future__ import annotations

import numpy as np

from controlplane.forecast.forecasters import HoltWinters, SeasonalProfile, _centered_mean, _cycle_mean
from controlplane.forecast.series import infer_seasons


def last_value(y: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray:
    return np.repeat(y[origins - 1][:, None], H, axis=1)


def window_mean(rows: int):
    """Mean of the last `rows` rows: averages out count noise when the level is stable."""

    def backcast(y: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray:
        c = np.r_[0.0, np.cumsum(y)]
        lo = np.maximum(origins - rows, 0)
        m = (c[origins] - c[lo]) / (origins - lo)
        return np.repeat(m[:, None], H, axis=1)

    backcast.__name__ = f"mean_{rows}"
    return backcast


def window_median(rows: int):
    """Median of the last `rows` rows: the level of an intermittent series (mostly zeros) that
    a single burst does not move."""

    def backcast(y: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray:
        pad = np.r_[np.full(rows, y[0]), y]
        win = np.lib.stride_tricks.sliding_window_view(pad, rows)  # win[j] = pad[j : j + rows]
        m = np.median(win[origins], axis=1)  # pad[o : o + rows] = y[o - rows : o]
        return np.repeat(m[:, None], H, axis=1)

    backcast.__name__ = f"median_{rows}"
    return backcast


def profile(season: str = "daily", cycles: int = 5, level_rows: int = 6):
    """Seasonal profile (mean of the same phase over the last `cycles` seasons, smoothed over its
    neighbours) plus the mean deviation of the last `level_rows` rows from their own profile: the
    backcast form of SeasonalProfile, with the season and the averaging as parameters."""

    def backcast(y: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray | None:
        daily, weekly = infer_seasons(ts)
        m = daily if season == "daily" else weekly
        half = SeasonalProfile()._smooth_half_rows(m) if m else 0
        if m is None or m <= H + half or origins.min() < 2 * m + level_rows:
            return None
        s = _centered_mean(y, half)
        # Profile values near the newest origin are smoothed over rows up to `half` after it, but
        # only values a season or more back are used, and m > H + half: no row at or after the
        # origin enters.
        dev = np.zeros(len(origins))
        for j in range(1, level_rows + 1):
            dev += y[origins - j] - _cycle_mean(s, m, cycles, origins - j)
        dev /= level_rows
        out = np.empty((len(origins), H))
        for h in range(1, H + 1):
            out[:, h - 1] = _cycle_mean(s, m, cycles, origins - 1 + h) + dev
        return out

    backcast.__name__ = f"profile_{season}_{cycles}x{level_rows}"
    return backcast


seasonal_profile = profile()  # SeasonalProfile's settings


def min_origin(ts) -> int:
    """First inner origin at which the daily seasonal backcasts answer (two seasons plus their
    level rows, with a margin); 31 without a daily season (past window_median's 30 rows)."""
    daily, _ = infer_seasons(ts)
    return 2 * daily + 24 if daily else 31


def holt_winters(y_all: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray | None:
    """Damped additive Holt-Winters fitted once on the history; None when too short."""
    hw = HoltWinters()
    if len(y_all) < 3:
        return None
    off = max(0, len(y_all) - hw.fit_window)
    y = y_all[off:]
    if origins.min() - off < 2:
        return None
    m = hw.season_rows(y, ts)
    if m > 1 and H > m:
        return None
    _, level, trend, season = hw.fit_best(y, m)
    damp = np.cumsum(hw.phi ** np.arange(1, H + 1))
    t = origins - off - 1  # state after the last row seen
    out = np.empty((len(origins), H))
    for h in range(1, H + 1):
        pred = level[t] + damp[h - 1] * trend[t]
        if m > 1:
            pred = pred + season[t + h]  # season[t + h] was last updated one season before t + h
        out[:, h - 1] = pred
    return out


def smoothed_level(alpha: float):
    """Simple exponential smoothing: a level that follows shifts yet averages out row noise."""

    def backcast(y: np.ndarray, ts, origins: np.ndarray, H: int) -> np.ndarray:
        from scipy.signal import lfilter  # noqa: PLC0415

        # level[t] = alpha * y[t] + (1 - alpha) * level[t - 1], started at y[0]
        level, _ = lfilter([alpha], [1.0, alpha - 1.0], y, zi=[(1 - alpha) * y[0]])
        return np.repeat(level[origins - 1][:, None], H, axis=1)

    backcast.__name__ = f"ses_{alpha:g}"
    return backcast
