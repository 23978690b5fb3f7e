"""Multivariate detector over a replica's vector (latency, queue, errors, cache hit ratio, GPU
utilisation, memory): an IsolationForest refit every `refit_every` ticks on a rolling window of
recent vectors from all replicas, so odd *combinations* stand out (high latency with an idle GPU).

The state holds the rolling window and the fitted forest (never mutated after fitting: a refit
builds a new one, with a fixed seed, so runs are reproducible). Features are standardised with the
window's median/MAD, which also gives the per-feature deviation used in explanations.

`step(state, X, params) -> (state, MultiOutput)`; X is [replicas, features], NaN = missing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

FEATURES = ("latency_ms", "queue_ms", "error_ratio", "cache_hit_ratio", "gpu_util_ratio", "memory_bytes")


@dataclass(frozen=True)
class MultiParams:
    window_rows: int = 2000  # vectors kept for fitting
    refit_every: int = 60  # ticks between refits
    min_rows: int = 64  # no score before the window has this many rows
    n_estimators: int = 50
    seed: int = 7


@dataclass(frozen=True)
class MultiState:
    window: np.ndarray  # [rows, features] ring buffer
    filled: int
    cursor: int
    ticks_since_fit: int
    model: object | None  # fitted IsolationForest
    center: np.ndarray | None
    scale: np.ndarray | None
    baseline: float  # median anomaly score on the window at fit time


@dataclass(frozen=True)
class MultiOutput:
    score: np.ndarray  # [replicas] in [0, 1]; 0.5 ~ typical, -> 1 isolated quickly
    feature_z: np.ndarray  # [replicas, features] standardised deviation per feature
    fitted: bool


def init_state(n_features: int = len(FEATURES), params: MultiParams = MultiParams()) -> MultiState:
    return MultiState(
        window=np.full((params.window_rows, n_features), np.nan),
        filled=0,
        cursor=0,
        ticks_since_fit=params.refit_every,
        model=None,
        center=None,
        scale=None,
        baseline=0.5,
    )


def _fit(window: np.ndarray, params: MultiParams):
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 (sklearn import is slow)

    center = np.nanmedian(window, axis=0)
    scale = 1.4826 * np.nanmedian(np.abs(window - center), axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.maximum(np.abs(center) * 0.1, 1e-9))
    center = np.where(np.isfinite(center), center, 0.0)
    zw = np.nan_to_num((window - center) / scale)
    model = IsolationForest(n_estimators=params.n_estimators, random_state=params.seed).fit(zw)
    baseline = float(np.median(-model.score_samples(zw)))
    return model, center, scale, baseline


def step(
    state: MultiState, X: np.ndarray, params: MultiParams = MultiParams()
) -> tuple[MultiState, MultiOutput]:
    X = np.atleast_2d(np.asarray(X, dtype=float))
    n = X.shape[0]
    # Append this tick's complete rows to the ring buffer (a copy: the old state stays valid).
    window = state.window.copy()
    rows = X[np.isfinite(X).all(axis=1)]
    cursor, filled = state.cursor, state.filled
    for row in rows[-params.window_rows :]:
        window[cursor] = row
        cursor = (cursor + 1) % params.window_rows
        filled = min(filled + 1, params.window_rows)
    new = replace(
        state, window=window, cursor=cursor, filled=filled, ticks_since_fit=state.ticks_since_fit + 1
    )
    if new.filled >= params.min_rows and new.ticks_since_fit >= params.refit_every:
        model, center, scale, baseline = _fit(window[: new.filled], params)
        new = replace(new, model=model, center=center, scale=scale, baseline=baseline, ticks_since_fit=0)
    if new.model is None:
        return new, MultiOutput(np.zeros(n), np.zeros_like(X), False)
    z = (X - new.center) / new.scale
    raw = -new.model.score_samples(np.nan_to_num(z))  # in (0, 1]; ~0.5 typical for IsolationForest
    # Rescale so the window's typical row sits at 0 and a score of 1 stays 1.
    score = np.clip((raw - new.baseline) / max(1.0 - new.baseline, 1e-9), 0.0, 1.0)
    score = np.where(np.isfinite(X).any(axis=1), score, 0.0)
    return new, MultiOutput(score=score, feature_z=np.nan_to_num(z), fitted=True)
