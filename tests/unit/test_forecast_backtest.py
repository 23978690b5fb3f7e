"""The fixed backtest protocol of issue 5, selection from pre-origin data only, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import controlplane.cli.forecast_cmd  # noqa: F401  (registers `forecast` on the app)
from controlplane.cli import app
from controlplane.forecast.forecasters import HoltWinters, LastValue, Quantiles, SeasonalNaive
from controlplane.forecast.registry import (
    backtest,
    backtest_origins,
    backtest_report,
    default_forecasters,
    select_forecaster,
)
from controlplane.forecast.series import read_series_csv


class Zero:
    name = "zero"

    def forecast(self, values, timestamps_s, horizon_steps):
        return Quantiles(p50=np.zeros(horizon_steps), p90=np.zeros(horizon_steps))


@pytest.mark.parametrize(
    "n, h, expected",
    [
        (20, 2, [16, 16, 16, 16, 17, 17, 17, 18]),
        (100, 3, [80, 82, 84, 87, 89, 92, 94, 97]),  # step 17/7 = 2.43
        (2016, 3, np.linspace(1612, 2013, 8).astype(int).tolist()),
    ],
)
def test_origins(n, h, expected):
    assert backtest_origins(n, h).tolist() == expected


def test_origins_reject_too_short():
    with pytest.raises(ValueError):
        backtest_origins(5, 3)


def test_backtest_scores_by_hand():
    # Without timestamps the seasonal naive is the last value. Origins 16 x4, 17 x3, 18 x1.
    y = np.r_[np.arange(16.0), [20.0, 10.0, 30.0, 0.0]]
    fs = {"seasonal_naive": SeasonalNaive(), "zero": Zero()}
    s = backtest(y, None, 2, fs)
    # last value: o=16 predicts 15 vs (20,10) -> 5,5; o=17: 20 vs (10,30) -> 10,10; o=18: 10 vs (30,0) -> 20,10.
    assert s["seasonal_naive"].mae == pytest.approx((4 * 5 + 3 * 10 + 15) / 8)
    assert s["seasonal_naive"].mae_by_step == pytest.approx([70 / 8, 60 / 8])
    assert s["seasonal_naive"].rel_mae == pytest.approx(1.0)
    # zero: o=16 -> 20,10; o=17 -> 10,30; o=18 -> 30,0.
    assert s["zero"].mae == pytest.approx(135 / 8 / 1)
    assert s["zero"].rel_mae == pytest.approx(135 / 65)
    assert s["zero"].p90_coverage == pytest.approx(1 / 16)  # only the final 0 is <= p90 = 0
    assert s["zero"].pinball_p90 == pytest.approx(0.9 * (4 * 30 + 3 * 40 + 30) / 16)


def hourly_series(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 40 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 5, n), t * 3600.0


FAST = {"seasonal_naive": SeasonalNaive(), "last_value": LastValue(), "holt_winters": HoltWinters()}


def test_selection_uses_only_rows_before_first_origin():
    y, ts = hourly_series(24 * 12)
    first = int(backtest_origins(len(y), 3)[0])
    report = backtest_report(y, ts, 3, FAST)
    assert report["selected"] == select_forecaster(y[:first], ts[:first], 3, FAST)
    # Rows from the first origin on turned into a flat line: scores change, the selection does not.
    y2 = y.copy()
    y2[first:] = y[first - 1]
    report2 = backtest_report(y2, ts, 3, FAST)
    assert report2["selected"] == report["selected"]
    assert report2["forecasters"]["last_value"]["mae"] != report["forecasters"]["last_value"]["mae"]
    # On a clean daily cycle a seasonal model must beat the last value.
    assert report["selected"] in ("seasonal_naive", "holt_winters")


runner = CliRunner()


def test_cli_json_shape(tmp_path):
    y, ts = hourly_series(24 * 5)  # short: the gradient-boosting model falls back, keeping this fast
    p = tmp_path / "s.csv"
    p.write_text("when,rate\n" + "".join(f"{int(t)},{v:.3f}\n" for t, v in zip(ts, y, strict=True)))
    res = runner.invoke(app, ["forecast", "backtest", "--series", str(p), "--horizon-steps", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"selected", "forecasters"}
    assert out["selected"] in out["forecasters"]
    for sc in out["forecasters"].values():
        assert set(sc) == {"mae", "rel_mae", "mae_by_step", "pinball_p90", "p90_coverage"}
        assert len(sc["mae_by_step"]) == 3
    assert out["forecasters"]["seasonal_naive"]["rel_mae"] == pytest.approx(1.0)
    # The statsforecast anchors, the torch model and the blend are scored on the same origins.
    assert {"auto_arima", "auto_ets", "mstl", "torch_mlp", "blend"} <= set(out["forecasters"])


SERVEGEN_SMALL = (
    Path(__file__).resolve().parents[3]
    / "shared/data/traces/servegen/language_m-small_aggregate_rate_10min.csv"
)


@pytest.mark.skipif(not SERVEGEN_SMALL.exists(), reason=f"dev data not present: {SERVEGEN_SMALL}")
def test_backtest_on_a_real_dev_series_beats_the_anchors():
    # ServeGen m-small, 10 min rows, H = 3: the target against the anchors run here.
    s = read_series_csv(SERVEGEN_SMALL)
    reg = default_forecasters()
    names = ("last_value", "seasonal_naive", "seasonal_profile", "holt_winters", "quantile_gbm", "mstl")
    report = backtest_report(s.values, s.timestamps_s, 3, {k: reg[k] for k in names})
    f = report["forecasters"]
    chosen = f[report["selected"]]
    assert chosen["mae"] <= 0.9 * min(f["last_value"]["mae"], f["mstl"]["mae"]), report
    assert 0.85 <= chosen["p90_coverage"] <= 0.95, report


@pytest.mark.parametrize(
    "content, args, message",
    [
        ("ts,v\n0,1\n", ["--value-col", "rate"], "no column 'rate'"),
        ("ts,v\n0,1\n", ["--time-col", "when"], "no column 'when'"),
        ("ts,v\n0,1\n1,2\n2,x\n", [], "s.csv:4: value 'x' in column 'v' is not a number"),
        ("ts,v\n0,1\n1,2\n", [], "too short"),
    ],
)
def test_cli_bad_input(tmp_path, content, args, message):
    p = tmp_path / "s.csv"
    p.write_text(content)
    res = runner.invoke(app, ["forecast", "backtest", "--series", str(p), "--horizon-steps", "3", *args])
    assert res.exit_code == 2
    assert message in res.stderr
