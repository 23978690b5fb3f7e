"""Forecasters: pure functions of (history values, history timestamps, horizon) -> quantiles.

Each one falls back to something simpler when the history is too short for it, so every
forecaster answers for every series. p90 comes from the forecaster's own h-step errors on its
history (empirical residual quantiles) or, for the gradient-boosting model, from a quantile loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controlplane.forecast.series import DAY_S, infer_seasons

P90 = 0.9
# In-sample h-step errors used for the empirical p90 offsets (most recent ones).
RESIDUAL_WINDOW = 2000


@dataclass(frozen=True)
class Quantiles:
    p50: np.ndarray  # one value per horizon step 1..H
    p90: np.ndarray


def _finish(history: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> Quantiles:
    """Load is never negative when the history is not; p90 is never below p50."""
    p50 = np.asarray(p50, dtype=float)
    p90 = np.maximum(np.asarray(p90, dtype=float), p50)
    if len(history) and history.min() >= 0:
        p50 = np.maximum(p50, 0.0)
        p90 = np.maximum(p90, p50)
    return Quantiles(p50=p50, p90=p90)


def _lagged_error_quantile(y: np.ndarray, h: int, lag: int, q: float) -> float:
    """Quantile of y[t] - y[t - lag] over recent t: the h-step error of a naive forecast
    that copies the value `lag` rows back (lag >= h)."""
    if len(y) <= lag:
        return 0.0
    err = y[lag:] - y[:-lag]
    return float(np.quantile(err[-RESIDUAL_WINDOW:], q))


class LastValue:
    name = "last_value"

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y = np.asarray(values, dtype=float)
        p50 = np.full(horizon_steps, y[-1])
        off = np.array([_lagged_error_quantile(y, h, h, P90) for h in range(1, horizon_steps + 1)])
        return _finish(y, p50, p50 + off)


class SeasonalNaive:
    """Value one season back (daily or weekly, in rows inferred from the timestamps); the last
    value when the history holds fewer than two seasons."""

    def __init__(self, season: str = "daily") -> None:
        self.season = season
        self.name = "seasonal_naive" if season == "daily" else f"seasonal_naive_{season}"

    def season_rows(self, values: np.ndarray, timestamps_s: np.ndarray | None) -> int | None:
        daily, weekly = infer_seasons(timestamps_s)
        m = daily if self.season == "daily" else weekly
        if m is None or len(values) < 2 * m:
            return None
        return m

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y = np.asarray(values, dtype=float)
        m = self.season_rows(y, timestamps_s)
        if m is None:
            return LastValue().forecast(y, timestamps_s, horizon_steps)
        n = len(y)
        steps = np.arange(1, horizon_steps + 1)
        # For h > m, wrap to the same phase in the most recent season.
        src = n - 1 + steps - m * np.ceil(steps / m).astype(int)
        p50 = y[src]
        off = np.array([_lagged_error_quantile(y, h, m, P90) for h in steps])
        return _finish(y, p50, p50 + off)


class HoltWinters:
    """Additive Holt-Winters with a damped trend (ETS(A,Ad,A)); parameters chosen from a small grid
    by one-step squared error on the recent history. Without two daily seasons: damped Holt."""

    name = "holt_winters"
    fit_window = 3000  # rows: older data only costs time
    phi = 0.95
    grid = [(a, b, g) for a in (0.1, 0.3, 0.6, 0.9) for b in (0.0, 0.1) for g in (0.05, 0.2)]

    def season_rows(self, y: np.ndarray, timestamps_s) -> int:
        """The daily season in rows when the history holds two of them, else 1 (damped Holt)."""
        daily, _ = infer_seasons(timestamps_s)
        return daily if daily is not None and len(y) >= 2 * daily else 1

    def fit_best(self, y: np.ndarray, m: int):
        """(sse, level, trend, season) of the grid point with the least one-step error."""
        grid = self.grid if m > 1 else [p for p in self.grid if p[2] == self.grid[0][2]]
        best = None
        for a, b, g in grid:
            run = self._run(y, m, a, b, g)
            if best is None or run[0] < best[0]:
                best = run
        return best

    def _run(self, y: np.ndarray, m: int, a: float, b: float, g: float):
        n = len(y)
        phi = self.phi
        level = np.empty(n)
        trend = np.empty(n)
        season = np.empty(n + m)
        if m > 1:
            # Trend from the first two seasons' means; the first season detrended.
            lv = y[:m].mean()
            tr = (y[m : 2 * m].mean() - lv) / m if n >= 2 * m else 0.0
            season[:m] = y[:m] - (lv + tr * (np.arange(m) - (m - 1) / 2))
            lv = lv + tr * (m - 1) / 2 - tr * m  # so that step 0 predicts level + trend + season
        else:
            lv = y[0]
            tr = 0.0
            season[:1] = 0.0
        sse = 0.0
        for t in range(n):
            s = season[t] if m > 1 else 0.0
            pred = lv + phi * tr + s
            e = y[t] - pred
            if t >= m:
                sse += e * e
            new_lv = lv + phi * tr + a * e
            tr = phi * tr + a * b * e
            lv = new_lv
            if m > 1:
                season[t + m] = s + g * (1 - a) * e
            level[t] = lv
            trend[t] = tr
        return sse, level, trend, season

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y_all = np.asarray(values, dtype=float)
        if len(y_all) < 3:
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        y = y_all[-self.fit_window :]
        m = self.season_rows(y, timestamps_s)
        _, level, trend, season = self.fit_best(y, m)
        n = len(y)
        H = horizon_steps
        damp = np.cumsum(self.phi ** np.arange(1, H + 1))  # sum_{i<=h} phi^i
        # Point forecasts from every in-sample time t: used for the p90 offsets per step.
        t = np.arange(max(m, 1), n - 1)
        steps = np.arange(1, H + 1)
        p50 = level[-1] + damp * trend[-1]
        if m > 1:
            p50 = p50 + season[n + (steps - 1) % m]  # season[n + k] was last updated one season ago
        offsets = np.zeros(H)
        for h in steps:
            tt = t[t + h < n][-RESIDUAL_WINDOW:]
            if len(tt) < 10:
                continue
            pred = level[tt] + damp[h - 1] * trend[tt] + (season[tt + h] if m > 1 else 0.0)
            offsets[h - 1] = np.quantile(y[tt + h] - pred, P90)
        return _finish(y, p50, p50 + offsets)


class QuantileGBM:
    """Direct multi-horizon gradient boosting (scikit-learn HistGradientBoostingRegressor, quantile
    loss) on lags, seasonal lags and calendar features. One model per quantile with the step h as a
    feature; the target is the change from the last value, so level shifts carry over at once.
    Falls back to the seasonal naive when the history is too short to train on."""

    name = "quantile_gbm"
    max_train_origins = 2500
    min_train_origins = 200
    diff_lags = (1, 2, 3, 6, 12)

    def __init__(self, max_iter: int = 120, learning_rate: float = 0.08, seed: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.seed = seed

    def _features(self, y, ts, origins, h, daily, weekly):
        """Rows for forecasting y[o - 1 + h] from y[:o], for each origin o."""
        last = y[origins - 1]
        cols = [np.full(len(origins), float(h)), last]
        for k in self.diff_lags:
            cols.append(last - y[origins - 1 - k])
        win = np.stack([y[origins - 1 - k] for k in range(6)])
        cols.append(win.std(axis=0))
        for m in (daily, weekly):
            if m is None:
                continue
            same_now = y[origins - 1 - m]
            same_target = y[origins - 1 + h - m]
            cols += [same_target - last, same_now - last, same_target - same_now]
        if ts is not None:
            # Time of day of the target row: the row one season before it has the same phase.
            tod_ts = ts[origins - 1 + h - daily] + DAY_S if daily is not None else ts[origins - 1]
            tod = (tod_ts % DAY_S) / DAY_S
            cols += [np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod)]
            cols.append(((np.floor(ts[origins - 1] / DAY_S) + 3) % 7).astype(float))
        return np.column_stack(cols)

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: PLC0415 (slow import)
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        y = np.asarray(values, dtype=float)
        ts = None if timestamps_s is None else np.asarray(timestamps_s, dtype=float)
        n = len(y)
        H = horizon_steps
        daily, weekly = infer_seasons(ts)
        if daily is not None and n < 2 * daily + self.min_train_origins + H:
            daily = weekly = None
        if weekly is not None and n < weekly + self.min_train_origins + H + 12:
            weekly = None
        need = max([13, 6] + [m for m in (daily, weekly) if m is not None])
        first = max(need + 1, n - H + 1 - self.max_train_origins)
        train_origins = np.arange(first, n - H + 1)
        if len(train_origins) < self.min_train_origins:
            return SeasonalNaive().forecast(y, ts, H)
        X = np.vstack([self._features(y, ts, train_origins, h, daily, weekly) for h in range(1, H + 1)])
        target = np.concatenate([y[train_origins - 1 + h] - y[train_origins - 1] for h in range(1, H + 1)])
        Xq = np.vstack([self._features(y, ts, np.array([n]), h, daily, weekly) for h in range(1, H + 1)])
        preds = {}
        # One OpenMP thread: these fits are small, and on a busy machine (other fits, a backtest
        # beside the live loop) all-core OpenMP spins made one fit take 30x longer. The limit applies to
        # OpenMP runtimes already loaded: sklearn is imported above.
        with threadpool_limits(limits=1, user_api="openmp"):
            for q in (0.5, P90):
                preds[q] = y[-1] + self._fit_predict(HistGradientBoostingRegressor, X, target, Xq, q)
        return _finish(y, preds[0.5], preds[P90])

    def _fit_predict(self, model_cls, X, target, Xq, q: float) -> np.ndarray:
        model = model_cls(
            loss="quantile",
            quantile=q,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            random_state=self.seed,
        )
        model.fit(X, target)
        return model.predict(Xq)


class MedianEnsemble:
    """Median (or mean) of the members' p50 and p90 per step: the median is robust to one member
    going wrong; the mean of two averages out their independent errors."""

    def __init__(self, members: list, name: str = "ensemble", how: str = "median") -> None:
        self.members = members
        self.name = name
        self.combine = np.median if how == "median" else np.mean

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        outs = [m.forecast(values, timestamps_s, horizon_steps) for m in self.members]
        y = np.asarray(values, dtype=float)
        return _finish(
            y,
            self.combine([o.p50 for o in outs], axis=0),
            self.combine([o.p90 for o in outs], axis=0),
        )


class OutageAware:
    """Wraps a forecaster for series with outage windows (runs of zeros in an otherwise busy series,
    like ServeGen's): the base model sees outage rows carried forward, so a dropout does not drag its
    level or seasons down; while the history ends inside an outage, step h is forecast as zero when
    past outages that lasted this long mostly lasted h more rows (Laplace-smoothed survival, so an
    outage longer than any seen before is expected to persist)."""

    def __init__(self, base, outage_ratio: float = 0.01) -> None:
        self.base = base
        self.name = base.name
        self.outage_ratio = outage_ratio

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y = np.asarray(values, dtype=float)
        typical = float(np.median(y[-RESIDUAL_WINDOW:])) if len(y) else 0.0
        out = y <= self.outage_ratio * typical if typical > 0 else np.zeros(len(y), dtype=bool)
        if not out.any() or out.all():
            return self.base.forecast(y, timestamps_s, horizon_steps)
        cleaned = y.copy()
        cleaned[out] = np.nan
        idx = np.where(~out, np.arange(len(y)), -1)
        np.maximum.accumulate(idx, out=idx)
        first_ok = int(np.argmax(~out))
        cleaned = np.where(idx >= 0, y[np.maximum(idx, 0)], y[first_ok])
        q = self.base.forecast(cleaned, timestamps_s, horizon_steps)
        if not out[-1]:
            return q
        # Lengths of the finished outage runs, and the current one's length so far.
        edges = np.diff(np.r_[0, out.astype(int), 0])
        starts, ends = np.where(edges == 1)[0], np.where(edges == -1)[0]
        runs = ends - starts
        k = int(runs[-1])
        done = runs[:-1]
        reached = done[done >= k]
        p50, p90 = q.p50.copy(), q.p90.copy()
        for h in range(1, horizon_steps + 1):
            # Laplace-smoothed survival: with no past outage this long, persistence (even odds) wins.
            still = (float(np.sum(reached >= k + h)) + 1.0) / (len(reached) + 2.0)
            if still >= 0.5:
                p50[h - 1] = 0.0
            if still >= P90:
                p90[h - 1] = 0.0
        return _finish(y, p50, p90)


def _centered_mean(y: np.ndarray, half_rows: int) -> np.ndarray:
    """Moving average over 2*half_rows + 1 rows centred on each row (edges padded with the edge
    value): the noise of single rows out of a seasonal profile."""
    if half_rows <= 0:
        return y.copy()
    kernel = np.full(2 * half_rows + 1, 1.0 / (2 * half_rows + 1))
    return np.convolve(np.pad(y, half_rows, mode="edge"), kernel, mode="valid")


def _cycle_mean(s: np.ndarray, m: int, cycles: int, t: np.ndarray) -> np.ndarray:
    """Mean of s[t - k*m] over k = 1..cycles (the same phase in the previous cycles that exist)."""
    acc = np.zeros(len(t))
    cnt = np.zeros(len(t))
    for k in range(1, cycles + 1):
        i = t - k * m
        ok = i >= 0
        acc[ok] += s[i[ok]]
        cnt[ok] += 1
    return acc / np.maximum(cnt, 1)


class SeasonalProfile:
    """MSTL-like: forecast = daily profile (mean of the same phase over the last few days, each
    value smoothed over its neighbours) + the current level offset (mean deviation of the last few
    rows from their own profile). Cheap and robust on count series whose noise dominates one row
    (a call centre at 5 min: a single day back is mostly noise, five days averaged are not).
    p90 from this forecaster's own in-sample h-step errors, scaled by sqrt(profile) for counts
    (Poisson-like spread: wider at busy hours). Without two daily seasons: the last value."""

    name = "seasonal_profile"
    cycles = 5
    max_smooth_half_rows = 3
    level_rows = 6

    def _smooth_half_rows(self, m: int) -> int:
        # A window of at most ~2% of the season: wider ones flatten the daily peak.
        return min(self.max_smooth_half_rows, m // 50)

    def _predict(self, y, s, m, origins, h):
        """Point forecasts of y[o - 1 + h] from the rows before each origin o."""
        K = self.cycles
        dev = np.zeros(len(origins))
        for j in range(1, self.level_rows + 1):
            dev += y[origins - j] - _cycle_mean(s, m, K, origins - j)
        prof = _cycle_mean(s, m, K, origins - 1 + h)
        return prof, prof + dev / self.level_rows

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y = np.asarray(values, dtype=float)
        daily, _ = infer_seasons(timestamps_s)
        H = horizon_steps
        n = len(y)
        m = daily
        # The smoothing window of a profile value must end before the origin: m > H + half window.
        if m is None or m <= H + self._smooth_half_rows(m) or n < 2 * m + self.level_rows:
            return LastValue().forecast(y, timestamps_s, H)
        s = _centered_mean(y, self._smooth_half_rows(m))
        counts = y.min() >= 0
        p50 = np.empty(H)
        p90 = np.empty(H)
        first = m + self.level_rows
        for h in range(1, H + 1):
            prof, pred = self._predict(y, s, m, np.array([n]), h)
            p50[h - 1] = pred[0]
            past = np.arange(max(first, n - h + 1 - RESIDUAL_WINDOW), n - h + 1)
            if len(past) < 10:
                p90[h - 1] = pred[0] + _lagged_error_quantile(y, h, h, P90)
                continue
            past_prof, past_pred = self._predict(y, s, m, past, h)
            err = y[past - 1 + h] - past_pred
            if counts:
                scale = np.sqrt(np.maximum(past_prof, 1.0))
                p90[h - 1] = pred[0] + np.quantile(err / scale, P90) * np.sqrt(max(prof[0], 1.0))
            else:
                p90[h - 1] = pred[0] + np.quantile(err, P90)
        return _finish(y, p50, p90)
