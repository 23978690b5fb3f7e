"""Classical anchors from statsforecast (AutoETS, AutoARIMA, MSTL) behind the forecaster interface.

They (and Prophet, where installed) are the bar our own forecasters are measured against (issue 5)
and members our ensembles may use. Settings are the library's defaults except where a default is unusable here:
- AutoARIMA is non-seasonal (season_length=1), as in NVIDIA Dynamo's planner; a seasonal ARIMA
  with a daily season of 144+ rows takes minutes per fit.
- AutoETS gets the daily season; statsforecast's ETS drops seasonal components when the season
  is longer than 24 rows, so on 5-10 minute data it is a (damped) trend model.
- MSTL gets the daily season the timestamps show, trend by the library's default AutoETS(ZZN).
  Adding the weekly season made it worse and 10x slower on bank_calls (rel_mae 0.51 vs 0.39 at
  H=6); daily-only reproduces the MSTL figures quoted in issue 5 (0.38 there, 0.386 here).
Each fit sees at most the most recent `fit_window` rows (older rows cost time, not accuracy at
these horizons). p90 is the upper bound of the 80% prediction interval. With too little history
for the model, or when the library fails on a series, the last value answers instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from controlplane.forecast.forecasters import LastValue, Quantiles, _finish
from controlplane.forecast.series import infer_seasons

MIN_ROWS = 20  # below this, no model: the last value


def _model(kind: str, daily: int | None, n: int):
    from statsforecast.models import MSTL, AutoARIMA, AutoETS  # noqa: PLC0415 (slow import)

    if kind == "auto_ets":
        return AutoETS(season_length=daily if daily and n >= 2 * daily else 1)
    if kind == "auto_arima":
        return AutoARIMA(season_length=1)
    if kind == "mstl":
        if not daily or n < 2 * daily:
            return None
        return MSTL(season_length=[daily])
    raise ValueError(f"unknown statsforecast anchor {kind!r}; known: auto_ets, auto_arima, mstl")


class StatsAnchor:
    """One statsforecast model; `kind` is auto_ets, auto_arima or mstl."""

    # Rows per fit: older rows cost time, not accuracy at these horizons; ARIMA's order search
    # grows with length and gains nothing from more than a few days.
    fit_windows = {"auto_ets": 2000, "auto_arima": 1000, "mstl": 4032}

    def __init__(self, kind: str) -> None:
        if kind not in self.fit_windows:
            raise ValueError(f"unknown statsforecast anchor {kind!r}; known: {sorted(self.fit_windows)}")
        self.kind = kind
        self.name = kind

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y_all = np.asarray(values, dtype=float)
        if len(y_all) < MIN_ROWS or np.ptp(y_all) == 0:  # constant: the models have nothing to fit
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        daily, _ = infer_seasons(timestamps_s)
        window = self.fit_windows[self.kind]
        y = y_all[-window:]
        model = _model(self.kind, daily, len(y))
        if model is None:
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                out = model.forecast(y=y, h=horizon_steps, level=[80])
            p50 = np.asarray(out["mean"], dtype=float)
            p90 = np.asarray(out["hi-80"], dtype=float)
        except Exception:  # noqa: BLE001 - a library failure on one series must not stop the others
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        if not (np.all(np.isfinite(p50)) and np.all(np.isfinite(p90))):
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        return _finish(y_all, p50, p90)


class ProphetAnchor:
    """Prophet with its defaults (daily/weekly seasonality as the data allow, automatic
    changepoints): the anchor issue 5 names beside the statsforecast ones. Optional: it is scored
    only where the `prophet` package is installed (it is not a dependency of fleetpilot).
    It needs timestamps; without them, or on a fit failure, the last value answers."""

    name = "prophet"
    fit_window = 2000  # rows: a fit costs ~1 s per 2000 rows

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y_all = np.asarray(values, dtype=float)
        if timestamps_s is None or len(y_all) < MIN_ROWS or np.ptp(y_all) == 0:
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        try:
            p50, p90 = _prophet_fit_predict(
                y_all[-self.fit_window :],
                np.asarray(timestamps_s, dtype=float)[-self.fit_window :],
                horizon_steps,
            )
        except Exception:  # noqa: BLE001 - a library failure on one series must not stop the others
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        if not (np.all(np.isfinite(p50)) and np.all(np.isfinite(p90))):
            return LastValue().forecast(y_all, timestamps_s, horizon_steps)
        return _finish(y_all, p50, p90)


def _prophet_fit_predict(y: np.ndarray, ts_s: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    import logging  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415
    from prophet import Prophet  # noqa: PLC0415 (slow, optional import)

    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Future rows continue the median spacing of the recent rows (a 5-minute series stays so).
    step_s = float(np.median(np.diff(ts_s[-50:])))
    future_s = ts_s[-1] + step_s * np.arange(1, H + 1)
    to_ds = lambda s: pd.to_datetime(s, unit="s")  # noqa: E731
    model = Prophet(interval_width=0.8)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        model.fit(pd.DataFrame({"ds": to_ds(ts_s), "y": y}))
        out = model.predict(pd.DataFrame({"ds": to_ds(future_s)}))
    return out["yhat"].to_numpy(dtype=float), out["yhat_upper"].to_numpy(dtype=float)


def prophet_available() -> bool:
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec("prophet") is not None


def anchor_forecasters() -> dict:
    """The anchors by name, in the order the backtest lists them; Prophet where installed."""
    out: dict = {k: StatsAnchor(k) for k in ("auto_arima", "auto_ets", "mstl")}
    if prophet_available():
        out["prophet"] = ProphetAnchor()
    return out
