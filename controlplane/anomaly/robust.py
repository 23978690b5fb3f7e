"""Seasonal-aware robust univariate detector, vectorised across series.

Two expectations per series, each with its own robust spread (EWMA of winsorised |residual|):
  * level: a Huber-clipped EWMA of the recent values (follows slow drift, ignores single spikes);
  * daily: an EWMA per time-of-day bin (48 bins of 30 min), once a bin has been seen.
The one that has predicted the series better (smaller spread) gives the residual, so a daily cycle
is not an anomaly but a missed daily peak is. A run of same-side large residuals is a level shift:
the level re-anchors to the new value, so a shift alerts once instead of flooding.

Pure: `step(state, values, now_s, params) -> (state, RobustOutput)`; the caller keeps the state.
A score at t depends only on values up to t (it is a left fold over the series).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DAY_S = 86_400.0


@dataclass(frozen=True)
class RobustParams:
    level_alpha: float = 0.1  # weight of a new value in the level (per sample)
    spread_alpha: float = 0.02  # weight of a new |residual| in the spread (per sample)
    clip_sigmas: float = 4.0  # residuals are winsorised at this many spreads before updating
    season_bins: int = 48  # time-of-day bins (30 min each)
    season_alpha: float = 0.3  # weight of a new value in its time-of-day bin (per visit)
    surprise_sigmas: float = 4.0  # a residual beyond this many spreads is a "miss" of a model
    miss_alpha: float = 0.002  # weight of a new sample in each model's miss rate
    season_advantage_ratio: float = 0.5  # daily model used when its miss rate < this * level's
    shift_run: int = 4  # same-side residuals beyond shift_sigmas in a row = level shift
    shift_sigmas: float = 3.0
    warmup_samples: int = 12  # no score until the spread has seen this many samples
    min_spread_ratio: float = 1e-3  # spread floor, relative to |level| (flat lines have zero spread)
    min_spread_abs: float = 1e-9


@dataclass(frozen=True)
class RobustState:
    n: np.ndarray  # samples seen per series
    level: np.ndarray
    level_spread: np.ndarray
    season: np.ndarray  # [series, bins]
    season_seen: np.ndarray  # [series, bins] visits
    season_spread: np.ndarray
    first_s: np.ndarray  # time of the first sample (the daily model needs a day behind it)
    level_miss: np.ndarray  # EWMA of "residual beyond surprise_sigmas" per model
    season_miss: np.ndarray
    run: np.ndarray  # signed count of consecutive large residuals (+ above, - below)


@dataclass(frozen=True)
class RobustOutput:
    z: np.ndarray  # |residual| / spread, 0 during warm-up
    signed_z: np.ndarray
    expected: np.ndarray
    spread: np.ndarray
    seasonal: np.ndarray  # bool: the daily model gave the residual
    shifted: np.ndarray  # bool: the level re-anchored on this sample


def init_state(n_series: int, params: RobustParams = RobustParams()) -> RobustState:
    z = np.zeros(n_series)
    return RobustState(
        n=np.zeros(n_series, dtype=np.int64),
        level=z.copy(),
        level_spread=z.copy(),
        season=np.zeros((n_series, params.season_bins)),
        season_seen=np.zeros((n_series, params.season_bins), dtype=np.int64),
        season_spread=z.copy(),
        first_s=z.copy(),
        level_miss=z.copy(),
        season_miss=z.copy(),
        run=np.zeros(n_series, dtype=np.int64),
    )


def step(
    state: RobustState,
    values: np.ndarray,
    now_s: np.ndarray | float,
    params: RobustParams = RobustParams(),
    mask: np.ndarray | None = None,
) -> tuple[RobustState, RobustOutput]:
    """One sample per series (NaN or mask False = no sample: state unchanged, z 0)."""
    x = np.asarray(values, dtype=float)
    ok = np.isfinite(x) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(x))
    x = np.where(ok, x, 0.0)
    rows = np.arange(x.size)
    now = np.broadcast_to(np.asarray(now_s, dtype=float), x.shape)
    b = (np.floor((now % DAY_S) / (DAY_S / params.season_bins))).astype(np.int64) % params.season_bins
    first = ok & (state.n == 0)
    first_s = np.where(first, now, state.first_s)
    mature = (now - first_s) >= DAY_S  # every bin has been seen on an earlier day
    level = np.where(first, x, state.level)
    floor = np.maximum(params.min_spread_ratio * np.abs(level), params.min_spread_abs)

    # Residuals against both expectations (before updating with x).
    r_level = x - level
    s_level = np.maximum(state.level_spread, floor)
    seen = state.season_seen[rows, b]
    r_season = x - state.season[rows, b]
    # The daily model's spread starts from the level model's (not from zero, which would count
    # every early seasonal residual as a miss).
    season_spread0 = np.where(state.season_spread > 0, state.season_spread, state.level_spread)
    s_season = np.maximum(season_spread0, floor)
    # The daily model speaks when it has missed clearly less often than the level model.
    use_season = (
        mature
        & (seen > 0)
        & (state.level_miss > 0)
        & (state.season_miss < params.season_advantage_ratio * state.level_miss)
    )
    r = np.where(use_season, r_season, r_level)
    s = np.where(use_season, s_season, s_level)
    expected = x - r
    warm = ok & (state.n >= params.warmup_samples)
    signed_z = np.where(warm, r / s, 0.0)

    # Level shift: a run of large residuals on one side re-anchors the level (and its bin).
    big = np.abs(r_level) > params.shift_sigmas * s_level
    sign = np.sign(r_level).astype(np.int64)
    run = np.where(big & (np.sign(state.run) == sign), state.run + sign, np.where(big, sign, 0))
    run = np.where(ok, run, state.run)
    shifted = ok & (np.abs(run) >= params.shift_run)

    # Updates (winsorised so a spike moves neither the level nor the spread much).
    clip = params.clip_sigmas * s_level
    new_level = level + params.level_alpha * np.clip(r_level, -clip, clip)
    new_level = np.where(shifted, x, new_level)
    upd_level_spread = state.level_spread + params.spread_alpha * (
        np.minimum(np.abs(r_level), clip) - state.level_spread
    )
    # The first residuals seed the spread quickly (a plain mean over the warm-up).
    warm_w = 1.0 / np.maximum(state.n, 1)
    seed = state.level_spread + warm_w * (np.abs(r_level) - state.level_spread)
    new_level_spread = np.where(state.n < params.warmup_samples, seed, upd_level_spread)

    clip_s = params.clip_sigmas * s_season
    r_season_c = np.where(seen > 0, np.clip(r_season, -clip_s, clip_s), 0.0)
    new_season_spread = np.where(
        mature & (seen > 0),
        season_spread0 + params.spread_alpha * (np.abs(r_season_c) - season_spread0),
        state.season_spread,
    )
    season = state.season.copy()
    season_seen = state.season_seen.copy()
    cur = season[rows, b]
    upd = np.where(seen > 0, cur + params.season_alpha * r_season_c, x)
    upd = np.where(shifted, x, upd)
    season[rows[ok], b[ok]] = upd[ok]
    season_seen[rows[ok], b[ok]] += 1

    level_missed = (np.abs(r_level) > params.surprise_sigmas * s_level).astype(float)
    season_missed = (np.abs(r_season) > params.surprise_sigmas * s_season).astype(float)
    live = ok & (state.n >= params.warmup_samples)
    level_miss = state.level_miss + params.miss_alpha * (level_missed - state.level_miss)
    season_miss = np.where(
        mature & (seen > 0),
        state.season_miss + params.miss_alpha * (season_missed - state.season_miss),
        state.season_miss,
    )
    new = replace(
        state,
        first_s=first_s,
        level_miss=np.where(live, level_miss, state.level_miss),
        season_miss=np.where(live, season_miss, state.season_miss),
        n=state.n + ok,
        level=np.where(ok, new_level, state.level),
        level_spread=np.where(ok & ~first, new_level_spread, state.level_spread),
        season=season,
        season_seen=season_seen,
        season_spread=np.where(ok, new_season_spread, state.season_spread),
        run=np.where(shifted, 0, run),
    )
    out = RobustOutput(
        z=np.abs(signed_z),
        signed_z=signed_z,
        expected=expected,
        spread=s,
        seasonal=use_season & ok,
        shifted=shifted,
    )
    return new, out
