"""The optional Prophet anchor: listed only where the package is installed, sane where it runs."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.forecast import anchors
from controlplane.forecast.anchors import ProphetAnchor, anchor_forecasters, prophet_available

HOUR_S = 3600.0


@pytest.mark.parametrize("available", [True, False])
def test_prophet_is_an_anchor_only_where_installed(monkeypatch, available):
    monkeypatch.setattr(anchors, "prophet_available", lambda: available)
    names = list(anchor_forecasters())
    assert names[:3] == ["auto_arima", "auto_ets", "mstl"]
    assert ("prophet" in names) is available


@pytest.mark.parametrize(
    "values, ts",
    [
        (np.linspace(1.0, 2.0, 100), None),  # no timestamps: no calendar for Prophet
        (np.array([3.0, 4.0, 5.0]), np.arange(3) * HOUR_S),  # too short
        (np.full(100, 7.0), np.arange(100) * HOUR_S),  # constant
    ],
)
def test_prophet_falls_back_to_the_last_value(values, ts):
    q = ProphetAnchor().forecast(values, ts, 2)
    np.testing.assert_array_equal(q.p50, [values[-1]] * 2)


@pytest.mark.skipif(not prophet_available(), reason="prophet is not installed (optional anchor)")
def test_prophet_follows_a_daily_cycle():
    n = 24 * 14
    v = 100 + 50 * np.sin(2 * np.pi * np.arange(n + 4) / 24)
    q = ProphetAnchor().forecast(v[:n], np.arange(n) * HOUR_S, 4)
    assert np.mean(np.abs(q.p50 - v[n:])) < 5.0
    assert np.all(q.p90 >= q.p50)
