"""Reading a time series CSV for forecasting, and inferring its seasons from the timestamps.

Protocol of issue 5: values are used in row order as given; a missing value is carried forward
(leading missing values take the first observed one).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DAY_S = 86400.0
WEEK_S = 7 * DAY_S


class SeriesInputError(ValueError):
    """A CSV that cannot be read as a series; the message names the file (and line)."""


@dataclass(frozen=True)
class Series:
    values: np.ndarray  # float64, no NaN (carried forward)
    timestamps_s: np.ndarray | None  # unix seconds per row, None when the time column is unparsable/absent
    name: str = ""


def _parse_time_s(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def carry_forward(values: np.ndarray) -> np.ndarray:
    """NaN -> last observed value; leading NaN -> first observed value."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    if not ok.any():
        raise ValueError("series has no observed values")
    idx = np.where(ok, np.arange(len(v)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = v[idx]
    first = int(np.argmax(ok))
    out[:first] = v[first]
    return out


def read_series_csv(path: Path, time_col: str | None = None, value_col: str | None = None) -> Series:
    """Default columns: time = the first column, value = the second (or the only) column."""
    path = Path(path)
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise SeriesInputError(f"{path}: cannot open ({exc.strerror})") from exc
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise SeriesInputError(f"{path}: empty file (expected a header row)")
        header = [h.strip() for h in header]
        if value_col is None:
            value_col = header[1] if len(header) > 1 else header[0]
        if time_col is None and len(header) > 1:
            time_col = header[0]
        for label, col in (("--value-col", value_col), ("--time-col", time_col)):
            if col is not None and col not in header:
                raise SeriesInputError(f"{path}: no column {col!r} ({label}); columns are {header}")
        vi = header.index(value_col)
        ti = header.index(time_col) if time_col is not None else None
        values: list[float] = []
        times: list[float | None] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            cell = row[vi].strip() if vi < len(row) else ""
            if cell == "" or cell.lower() in ("nan", "na", "null", "none"):
                values.append(math.nan)
            else:
                try:
                    x = float(cell)
                except ValueError:
                    raise SeriesInputError(
                        f"{path}:{line_no}: value {cell!r} in column {value_col!r} is not a number"
                    ) from None
                if math.isinf(x):
                    raise SeriesInputError(
                        f"{path}:{line_no}: value {cell!r} in column {value_col!r} is infinite"
                    )
                values.append(x)
            times.append(_parse_time_s(row[ti]) if ti is not None and ti < len(row) else None)
    if not values:
        raise SeriesInputError(f"{path}: no data rows")
    try:
        v = carry_forward(np.array(values))
    except ValueError:
        raise SeriesInputError(f"{path}: column {value_col!r} has no numeric values") from None
    ts = None
    if times and all(t is not None for t in times):
        ts = np.array(times, dtype=float)
        if np.any(np.diff(ts) <= 0):
            ts = None  # unordered time column: seasons cannot be inferred from it
    return Series(values=v, timestamps_s=ts, name=path.name)


def _median_rows_per_bucket(timestamps_s: np.ndarray, bucket_s: float, offset_s: float = 0.0) -> int | None:
    """Median rows per calendar bucket over interior buckets (first/last may be partial)."""
    buckets = np.floor((timestamps_s + offset_s) / bucket_s).astype(np.int64)
    _, counts = np.unique(buckets, return_counts=True)
    if len(counts) < 3:
        return None
    return int(np.median(counts[1:-1]))


def infer_seasons(timestamps_s: np.ndarray | None) -> tuple[int | None, int | None]:
    """(daily, weekly) season in rows, from rows per calendar day / week.

    Counting rows per day (not 86400 / spacing) keeps the season right for series with regular
    gaps, e.g. a call centre open 07:00-21:00 on weekdays only.
    """
    if timestamps_s is None or len(timestamps_s) < 3:
        return None, None
    daily = _median_rows_per_bucket(timestamps_s, DAY_S)
    # Epoch day 0 is a Thursday: shift by 3 days so weeks start on Monday.
    weekly = _median_rows_per_bucket(timestamps_s, WEEK_S, offset_s=3 * DAY_S)
    if daily is not None and daily < 2:
        daily = None
    if weekly is not None and (daily is None or weekly <= daily):
        weekly = None
    return daily, weekly
