"""Onset detection for one series: "the first row that is more surprising than anything lately".

NAB-style scoring rewards the earliest alarm inside an anomaly window and charges for every alarm
outside one, so this detector emits sparse events, not a dense surprise curve:

1. Surprise signals, each a robust z (median / IQR over the previous `reference_rows` rows):
   * value: the row itself (spikes, dips);
   * shift: the median of the last `shift_rows` rows (a level change that is small per row);
   * season: the row minus the row one day earlier (a missed or changed daily peak), when the
     series has a daily rhythm to compare with;
   * burst: the mean value-z of the last `burst_rows` rows (a variance change: an oscillation or a
     run of moderate spikes, none of them a record on its own).
2. Novelty: each signal is divided by its own maximum over the previous `history_rows` rows (never
   less than `floor_z`); a log ratio above 0 is a new record. A series that bursts every night sets
   its own bar high; a quiet one alarms on a modest change.
3. Events: every new record is an event, scored 1 - exp(-margin) / 2 in (0.5, 1), the margin
   being its log ratio over the bar (plus `z_weight` * log z, 0 by default), so NAB's corpus-wide
   threshold decides how far a record must beat its bar: records by a hair, which clean noise
   sets about once per `history_rows` rows, score just above 0.5. After an event the detector is
   silent for `refractory_rows` rows (an open incident does not alert again), unless the event
   was weak (margin below `confirm_novelty`) and a stronger record follows: the weak one may be
   below the threshold, and must not hide the alert. (`min_novelty` can still drop records below
   a margin outright; 0 by default.) Signals need `signal_warmup_rows` of their own history.

Every quantity at row t uses rows <= t only (past windows, running maxima), so scoring a prefix
gives the same numbers as scoring the whole series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DAY_S = 86_400.0
PERIOD_ROWS = 50  # rows whose timestamps fix the sampling step (and so the daily lag)


@dataclass(frozen=True)
class OnsetParams:
    reference_rows: int = 300  # rows behind t that define "normal" (median, IQR)
    min_reference_rows: int = 20  # no z before this many rows of reference
    shift_rows: int = 6  # rows in the recent median that catches a level shift
    burst_rows: int = 10  # rows in the recent mean |z| that catches a variance change (0: off)
    history_rows: int = 1000  # rows of past surprise a new record must beat
    floor_z: float = 2.0  # the bar is never lower than this z
    refractory_rows: int = 80  # silence after an event
    warmup_rows: int = 150  # no event before this many rows
    z_weight: float = 0.0  # how much log(z) adds to the event's strength (0: the margin only)
    levels: int = 1000  # score quantisation steps over (0.5, 1]
    rel_spread_floor: float = 1e-3  # spread floor relative to the reference's range or |median|
    min_novelty: float = 0.0  # log ratio a record must beat its bar by (0: any new record fires)
    signal_warmup_rows: int = 0  # rows of a signal's own history before it may fire
    confirm_novelty: float = 0.2  # an event this strong closes the incident to stronger ones too

    def __post_init__(self) -> None:
        for name in ("reference_rows", "history_rows", "refractory_rows", "levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"OnsetParams.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_reference_rows", "shift_rows", "burst_rows", "warmup_rows", "signal_warmup_rows"):
            if getattr(self, name) < 0:
                raise ValueError(f"OnsetParams.{name} must be >= 0, got {getattr(self, name)}")
        if self.floor_z <= 0:
            raise ValueError(f"OnsetParams.floor_z must be > 0, got {self.floor_z}")
        for name in ("min_novelty", "confirm_novelty"):
            if getattr(self, name) < 0:
                raise ValueError(f"OnsetParams.{name} must be >= 0, got {getattr(self, name)}")


def _past_stats(x: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(median, IQR, range, count) of x[t-rows .. t-1] for each t; NaN where there is no row."""
    n = len(x)
    med = np.full(n, np.nan)
    iqr = np.full(n, np.nan)
    rng = np.full(n, np.nan)
    count = np.minimum(np.arange(n), rows)
    # The first `rows` rows see a growing prefix (a short loop); the rest a full sliding window.
    for t in range(1, min(rows, n)):
        q25, q50, q75 = np.percentile(x[:t], [25, 50, 75])
        med[t], iqr[t], rng[t] = q50, q75 - q25, np.ptp(x[:t])
    if n > rows:
        win = sliding_window_view(x[:-1], rows)  # row j = x[j .. j+rows-1], the past of t = j+rows
        q25, q50, q75 = np.percentile(win, [25, 50, 75], axis=1)
        med[rows:], iqr[rows:], rng[rows:] = q50, q75 - q25, np.ptp(win, axis=1)
    return med, iqr, rng, count


def robust_z(x: np.ndarray, p: OnsetParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|z|, median, spread) of each row against the previous `reference_rows` rows."""
    med, iqr, rng, count = _past_stats(x, p.reference_rows)
    spread = np.maximum(iqr / 1.349, p.rel_spread_floor * np.maximum(rng, np.abs(med)))
    spread = np.maximum(np.nan_to_num(spread), 1e-9)
    z = np.abs(x - np.nan_to_num(med)) / spread
    z[count < p.min_reference_rows] = 0.0
    return z, med, spread


def rows_per_day(timestamps: np.ndarray) -> int:
    ts = np.asarray(timestamps, dtype="datetime64[ms]").astype(np.int64) / 1000.0
    if ts.size < 2:
        return 0
    step_s = float(np.median(np.diff(ts)))
    return int(round(DAY_S / step_s)) if step_s > 0 else 0


def signals(
    values: np.ndarray, timestamps: np.ndarray, p: OnsetParams = OnsetParams()
) -> dict[str, np.ndarray]:
    """Non-negative surprise per row for each signal (see the module docstring)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    z, med, spread = robust_z(x, p)
    out = {"value": z}
    k = p.shift_rows
    if n > k:
        # Median of x[t-k+1 .. t] against the reference that ended before that run began.
        recent = np.full(n, np.nan)
        recent[k - 1 :] = np.median(sliding_window_view(x, k), axis=1)
        ref_med = np.r_[np.full(k - 1, np.nan), med[: n - k + 1]]
        ref_spread = np.r_[np.full(k - 1, np.nan), spread[: n - k + 1]]
        shift = np.abs(recent - ref_med) / ref_spread
        shift[: p.min_reference_rows + k] = 0.0
        out["shift"] = np.nan_to_num(shift)
    b = p.burst_rows
    if b > 0 and n >= b:
        burst = np.zeros(n)
        burst[b - 1 :] = np.mean(sliding_window_view(z, b), axis=1)
        out["burst"] = burst
    # The first timestamps are enough to know the sampling step: the period is fixed causally
    # from the first rows, so a prefix gets the same period as the whole series.
    day = rows_per_day(timestamps[:PERIOD_ROWS])
    if 2 <= day and n > max(2 * day, PERIOD_ROWS):
        diff = np.zeros(n)
        diff[day:] = x[day:] - x[:-day]
        zd, _, _ = robust_z(diff, p)
        zd[: 2 * day] = 0.0  # the daily difference needs its own reference first
        out["season"] = zd
    return out


def _past_max(s: np.ndarray, rows: int) -> np.ndarray:
    """max(s[t-rows .. t-1]) per t (-inf before any row)."""
    pad = np.r_[np.full(rows, -np.inf), s[:-1]] if len(s) else s
    return np.max(sliding_window_view(pad, rows), axis=1) if len(s) else s


def novelty(sig: dict[str, np.ndarray], p: OnsetParams) -> tuple[np.ndarray, np.ndarray]:
    """(best log ratio of a signal over its recent record, the largest z) per row."""
    n = len(next(iter(sig.values())))
    nov = np.full(n, -np.inf)
    z_max = np.zeros(n)
    for s in sig.values():
        bar = np.maximum(_past_max(s, p.history_rows), p.floor_z)
        with np.errstate(divide="ignore"):
            ratio = np.log(np.maximum(s, 1e-12) / bar)
        if p.signal_warmup_rows:
            # A signal that just switched on (the day-over-day one after two days) has no record
            # yet: its first values would all be "new records".
            live = np.flatnonzero(s > 0)
            ratio[: (live[0] if live.size else n) + p.signal_warmup_rows] = -np.inf
        nov = np.maximum(nov, ratio)
        z_max = np.maximum(z_max, s)
    return nov, z_max


def score(values: np.ndarray, timestamps: np.ndarray, p: OnsetParams = OnsetParams()) -> np.ndarray:
    """One anomaly score in [0, 1] per row: 0, or an event's quantised strength in (0.5, 1]."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return np.zeros(0)
    return events(signals(x, timestamps, p), p)


def events(sig: dict[str, np.ndarray], p: OnsetParams = OnsetParams()) -> np.ndarray:
    """Sparse event scores from the surprise signals (split from `score` so tuning can reuse signals).

    An event's score grows with how far its record beats the bar, so NAB's corpus-wide threshold
    picks the record margin: no margin has to be tuned here. After an event the detector is silent
    for `refractory_rows` rows (the incident is open), except that a weak event (margin below
    `confirm_novelty`) does not hide a stronger record that follows it: the weak one may lie
    below the threshold, and then the stronger one is the alert.
    """
    n = len(next(iter(sig.values())))
    out = np.zeros(n)
    nov, z_max = novelty(sig, p)
    strength = np.maximum(nov, 0.0) + p.z_weight * np.log(np.maximum(z_max, 1.0))
    level = 1.0 - 0.5 * np.exp(-strength)  # (0.5, 1), increasing, no saturation in range
    level = np.ceil(level * p.levels) / p.levels
    last_t, last_strength = -p.refractory_rows, 0.0
    for t in np.flatnonzero(nov > p.min_novelty):
        if t < p.warmup_rows:
            continue
        if t - last_t < p.refractory_rows and (
            last_strength >= p.confirm_novelty or strength[t] <= last_strength
        ):
            continue  # the open incident already alerted (strongly enough)
        out[t] = min(1.0, max(level[t], 0.5 + 1.0 / p.levels))
        last_t, last_strength = t, strength[t]
    return out
