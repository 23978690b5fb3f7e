"""fleetpilot's detector on NAB series: the robust seasonal detector plus change-point evidence,
turned into one anomaly score per row in [0, 1] with an alert cool-down.

Rules are corpus-wide (no per-file setting): the score of a row is a sigmoid of its novelty (how
far its robust z is above the series' own decaying record, see novelty.py), and once a row scores
at least `alert_ratio` the next `cooldown_rows` rows are damped, as an open incident does not alert
again. Runs many series side by side (padded), so the
whole corpus is one vectorised pass over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controlplane.anomaly import changepoint, novelty, robust


@dataclass(frozen=True)
class NabParams:
    robust: robust.RobustParams = robust.RobustParams()
    cusum: changepoint.CusumParams = changepoint.CusumParams()
    novelty: novelty.NoveltyParams = novelty.NoveltyParams(floor_z=5.0, decay_per_sample=1e-3)
    steepness: float = 3.0  # score = sigmoid(steepness * novelty): 0.5 at the remembered peak
    cusum_weight: float = 0.0  # how much change-point evidence counts relative to z
    alert_ratio: float = 0.45  # a row at or above this opens an "incident"
    cooldown_rows: int = 200  # rows after an alert whose scores are damped
    cooldown_damp: float = 0.3  # multiplier on damped rows


def score_many(
    series: list[tuple[np.ndarray, np.ndarray]], params: NabParams = NabParams()
) -> list[np.ndarray]:
    """Scores for each (values, timestamps) pair; series are padded and stepped together."""
    if not series:
        return []
    lengths = np.array([len(v) for v, _ in series])
    n_series, n_steps = len(series), int(lengths.max())
    values = np.full((n_series, n_steps), np.nan)
    now_s = np.zeros((n_series, n_steps))
    for i, (v, ts) in enumerate(series):
        values[i, : len(v)] = v
        now_s[i, : len(v)] = np.asarray(ts, dtype="datetime64[ms]").astype(np.int64) / 1000.0
    rs = robust.init_state(n_series, params.robust)
    cs = changepoint.init_state(n_series)
    ns = novelty.init_state(n_series)
    cooldown = np.zeros(n_series, dtype=np.int64)
    out = np.zeros((n_series, n_steps))
    for t in range(n_steps):
        ok = t < lengths
        rs, r = robust.step(rs, values[:, t], now_s[:, t], params.robust, mask=ok)
        cs, cp = changepoint.step(cs, r.signed_z, params.cusum, mask=ok & (r.spread > 0))
        surprise = np.maximum(r.z, params.cusum_weight * cp.statistic)
        ns, nov = novelty.step(ns, surprise, params.novelty, mask=ok)
        score = 1.0 / (1.0 + np.exp(-params.steepness * nov))
        damped = np.where(cooldown > 0, score * params.cooldown_damp, score)
        alert = ok & (damped >= params.alert_ratio)
        cooldown = np.where(alert, params.cooldown_rows, np.maximum(cooldown - ok, 0))
        out[:, t] = np.where(ok, damped, 0.0)
    return [out[i, : lengths[i]] for i in range(n_series)]


def score_series(values: np.ndarray, timestamps: np.ndarray, params: NabParams = NabParams()) -> np.ndarray:
    return score_many([(np.asarray(values, dtype=float), timestamps)], params)[0]
