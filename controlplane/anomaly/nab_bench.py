"""The Numenta Anomaly Benchmark (NAB v1.1) scorer, written from its published rules.

Per file: rows before the probation length (15 % of the rows, at most 750) are not scored.
Each row gets a "sweep" value:
  * inside a window [l, r] (width w = r - l + 1): scaledSigmoid(-(r - i + 1) / w) * tp / scaledSigmoid(-1)
    -- a detection on the window's first row earns exactly tp, one at its end close to 0;
  * outside every window: fp * scaledSigmoid(|i - r_prev| / (w_prev - 1)) after a window, -fp before any.
For a threshold, a row is a detection when its score >= threshold. A window counts its earliest
detection's sweep value, or -fn when it has none; every detection outside windows adds its sweep value.
One threshold per profile is chosen over the whole corpus (the one with the highest total), and
    normalised = 100 * (S - S_null) / (S_perfect - S_null)
with S_null the (optimised) score of a detector that never fires (-fn per window) and S_perfect the
score of one that fires on the first row of every window (tp per window).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from controlplane.anomaly.nab_io import NabSeries, read_corpus, read_scores, read_windows

# NAB's profiles.json (the cost matrices; tnWeight is unused by the scorer).
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11},
}
PROBATION_RATIO = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000 in NAB's sweeper


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """2 * sigmoid(-5 x) - 1, and -1 from x >= 3 (far behind a window)."""
    x = np.asarray(position, dtype=float)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_rows(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_RATIO * n_rows), PROBATION_RATIO * 5000))


@dataclass(frozen=True)
class FileLayout:
    """Where a file's windows are, and each row's unweighted sweep value."""

    key: str
    n_rows: int
    probation: int
    windows: list[tuple[int, int]]  # inclusive row index pairs
    window_of_row: np.ndarray  # -1 outside windows, else window number in this file
    sweep_in: np.ndarray  # scaledSigmoid(..)/maxTP inside windows (0 outside)
    sweep_out: np.ndarray  # scaledSigmoid(..) outside windows (0 inside)


def window_rows(timestamps: np.ndarray, limits) -> list[tuple[int, int]]:
    """Window timestamp limits -> inclusive row index pairs (rows with t1 <= ts <= t2)."""
    out = []
    for t1, t2 in limits:
        lo = int(np.searchsorted(timestamps, np.datetime64(t1, "ms"), "left"))
        hi = int(np.searchsorted(timestamps, np.datetime64(t2, "ms"), "right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out


def layout(key: str, n_rows: int, windows: list[tuple[int, int]]) -> FileLayout:
    idx = np.arange(n_rows)
    window_of_row = np.full(n_rows, -1)
    sweep_in = np.zeros(n_rows)
    sweep_out = np.full(n_rows, -1.0)  # before any window: position 3 -> -1
    for w, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        rows = idx[lo : hi + 1]
        window_of_row[lo : hi + 1] = w
        sweep_in[lo : hi + 1] = scaled_sigmoid(-(hi - rows + 1) / width) / MAX_TP
        sweep_out[lo : hi + 1] = 0.0
        end = windows[w + 1][0] if w + 1 < len(windows) else n_rows
        after = idx[hi + 1 : end]
        # NAB divides by (width - 1); a one-row window would divide by zero there, so treat it as far.
        denom = float(width - 1) if width > 1 else 1e-9
        sweep_out[hi + 1 : end] = scaled_sigmoid(np.abs(hi - after) / denom)
    return FileLayout(key, n_rows, probation_rows(n_rows), windows, window_of_row, sweep_in, sweep_out)


def corpus_layouts(corpus: dict[str, NabSeries], windows_by_key: dict) -> dict[str, FileLayout]:
    out = {}
    for key, series in corpus.items():
        limits = windows_by_key.get(key, [])
        out[key] = layout(key, len(series.values), window_rows(series.timestamps, limits))
    return out


@dataclass
class FileScore:
    score: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows (rows)


def score_file(lay: FileLayout, detections: np.ndarray, cost: dict[str, float]) -> FileScore:
    """Raw NAB score of one file for boolean detections (row >= threshold)."""
    det = np.asarray(detections, dtype=bool).copy()
    det[: lay.probation] = False
    total, tp, fn = 0.0, 0, 0
    for lo, hi in lay.windows:
        if hi < lay.probation:
            continue  # a window entirely in probation has no scorable row (NAB asserts none exist)
        hits = np.flatnonzero(det[lo : hi + 1]) + lo
        if hits.size:
            total += lay.sweep_in[hits[0]] * cost["tpWeight"]
            tp += 1
        else:
            total -= cost["fnWeight"]
            fn += 1
    outside = det & (lay.window_of_row < 0)
    total += float(lay.sweep_out[outside].sum()) * cost["fpWeight"]
    return FileScore(total, tp, fn, int(outside.sum()))


@dataclass
class ProfileResult:
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    tp: int = 0
    fn: int = 0
    fp: int = 0
    per_file: dict[str, float] = field(default_factory=dict)


def optimize_threshold(
    layouts: dict[str, FileLayout], scores: dict[str, np.ndarray], cost: dict[str, float]
) -> tuple[float, float]:
    """(threshold, total raw score) maximising the corpus total, sweeping every distinct score.

    Same result as NAB's Sweeper.calcScoreByThreshold: points sorted by score, descending; a
    threshold's total is taken after all points with that exact score are included.
    """
    s_parts, v_parts, g_parts = [], [], []
    n_windows, gid = 0, 0
    for key, lay in layouts.items():
        sc = np.asarray(scores[key], dtype=float)
        keep = np.arange(lay.n_rows) >= lay.probation
        in_win = lay.window_of_row >= 0
        value = np.where(in_win, lay.sweep_in * cost["tpWeight"], lay.sweep_out * cost["fpWeight"])
        group = np.where(in_win, lay.window_of_row + gid, -1)
        scorable_windows = {int(w) for w in lay.window_of_row[keep & in_win]}
        n_windows += len(scorable_windows)
        gid += len(lay.windows)
        s_parts.append(sc[keep])
        v_parts.append(value[keep])
        g_parts.append(group[keep])
    s = np.concatenate(s_parts) if s_parts else np.zeros(0)
    v = np.concatenate(v_parts) if v_parts else np.zeros(0)
    g = np.concatenate(g_parts) if g_parts else np.zeros(0, dtype=int)
    base = -cost["fnWeight"] * n_windows
    if s.size == 0:
        return 1.1, base
    order = np.argsort(-s, kind="stable")
    s, v, g = s[order], v[order], g[order]
    delta = np.where(g < 0, v, 0.0)
    # A window's contribution is the running max of its detected sweep values, starting at -fn.
    win_pos = np.flatnonzero(g >= 0)
    if win_pos.size:
        by_window = win_pos[np.argsort(g[win_pos], kind="stable")]
        gw = g[by_window]
        starts = np.flatnonzero(np.r_[True, gw[1:] != gw[:-1]])
        ends = np.r_[starts[1:], gw.size]
        for a, b in zip(starts, ends, strict=True):
            pos = by_window[a:b]
            run = np.maximum.accumulate(v[pos])
            prev = np.r_[-cost["fnWeight"], run[:-1]]
            delta[pos] = run - prev
    totals = base + np.cumsum(delta)
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    cand_t = s[last_of_tie]
    cand_v = totals[last_of_tie]
    best = int(np.argmax(cand_v))
    if cand_v[best] <= base:
        return 1.1, base  # firing nowhere is best (NAB's start threshold)
    return float(cand_t[best]), float(cand_v[best])


def score_corpus(
    layouts: dict[str, FileLayout], scores: dict[str, np.ndarray], profiles: dict | None = None
) -> dict[str, ProfileResult]:
    profiles = profiles or PROFILES
    out = {}
    for name, cost in profiles.items():
        threshold, raw = optimize_threshold(layouts, scores, cost)
        zeros = {k: np.zeros(lay.n_rows) for k, lay in layouts.items()}
        _, null = optimize_threshold(layouts, zeros, cost)
        perfect = cost["tpWeight"] * sum(len(lay.windows) for lay in layouts.values())
        res = ProfileResult(threshold, raw, null, perfect, 0.0)
        for key, lay in layouts.items():
            fs = score_file(lay, np.asarray(scores[key]) >= threshold, cost)
            res.per_file[key] = fs.score
            res.tp, res.fn, res.fp = res.tp + fs.tp, res.fn + fs.fn, res.fp + fs.fp
        res.normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
        out[name] = res
    return out


# ---- the windowed Gaussian baseline, as NAB's windowedGaussian detector ----------------------


def windowed_gaussian_scores(values: np.ndarray, window_size: int = 6400, step_size: int = 100) -> np.ndarray:
    """1 - Q(|x - mean| / std) against the mean/std of a window that grows to 6,400 rows then
    slides in steps of 100; the first row scores 0. Causal: row t sees rows < t only.

    Vectorised with prefix sums; same numbers as NAB's row-by-row loop.
    """
    from scipy.special import erfc  # noqa: PLC0415

    x = np.asarray(values, dtype=float)
    n = len(x)
    out = np.zeros(n)
    if n < 2:
        return out
    xs = x - x[0]  # shift for numerically stable sums of squares
    c1 = np.r_[0.0, np.cumsum(xs)]
    c2 = np.r_[0.0, np.cumsum(xs * xs)]
    last = np.arange(n - 1)  # the row processed just before row i = last + 1
    # Row of the latest window update at or before `last`, and the window's first row.
    steps = np.maximum(last - (window_size - 1), 0) // step_size
    upd = np.where(last < window_size, last, window_size - 1 + steps * step_size)
    first = np.where(last < window_size, 0, upd - window_size + 1)
    count = upd - first + 1
    mean = (c1[upd + 1] - c1[first]) / count
    var = np.maximum((c2[upd + 1] - c2[first]) / count - mean * mean, 0.0)
    std = np.sqrt(var)
    std = np.where(std == 0.0, 1e-6, std)
    z = np.abs(xs[1:] - mean) / std
    out[1:] = 1.0 - 0.5 * erfc(z / np.sqrt(2.0))
    return out


# ---- the benchmark entry point ---------------------------------------------------------------


def detector_scores(corpus: dict[str, NabSeries]) -> dict[str, np.ndarray]:
    from controlplane.anomaly.nab_detector import score_series  # noqa: PLC0415

    return {key: score_series(s.values, s.timestamps) for key, s in corpus.items()}


def run_nab_bench(data_dir, labels_json, scores_dir=None, profiles_json=None) -> dict[str, float]:
    """Normalised NAB scores of the three profiles, e.g. {"standard": 71.3, ...}.

    Scores come from `scores_dir/<category>/<name>.csv` (column anomaly_score) when given, else
    fleetpilot's NAB detector is run on the data here.
    """
    report = nab_report(data_dir, labels_json, scores_dir, profiles_json)
    return {name: round(r.normalized, 2) for name, r in report.items()}


def nab_report(data_dir, labels_json, scores_dir=None, profiles_json=None) -> dict[str, ProfileResult]:
    corpus = read_corpus(Path(data_dir))
    windows = read_windows(Path(labels_json))
    layouts = corpus_layouts(corpus, windows)
    if scores_dir is None:
        scores = detector_scores(corpus)
    else:
        scores = {key: read_scores(Path(scores_dir) / key) for key in corpus}
        for key, sc in scores.items():
            if len(sc) != len(corpus[key].values):
                raise ValueError(
                    f"{Path(scores_dir) / key}: {len(sc)} scores for {len(corpus[key].values)} rows"
                )
    profiles = None
    if profiles_json is not None:
        raw = json.loads(Path(profiles_json).read_text())
        profiles = {k: v["CostMatrix"] for k, v in raw.items()}
    return score_corpus(layouts, scores, profiles)
