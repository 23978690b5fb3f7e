"""A horizon-aware blend of cheap forecasters, weighted by their own rolling-origin backtest.

At each call: backcast every member at the newest `window_origins` past origins (one vectorised
pass each, see backcasts.py), pick per step ahead convex weights by greedy forward selection on
the MAE there, and forecast with them. p90 is conformal: p50 plus the 90% quantile of the
blend's own h-step errors at the newest `calib_origins` origins, per step, each error divided by
the local scale (recent row-to-row change) at its origin and the quantile multiplied by today's:
intervals widen when the series turns bursty and narrow when it calms down.
Why: the last value wins at step 1 on noisy series, a seasonal or smoothed level further out;
combinations of forecasters routinely beat the best single one, and thousands of inner origins
choose weights far more reliably than the 8 origins of the selection backtest.
"""

from __future__ import annotations

import numpy as np

from controlplane.forecast import backcasts as bc
from controlplane.forecast.forecasters import P90, LastValue, Quantiles, _finish


def greedy_weights(
    preds: np.ndarray, actual: np.ndarray, rounds: int, origin_w: np.ndarray | None = None
) -> np.ndarray:
    """Forward ensemble selection with replacement (Caruana et al. 2004): `rounds` times, add the
    member that most lowers the MAE of the running mean. preds (N, M), actual (N,) -> weights (M,)
    in multiples of 1/rounds. Cheap in the number of members, and it keeps weights sparse.
    origin_w (N,) weighs the inner origins' errors (newer ones more)."""
    w = np.ones(len(actual)) if origin_w is None else origin_w
    counts = np.zeros(preds.shape[1])
    total = np.zeros(len(actual))
    for r in range(1, rounds + 1):
        cand = (total[:, None] + preds) / r
        err = w @ np.abs(cand - actual[:, None])
        j = int(np.argmin(err))
        counts[j] += 1
        total += preds[:, j]
    return counts / rounds


def conformal_offset(residuals: np.ndarray, q: float) -> float:
    """The q quantile of residuals with the finite-sample correction of split conformal."""
    n = len(residuals)
    return float(np.quantile(residuals, min(1.0, q * (1 + 1 / n))))


def local_scale(y: np.ndarray, origins: np.ndarray, rows: int) -> np.ndarray:
    """Mean absolute row-to-row change over the `rows` rows before each origin, floored at a tenth
    of its overall mean: errors are larger where the series is busier or burstier right now."""
    d = np.r_[0.0, np.abs(np.diff(y))]
    c = np.r_[0.0, np.cumsum(d)]
    lo = np.maximum(origins - rows, 1)
    s = (c[origins] - c[lo]) / np.maximum(origins - lo, 1)
    return np.maximum(s, 0.1 * float(d.mean()) + 1e-12)


DEFAULT_MEMBERS = (
    bc.last_value,
    bc.window_mean(6),
    bc.smoothed_level(0.3),
    bc.window_median(30),
    bc.seasonal_profile,
    bc.holt_winters,
)


class Blend:
    name = "blend"
    window_origins = 1500  # inner origins for the weights
    calib_origins = 400  # newest inner origins for the p90 offsets
    min_origins = 40  # fewer: the last value answers
    rounds = 10  # weights in tenths
    half_life_origins = None  # None: every inner origin counts the same
    scale_rows = 12  # rows of the local error scale that normalises residuals; None: unscaled

    def __init__(self, members=DEFAULT_MEMBERS, name: str = "blend") -> None:
        self.members = members
        self.name = name

    def weights_and_preds(self, y: np.ndarray, ts, H: int):
        """(weights (M, H), inner origins, member backcasts (M, N+1, H) with today's row last)."""
        n = len(y)
        lo = bc.min_origin(ts)
        if n - H + 1 - lo < self.min_origins:
            lo = 31  # too short for the seasonal members: they drop out
        first = max(lo, n - H + 1 - self.window_origins)
        origins = np.r_[np.arange(first, n - H + 1), n]
        if len(origins) - 1 < self.min_origins:
            return None
        preds = [f(y, ts, origins, H) for f in self.members]
        preds = np.stack([p for p in preds if p is not None])
        past = origins[:-1]
        W = np.empty((len(preds), H))
        ow = None
        if self.half_life_origins:
            ow = 0.5 ** ((past[-1] - past) / self.half_life_origins)
        for h in range(H):
            W[:, h] = greedy_weights(preds[:, :-1, h].T, y[past + h], self.rounds, ow)
        return W, past, preds

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        y = np.asarray(values, dtype=float)
        H = horizon_steps
        fit = self.weights_and_preds(y, timestamps_s, H)
        if fit is None:
            return LastValue().forecast(y, timestamps_s, H)
        W, past, preds = fit
        blended = np.einsum("mnh,mh->nh", preds, W)  # (N+1, H)
        p50 = blended[-1]
        p90 = np.empty(H)
        origins = np.r_[past, len(y)]
        scale = local_scale(y, origins, self.scale_rows) if self.scale_rows else np.ones(len(origins))
        for h in range(H):
            res = (y[past + h] - blended[:-1, h]) / scale[:-1]
            p90[h] = p50[h] + scale[-1] * conformal_offset(res[-self.calib_origins :], P90)
        return _finish(y, p50, p90)
