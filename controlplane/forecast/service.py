"""Forecasts for the live loop: per model, request rate and token rate over the next hour.

`ForecastService.tick(now_s)` reads each model's history from the store (derived SQL at `step_s`),
forecasts p50/p90 for every step up to `horizon_s`, writes them to the `forecasts` table and
returns one `ModelForecast` per model. Work is split so a tick stays short:
- every tick: the cheap forecasters (last value, seasonal naive, seasonal profile) on fresh data;
- every `refit_every_s`, in a background thread: the rolling-origin backtest that selects a
  forecaster per series, and the forecast of the selected one when it is not cheap (Holt-Winters,
  gradient boosting, torch). That forecast is reused, aligned by target time, until the next refit.
The thread does no I/O: it gets arrays and returns arrays; the store is used only by `tick`.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from controlplane.forecast.forecasters import (
    HoltWinters,
    LastValue,
    OutageAware,
    QuantileGBM,
    Quantiles,
    SeasonalNaive,
    SeasonalProfile,
)
from controlplane.forecast.neural import TorchQuantileMLP
from controlplane.forecast.registry import backtest, select
from controlplane.forecast.series import carry_forward

METRICS = ("request_rate_rps", "token_rate_tps")
DEFAULT_FORECASTER = "seasonal_naive"  # before the first selection (falls back to the last value)
MIN_HISTORY_ROWS = 3  # fewer observed buckets: no forecast for that series


def cheap_forecasters() -> dict:
    fs = [SeasonalNaive("daily"), LastValue(), OutageAware(SeasonalProfile())]
    return {f.name: f for f in fs}


# The direct multi-step models train one row per (origin, step): past this many steps they cost
# minutes per refit, so longer horizons use the recursive models only.
DIRECT_MODEL_MAX_STEPS = 36


def heavy_forecasters(horizon_steps: int) -> dict:
    fs = [OutageAware(HoltWinters())]
    if horizon_steps <= DIRECT_MODEL_MAX_STEPS:
        fs += [OutageAware(QuantileGBM()), OutageAware(TorchQuantileMLP())]
    return {f.name: f for f in fs}


@dataclass(frozen=True)
class SeriesForecast:
    """p50/p90 for target times origin_s + k * step_s, k = 1..H."""

    forecaster: str
    origin_s: float  # the last observed bucket's end: the forecast starts one step after it
    step_s: float
    p50: np.ndarray
    p90: np.ndarray

    def index_at(self, target_s: float) -> int | None:
        k = math.ceil((target_s - self.origin_s) / self.step_s - 1e-9)
        k = max(k, 1)
        return None if k > len(self.p50) else k - 1


@dataclass(frozen=True)
class ModelForecast:
    """What the loop reads: the p90 of a metric some seconds after the tick's `now_s`."""

    model: str
    now_s: float
    horizon_s: float
    series: dict[str, SeriesForecast] = field(default_factory=dict)  # metric -> forecast

    def p90_at(self, ahead_s: float, metric: str = "request_rate_rps") -> float | None:
        """p90 at now + ahead_s (None: no forecast for the metric, or beyond the horizon)."""
        return self._at(ahead_s, metric, "p90")

    def p50_at(self, ahead_s: float, metric: str = "request_rate_rps") -> float | None:
        return self._at(ahead_s, metric, "p50")

    def _at(self, ahead_s: float, metric: str, which: str) -> float | None:
        if not math.isfinite(ahead_s) or ahead_s < 0:
            raise ValueError(f"ahead_s={ahead_s} must be a finite number >= 0 (seconds)")
        sf = self.series.get(metric)
        if sf is None or ahead_s > self.horizon_s:
            return None
        i = sf.index_at(self.now_s + ahead_s)
        return None if i is None else float(getattr(sf, which)[i])


@dataclass
class _Selection:
    forecaster: str
    scores_mae: dict[str, float]
    made_at_s: float
    heavy: SeriesForecast | None  # the selected forecaster's output when it is not cheap


def history_grid(ts_s: np.ndarray, values: np.ndarray, start_s: float, end_s: float, step_s: float):
    """Values on the regular grid [first observed bucket, end_s) with missing buckets carried forward.
    None when fewer than MIN_HISTORY_ROWS buckets were observed."""
    ok = np.isfinite(values)
    if ok.sum() < MIN_HISTORY_ROWS:
        return None
    first = float(np.min(ts_s[ok]))
    grid = np.arange(max(first, start_s), end_s, step_s)
    if len(grid) < MIN_HISTORY_ROWS:
        return None
    out = np.full(len(grid), np.nan)
    idx = np.round((ts_s[ok] - grid[0]) / step_s).astype(int)
    keep = (idx >= 0) & (idx < len(grid))
    out[idx[keep]] = values[ok][keep]
    return grid, carry_forward(out)


def select_and_fit(
    values: np.ndarray,
    ts_s: np.ndarray,
    horizon_steps: int,
    step_s: float,
    now_s: float,
    extra_steps: int = 0,
) -> _Selection:
    """The heavy part (pure): backtest cheap + heavy forecasters on the history, pick the best,
    and forecast with it when it is a heavy one, `extra_steps` past the horizon (the forecast is
    reused until the next refit, so it must still reach a full horizon ahead then)."""
    fs = {**cheap_forecasters(), **heavy_forecasters(horizon_steps)}
    try:
        scores = backtest(values, ts_s, horizon_steps, fs)
    except ValueError:  # too short for the protocol at this horizon
        return _Selection(DEFAULT_FORECASTER, {}, now_s, None)
    name = select(scores)
    heavy = None
    if name not in cheap_forecasters():
        q = fs[name].forecast(values, ts_s, horizon_steps + extra_steps)
        heavy = SeriesForecast(name, float(ts_s[-1]) + step_s, step_s, q.p50, q.p90)
    return _Selection(name, {k: s.mae for k, s in scores.items()}, now_s, heavy)


class ForecastService:
    """Per-model request and token rate forecasts for the loop; see the module docstring."""

    def __init__(
        self,
        store,
        step_s: int = 10,
        horizon_s: int = 3600,
        refit_every_s: float = 300,
        history_s: float = 2 * 86400,
        background: bool = True,
        write_every_step_s: float = 60,
    ) -> None:
        if step_s < 1:
            raise ValueError(f"step_s={step_s} must be >= 1 (seconds)")
        if horizon_s < step_s:
            raise ValueError(f"horizon_s={horizon_s} must be >= step_s={step_s}")
        if refit_every_s <= 0:
            raise ValueError(f"refit_every_s={refit_every_s} must be > 0 (seconds)")
        if history_s < 3 * step_s:
            raise ValueError(f"history_s={history_s} must hold at least 3 steps of {step_s} s")
        self.store = store
        self.step_s = int(step_s)
        self.horizon_steps = int(horizon_s // step_s)
        self.refit_every_s = float(refit_every_s)
        self.history_s = float(history_s)
        self.write_every_step_s = float(write_every_step_s)
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-refit") if background else None
        )
        self._selection: dict[tuple[str, str], _Selection] = {}
        self._pending: dict[tuple[str, str], Future] = {}
        self._last_refit_s: dict[tuple[str, str], float] = {}

    # ---- I/O --------------------------------------------------------------------------------
    def _history(self, now_s: float) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        from controlplane.store import derived  # noqa: PLC0415

        step = self.step_s
        end = math.floor(now_s / step) * step  # the bucket holding now is still filling: excluded
        start = end - self.history_s
        out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        queries = {
            "request_rate_rps": (
                derived.request_rate(start, end, step, by=("model",)),
                ("requests_per_s", "failures_per_s"),
            ),
            "token_rate_tps": (
                derived.token_rate(start, end, step, by=("model",)),
                ("generation_tokens_per_s", "prompt_tokens_per_s"),
            ),
        }
        for metric, (sql, cols) in queries.items():
            rows = self.store.query(sql).to_dicts()
            by_model: dict[str, list[tuple[float, float]]] = {}
            for r in rows:
                parts = [r[c] for c in cols if r.get(c) is not None]
                if not r.get("model") or not parts:
                    continue
                by_model.setdefault(r["model"], []).append((r["ts"].timestamp(), float(sum(parts))))
            for model, pts in by_model.items():
                arr = np.array(pts)
                g = history_grid(arr[:, 0], arr[:, 1], start, end, step)
                if g is not None:
                    out[(model, metric)] = g
        return out

    def _rows(
        self, model: str, metric: str, now_s: float, sf: SeriesForecast, sel: _Selection | None
    ) -> list[dict]:
        rows = []
        inputs = json.dumps(
            {
                "step_s": self.step_s,
                "origin_s": sf.origin_s,
                "selected_at_s": None if sel is None else sel.made_at_s,
                "backtest_mae": None if sel is None else sel.scores_mae.get(sf.forecaster),
                # No lower quantile is forecast: the stored band is [p50, p90].
                "quantiles": {"value": 0.5, "lower": 0.5, "upper": 0.9},
            }
        )
        stride = max(1, int(round(self.write_every_step_s / self.step_s)))
        for k in range(1, len(sf.p50) + 1):
            # Every step for the first minute (what the loop acts on), then one per write stride.
            if k * self.step_s > 60 and k % stride:
                continue
            # target_ts is the start of the forecast bucket, as `ts` of the derived rate series,
            # so forecast and actual join on it. The bucket now is filling is still written.
            target = sf.origin_s + (k - 1) * self.step_s
            if target + self.step_s <= now_s or target > now_s + self.horizon_steps * self.step_s:
                continue
            rows.append(
                {
                    "ts": now_s,
                    "forecaster": sf.forecaster,
                    "model": model,
                    "metric": metric,
                    "target_ts": target,
                    "horizon_s": max(0, int(round(target - now_s))),
                    "value": float(sf.p50[k - 1]),
                    "lower": float(sf.p50[k - 1]),
                    "upper": float(sf.p90[k - 1]),
                    "inputs": inputs,
                }
            )
        return rows

    # ---- the tick ---------------------------------------------------------------------------
    def tick(self, now_s: float) -> dict[str, ModelForecast]:
        history = self._history(now_s)
        out: dict[str, ModelForecast] = {}
        rows: list[dict] = []
        cheap = cheap_forecasters()
        for (model, metric), (grid, values) in history.items():
            key = (model, metric)
            self._collect(key)
            if (
                now_s - self._last_refit_s.get(key, -math.inf) >= self.refit_every_s
                and key not in self._pending
            ):
                self._last_refit_s[key] = now_s
                self._start_refit(key, values, grid, now_s)
                self._collect(key)
            sel = self._selection.get(key)
            name = sel.forecaster if sel is not None else DEFAULT_FORECASTER
            sf = None
            if name not in cheap and sel is not None and sel.heavy is not None:
                sf = sel.heavy
                if sf.index_at(now_s + self.step_s) is None:
                    sf = None  # the heavy forecast ran out before the next refit: cheap fallback
            if sf is None:
                if name not in cheap:
                    name = DEFAULT_FORECASTER
                # One step more than the horizon: the tick is part-way into the bucket after the
                # last complete one, and a full horizon must still lie ahead of it.
                q: Quantiles = cheap[name].forecast(values, grid, self.horizon_steps + 1)
                sf = SeriesForecast(name, float(grid[-1]) + self.step_s, self.step_s, q.p50, q.p90)
            mf = out.setdefault(model, ModelForecast(model, now_s, self.horizon_steps * self.step_s))
            mf.series[metric] = sf
            rows += self._rows(model, metric, now_s, sf, sel)
        if rows:
            self.store.insert_rows("forecasts", rows)
        return out

    def _start_refit(self, key, values, grid, now_s) -> None:
        # Two refit periods of extra steps: the next refit may itself take a while to land.
        extra = 2 * math.ceil(self.refit_every_s / self.step_s) + 1
        args = (values.copy(), grid.copy(), self.horizon_steps, self.step_s, now_s, extra)
        if self._pool is None:
            self._selection[key] = select_and_fit(*args)
            return
        self._pending[key] = self._pool.submit(select_and_fit, *args)

    def _collect(self, key) -> None:
        fut = self._pending.get(key)
        if fut is None or not fut.done():
            return
        del self._pending[key]
        try:
            self._selection[key] = fut.result()
        except Exception:  # noqa: BLE001 - a failed refit keeps the previous selection
            pass

    def wait_refits(self, timeout_s: float | None = None) -> None:
        """Block until pending refits finish (tests, shutdown)."""
        for fut in list(self._pending.values()):
            fut.exception(timeout=timeout_s)

    def close(self) -> None:
        """Idempotent; pending refits are abandoned."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
