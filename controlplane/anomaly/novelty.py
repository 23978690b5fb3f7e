"""Calibrates a raw surprise against the series' own history: "larger than what this series does".

A robust z of 300 is routine for a series that bursts every night; a z of 8 is news for a quiet
one. We keep, per series, a slowly decaying maximum of log(1 + z) and report how far the current
value is above it (in log units). The decay lets a series that has calmed down become sensitive
again (half of a log unit per `decay_samples`).

Pure: `step(state, z, params) -> (state, novelty)`, vectorised across series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoveltyParams:
    floor_z: float = 4.0  # the history never claims less than this (noise alone reaches ~3-4)
    decay_per_sample: float = 2e-4  # log units per sample the remembered maximum sinks
    warmup_samples: int = 12  # samples before novelty is reported (the history is empty)


@dataclass(frozen=True)
class NoveltyState:
    n: np.ndarray
    peak: np.ndarray  # decaying max of log1p(z)


def init_state(n_series: int) -> NoveltyState:
    return NoveltyState(n=np.zeros(n_series, dtype=np.int64), peak=np.zeros(n_series))


def step(
    state: NoveltyState,
    z: np.ndarray,
    params: NoveltyParams = NoveltyParams(),
    mask: np.ndarray | None = None,
) -> tuple[NoveltyState, np.ndarray]:
    z = np.abs(np.asarray(z, dtype=float))
    ok = np.isfinite(z) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(z))
    a = np.log1p(np.where(ok, z, 0.0))
    ref = np.maximum(state.peak, np.log1p(params.floor_z))
    novelty = np.where(ok & (state.n >= params.warmup_samples), a - ref, -np.inf)
    decayed = np.maximum(state.peak - params.decay_per_sample, 0.0)
    peak = np.where(ok, np.maximum(decayed, a), state.peak)
    return NoveltyState(n=state.n + ok, peak=peak), novelty
