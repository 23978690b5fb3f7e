"""Combiner: the detectors' evidence for one series -> one score in [0, 1] with an explanation.

Each detector's raw output is mapped to [0, 1] by a ramp (no evidence below `lo`, full at `hi`),
then combined as a noisy-OR, 1 - prod(1 - s_i): one strong detector is enough, and agreeing weak
ones add up. A detector "fired" when its own ramp is at least 0.5. The explanation names the metric,
the expected range (expected +- `band_sigmas` spreads), the observed value and the detectors fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Ramp:
    lo: float
    hi: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((np.abs(np.asarray(x, dtype=float)) - self.lo) / (self.hi - self.lo), 0.0, 1.0)


@dataclass(frozen=True)
class CombineParams:
    robust: Ramp = Ramp(3.0, 8.0)  # |z| of the seasonal robust detector
    peer: Ramp = Ramp(2.5, 6.0)  # |z| against the other replicas
    changepoint: Ramp = Ramp(0.0, 1.0)  # 1 on a detected change point
    multivariate: Ramp = Ramp(0.3, 0.7)  # rescaled isolation score
    band_sigmas: float = 3.0
    fired_ratio: float = 0.5


@dataclass(frozen=True)
class Evidence:
    """Per-series arrays, all the same length; missing detectors pass zeros."""

    observed: np.ndarray
    expected: np.ndarray
    spread: np.ndarray
    robust_z: np.ndarray
    peer_z: np.ndarray
    change: np.ndarray  # bool
    multivariate: np.ndarray


@dataclass(frozen=True)
class Explanation:
    metric: str
    observed: float
    expected: float
    expected_low: float
    expected_high: float
    detectors: tuple[str, ...]  # the ones that fired, strongest first
    detector_scores: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        fired = ", ".join(self.detectors) or "none"
        return (
            f"{self.metric}={self.observed:.4g} outside expected {self.expected_low:.4g}..{self.expected_high:.4g}"
            f" (detectors: {fired})"
        )


def detector_scores(ev: Evidence, params: CombineParams = CombineParams()) -> dict[str, np.ndarray]:
    return {
        "robust": params.robust(ev.robust_z),
        "peer": params.peer(ev.peer_z),
        "changepoint": params.changepoint(np.asarray(ev.change, dtype=float)),
        "multivariate": params.multivariate(ev.multivariate),
    }


def combine(
    ev: Evidence, params: CombineParams = CombineParams()
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(score in [0,1] per series, per-detector scores). Vectorised: no Python per series."""
    parts = detector_scores(ev, params)
    keep = np.ones_like(np.asarray(ev.observed, dtype=float))
    for s in parts.values():
        keep = keep * (1.0 - s)
    return 1.0 - keep, parts


def explain(
    i: int, metric: str, ev: Evidence, parts: dict[str, np.ndarray], params: CombineParams = CombineParams()
):
    """Explanation for series i (built only for series worth reporting)."""
    scores = {name: float(s[i]) for name, s in parts.items()}
    fired = tuple(n for n, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s >= params.fired_ratio)
    exp, spr = float(ev.expected[i]), float(ev.spread[i])
    band = params.band_sigmas * (spr if np.isfinite(spr) else 0.0)
    return Explanation(
        metric=metric,
        observed=float(ev.observed[i]),
        expected=exp,
        expected_low=exp - band,
        expected_high=exp + band,
        detectors=fired,
        detector_scores=scores,
    )
