"""Two-sided CUSUM change-point detection on standardised residuals, vectorised across series.

    up_t   = max(0, up_{t-1}   + min(z_t, cap)  - drift)
    down_t = max(0, down_{t-1} - max(z_t, -cap) - drift)
A sudden level change keeps z on one side, so one of the sums climbs; noise (|z| ~ 1) drains
against `drift`. `z` is capped so a single spike cannot fake a change. When a sum crosses
`threshold` a change point is reported and both sums restart from zero.

Pure: `step(state, z, params) -> (state, ChangeOutput)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CusumParams:
    drift: float = 1.5  # per-sample allowance, in spreads
    cap: float = 4.0  # largest |z| one sample contributes
    threshold: float = 12.0  # sum at which a change point is declared


@dataclass(frozen=True)
class CusumState:
    up: np.ndarray
    down: np.ndarray


@dataclass(frozen=True)
class ChangeOutput:
    statistic: np.ndarray  # max(up, down) before any restart
    direction: np.ndarray  # +1 up, -1 down, 0 none
    change: np.ndarray  # bool: the sum crossed the threshold on this sample


def init_state(n_series: int) -> CusumState:
    return CusumState(up=np.zeros(n_series), down=np.zeros(n_series))


def step(
    state: CusumState, z: np.ndarray, params: CusumParams = CusumParams(), mask: np.ndarray | None = None
) -> tuple[CusumState, ChangeOutput]:
    z = np.asarray(z, dtype=float)
    ok = np.isfinite(z) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(z))
    zc = np.clip(np.where(ok, z, 0.0), -params.cap, params.cap)
    up = np.where(ok, np.maximum(0.0, state.up + zc - params.drift), state.up)
    down = np.where(ok, np.maximum(0.0, state.down - zc - params.drift), state.down)
    stat = np.maximum(up, down)
    change = ok & (stat >= params.threshold)
    direction = np.where(change, np.where(up >= down, 1, -1), 0)
    new = CusumState(up=np.where(change, 0.0, up), down=np.where(change, 0.0, down))
    return new, ChangeOutput(statistic=np.where(ok, stat, 0.0), direction=direction, change=change)
