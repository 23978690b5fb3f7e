"""Day-over-day echoes (nab_echo.py): an event one day after an earlier event is dropped, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.anomaly import nab_detector, nab_echo

DAY = 288  # five-minute rows per day
STEP_S = 300


def _events(n: int, rows: list[int], level: float = 0.8) -> np.ndarray:
    s = np.zeros(n)
    s[rows] = level
    return s


def _z(n: int, odd_rows: list[int]) -> np.ndarray:
    """Row z: 1 everywhere, 50 on the odd rows (the anomalies themselves). An echo at t is judged
    on the row t - day, which need not be its source event's own row."""
    z = np.ones(n)
    z[odd_rows] = 50.0
    return z


@pytest.mark.parametrize(
    ("rows", "odd", "day", "tol", "kept"),
    [
        ([100, 100 + DAY], [100], DAY, 0, [100]),  # the exact echo goes
        # Within the tolerance, on either side: the anomaly spans rows around its event, and the
        # echo's row one day back is one of them.
        ([100, 100 + DAY + 3], [100, 101, 102, 103], DAY, 3, [100]),
        ([100, 100 + DAY - 3], [97, 98, 99, 100], DAY, 3, [100]),
        ([100, 100 + DAY + 4], [100], DAY, 3, [100, 104 + DAY]),  # just outside: a new event
        ([100, 100 + DAY // 2], [100], DAY, 3, [100, 100 + DAY // 2]),  # half a day: no echo
        ([100, 100 + DAY, 100 + 2 * DAY], [100], DAY, 0, [100, 100 + 2 * DAY]),  # no echo of an echo
        ([100, 100 + DAY], [100 + DAY], DAY, 0, [100, 100 + DAY]),  # today's row is the odd one
        ([100, 100 + DAY], [100, 100 + DAY], DAY, 0, [100, 100 + DAY]),  # as odd as yesterday: kept
        ([100, 100 + DAY], [100], 0, 0, [100, 100 + DAY]),  # no daily rhythm: nothing dropped
        ([100, 100 + DAY], [100], DAY, -1, [100, 100 + DAY]),  # negative tolerance: off
        ([10, 10 + 24, 50], [10], 24, 0, [10, 50]),  # hourly rows: a day is 24 rows
    ],
)
def test_drop_day_echoes(rows, odd, day, tol, kept):
    s = _events(1000, rows)
    out = nab_echo.drop_day_echoes(s, _z(1000, odd), day, tol)
    assert np.flatnonzero(out).tolist() == kept
    assert np.all(out[kept] == s[kept])  # kept events keep their score


@pytest.mark.parametrize(
    ("day", "tolerance_day", "rows"), [(288, 0.02, 6), (288, 0.0, 0), (24, 0.02, 0), (1440, 0.01, 14)]
)
def test_tolerance_rows_is_a_fraction_of_the_day(day, tolerance_day, rows):
    assert nab_echo.tolerance_rows(day, tolerance_day) == rows


def test_drop_day_echoes_is_streaming():
    s = _events(2000, [100, 100 + DAY, 500, 700, 700 + DAY + 2, 1500])
    z = _z(2000, [100, 500, 700, 701, 702])
    full = nab_echo.drop_day_echoes(s, z, DAY, 3)
    assert np.flatnonzero(full).tolist() == [100, 500, 700, 1500]
    for cut in (150, 400, 990, 1600):
        np.testing.assert_array_equal(nab_echo.drop_day_echoes(s[:cut], z[:cut], DAY, 3), full[:cut])


def _daily_with_spike(days: int = 12, spike_row: int = 9 * DAY + 100, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    x = 50 + 20 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 1, t.size)
    x[spike_row] += 60  # one spike on an otherwise regular daily curve
    return x


def _stamps(n: int) -> np.ndarray:
    return np.datetime64("2024-01-01T00:00:00") + (np.arange(n) * STEP_S).astype("timedelta64[s]")


def test_the_detector_alerts_on_a_spike_but_not_on_its_day_over_day_echo():
    spike = 9 * DAY + 100
    x = _daily_with_spike(spike_row=spike)
    with_echo = nab_detector.score_series(x, _stamps(x.size), echo_tolerance_day=None)
    without = nab_detector.score_series(x, _stamps(x.size))
    assert with_echo[spike] > 0.5 and without[spike] == with_echo[spike]
    # The day-over-day signal sees the spike again one day later (the row a day back is the odd
    # one); that echo is gone, and nothing else changed.
    assert with_echo[spike + DAY] > 0
    assert without[spike + DAY] == 0
    changed = np.flatnonzero(with_echo != without)
    assert changed.tolist() == [spike + DAY]


def test_a_spike_one_day_after_a_small_event_keeps_its_alert():
    x = _daily_with_spike(spike_row=9 * DAY + 100)
    x[10 * DAY + 100] += 200  # a bigger spike on the echo's row: the row itself is the odd one
    s = nab_detector.score_series(x, _stamps(x.size))
    assert s[10 * DAY + 100] > 0.5


def test_score_series_with_echoes_dropped_is_streaming():
    x = _daily_with_spike()
    full = nab_detector.score_series(x, _stamps(x.size))
    for cut in (9 * DAY + 150, 10 * DAY + 150):
        np.testing.assert_array_equal(nab_detector.score_series(x[:cut], _stamps(cut)), full[:cut])
