"""Load forecasting: pure forecasters behind one registry, the fixed backtest protocol, selection."""

from controlplane.forecast.anchors import StatsAnchor, anchor_forecasters
from controlplane.forecast.blend import Blend
from controlplane.forecast.forecasters import (
    HoltWinters,
    LastValue,
    MedianEnsemble,
    OutageAware,
    QuantileGBM,
    Quantiles,
    SeasonalNaive,
    SeasonalProfile,
)
from controlplane.forecast.neural import TorchQuantileMLP
from controlplane.forecast.registry import (
    backtest,
    backtest_origins,
    backtest_report,
    default_forecasters,
    select_forecaster,
)
from controlplane.forecast.series import Series, SeriesInputError, infer_seasons, read_series_csv
from controlplane.forecast.service import ForecastService, ModelForecast

__all__ = [
    "ForecastService",
    "ModelForecast",
    "StatsAnchor",
    "TorchQuantileMLP",
    "anchor_forecasters",
    "Blend",
    "HoltWinters",
    "LastValue",
    "MedianEnsemble",
    "OutageAware",
    "QuantileGBM",
    "Quantiles",
    "SeasonalNaive",
    "SeasonalProfile",
    "Series",
    "SeriesInputError",
    "backtest",
    "backtest_origins",
    "backtest_report",
    "default_forecasters",
    "infer_seasons",
    "read_series_csv",
    "select_forecaster",
]
