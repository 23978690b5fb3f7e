"""Day-over-day echoes: "an alert exactly one day after an alert is the first one's mirror image".

The onset detector's day-over-day signal (onset.py, "season") compares each row with the row one
day earlier. An anomaly at row a therefore shows up twice in that signal: at a (the new row is odd)
and again at a + day (now the row one day back is the odd one, and today's normal row differs from
it as much). On NAB's dev corpus 9 of 95 false positives were such echoes (a spike, then an alert
288 five-minute rows later on a perfectly normal row); dropping them loses no detection.

`drop_day_echoes` removes an event at t when both hold:
* an earlier kept event lies within `tolerance_rows` of t - day (the echo's source), and
* the row at t is less extreme than the row at t - day (its value z is smaller): the row a day
  back is the odd one, today's row is unremarkable. A big spike one day after a small event keeps
  its alert.
It looks only at rows <= t, so it is streaming-safe. A real anomaly that recurs at the same time of
day, no larger than the first, is the cost: the first alert has already opened the incident. A
dropped event suppresses nothing itself (an echo has no echo: a + 2 days compares two normal rows).
"""

from __future__ import annotations

import numpy as np


def drop_day_echoes(
    scores: np.ndarray, value_z: np.ndarray, rows_per_day: int, tolerance_rows: int
) -> np.ndarray:
    """Scores with echoes set to 0: events within `tolerance_rows` of (an earlier kept event +
    `rows_per_day`) whose row's `value_z` (the row's own robust z) is below the z one day back.

    `rows_per_day` < 2 (no daily rhythm to echo) or `tolerance_rows` < 0 returns the scores as is.
    """
    out = np.asarray(scores, dtype=float).copy()
    z = np.asarray(value_z, dtype=float)
    if rows_per_day < 2 or tolerance_rows < 0:
        return out
    kept: list[int] = []  # ascending rows of kept events
    for t in np.flatnonzero(out > 0):
        lag = int(t) - rows_per_day
        i = int(np.searchsorted(kept, lag - tolerance_rows, side="left"))
        if i < len(kept) and kept[i] <= lag + tolerance_rows and z[t] < z[lag]:
            out[t] = 0.0  # the echo of kept[i]: today's row is less odd than yesterday's
            continue
        kept.append(int(t))
    return out


def tolerance_rows(rows_per_day: int, tolerance_day: float) -> int:
    """The tolerance in rows for a fraction of a day (5-minute rows: 0.02 day -> 6 rows; hourly: 0)."""
    return int(round(tolerance_day * rows_per_day))
