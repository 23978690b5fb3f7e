"""Reading and writing NAB-style series: `timestamp,value` in, `timestamp,value,anomaly_score` out.

Errors name the file and the 1-based line so a bad row in a 4,000-line file is found at once.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class NabInputError(ValueError):
    """A data or label file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class NabSeries:
    key: str  # "<category>/<name>.csv", the key used by NAB's label files
    timestamps_raw: list[str]  # as written in the file, echoed unchanged in the output
    timestamps: np.ndarray  # datetime64[ms]
    values: np.ndarray  # float64


def read_series(path: Path, key: str | None = None) -> NabSeries:
    path = Path(path)
    key = key or f"{path.parent.name}/{path.name}"
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise NabInputError(f"{path}: empty file (expected header 'timestamp,value')")
        cols = [c.strip() for c in header]
        missing = [c for c in ("timestamp", "value") if c not in cols]
        if missing:
            raise NabInputError(
                f"{path}:1: missing column(s) {', '.join(missing)} (header is {','.join(cols)})"
            )
        ts_col, value_col = cols.index("timestamp"), cols.index("value")
        stamps: list[str] = []
        values: list[float] = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(ts_col, value_col):
                raise NabInputError(f"{path}:{line_no}: expected {len(cols)} columns, got {len(row)}")
            raw_value = row[value_col].strip()
            try:
                value = float(raw_value)
            except ValueError:
                raise NabInputError(f"{path}:{line_no}: value {raw_value!r} is not a number") from None
            if not np.isfinite(value):
                raise NabInputError(f"{path}:{line_no}: value {raw_value!r} is not finite")
            stamps.append(row[ts_col].strip())
            values.append(value)
    try:
        ts = np.array(stamps, dtype="datetime64[ms]")
    except ValueError:
        ts = np.empty(len(stamps), dtype="datetime64[ms]")
        for i, s in enumerate(stamps):
            try:
                ts[i] = np.datetime64(s, "ms")
            except ValueError:
                raise NabInputError(f"{path}:{i + 2}: timestamp {s!r} is not a date-time") from None
    return NabSeries(key=key, timestamps_raw=stamps, timestamps=ts, values=np.asarray(values, dtype=float))


def list_corpus(data_dir: Path) -> list[tuple[str, Path]]:
    """`(<category>/<name>.csv, path)` for every data file, sorted for a stable order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NabInputError(f"{data_dir}: not a directory")
    files = sorted(p for p in data_dir.glob("*/*.csv") if p.is_file())
    return [(f"{p.parent.name}/{p.name}", p) for p in files]


def read_corpus(data_dir: Path) -> dict[str, NabSeries]:
    return {key: read_series(path, key) for key, path in list_corpus(data_dir)}


def write_scores(path: Path, series: NabSeries, scores: np.ndarray) -> None:
    if len(scores) != len(series.values):
        raise ValueError(f"{series.key}: {len(scores)} scores for {len(series.values)} rows")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, score in zip(series.timestamps_raw, series.values, scores, strict=True):
            w.writerow([stamp, repr(float(value)), f"{float(score):.6f}"])


def read_scores(path: Path) -> np.ndarray:
    """The `anomaly_score` column of a results file."""
    with Path(path).open(newline="") as fh:
        reader = csv.reader(fh)
        header = [c.strip() for c in next(reader, [])]
        if "anomaly_score" not in header:
            raise NabInputError(f"{path}:1: missing column anomaly_score")
        col = header.index("anomaly_score")
        out = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                out.append(float(row[col]))
            except (ValueError, IndexError):
                raise NabInputError(f"{path}:{line_no}: anomaly_score is not a number") from None
    return np.asarray(out, dtype=float)


def read_windows(labels_json: Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """NAB `combined_windows.json`: file key -> [(start, end)] timestamps."""
    try:
        raw = json.loads(Path(labels_json).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NabInputError(f"{labels_json}: cannot read windows ({exc})") from None
    out: dict[str, list[tuple[np.datetime64, np.datetime64]]] = {}
    for key, windows in raw.items():
        try:
            out[key] = sorted((np.datetime64(a, "ms"), np.datetime64(b, "ms")) for a, b in windows)
        except (TypeError, ValueError):
            raise NabInputError(f"{labels_json}: windows of {key!r} are not [start, end] pairs") from None
    return out
