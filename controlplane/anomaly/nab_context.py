"""Contextual novelty for one series: "a step between two familiar levels that was never taken".

The onset detector (onset.py) fires on records: a value, run median, daily difference or burst
that is larger than anything lately. A change of pattern need not be a record: an oscillation
between levels the series visits every day, or a drop straight from a high level to a low one
that it used to reach only through the middle. This detector, after CAD OSE's idea (contexts over
quantised values, an anomaly when a context has never been seen), looks for those:

1. Each row gets a level class from its signed robust z against the previous `reference_rows`
   rows: sign(z) * floor(log_base(1 + |z|)) -- classes grow logarithmically, so spikes of similar
   size share a class and the alphabet stays small on any scale.
2. A transition (class at t-1, class at t) that was never seen before fires an event when both
   classes are familiar (seen at least `min_class_count` times): a brand-new class is an extreme
   value, which is the onset detector's job.
3. Nothing fires during the first `learn_rows` rows, nor within `refractory_rows` of the last
   event.

The alphabet is finite, so on a stationary series new transitions die out: the false-alarm rate
falls as the series grows. Every quantity at row t uses rows <= t only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controlplane.anomaly.onset import OnsetParams, robust_z


@dataclass(frozen=True)
class ContextParams:
    reference_rows: int = 600  # rows behind t that define "normal" (median, IQR) for the z
    class_base: float = 2.0  # level classes: floor(log_base(1 + |z|)), signed
    min_class_count: int = 10  # both ends of a new transition must have been seen this often
    learn_rows: int = 1500  # no event before this many rows
    refractory_rows: int = 200  # silence after an event
    level: float = 1.0  # the score of an event, in (0, 1]

    def __post_init__(self) -> None:
        for name in ("reference_rows", "refractory_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"ContextParams.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_class_count", "learn_rows"):
            if getattr(self, name) < 0:
                raise ValueError(f"ContextParams.{name} must be >= 0, got {getattr(self, name)}")
        if not self.class_base > 1.0:
            raise ValueError(f"ContextParams.class_base must be > 1, got {self.class_base}")
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"ContextParams.level must be in (0, 1], got {self.level}")


def level_classes(values: np.ndarray, p: ContextParams = ContextParams()) -> np.ndarray:
    """Signed log-magnitude class of each row's robust z (0 before the reference exists)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=int)
    z, med, _ = robust_z(x, OnsetParams(reference_rows=p.reference_rows))
    signed = np.sign(x - np.nan_to_num(med)) * z
    return (np.sign(signed) * np.floor(np.log1p(np.abs(signed)) / math.log(p.class_base))).astype(int)


def transition_events(values: np.ndarray, p: ContextParams = ContextParams()) -> np.ndarray:
    """1.0 on rows where a never-seen transition between familiar classes starts an event, else 0."""
    c = level_classes(values, p)
    out = np.zeros(c.size)
    seen_class: dict[int, int] = {}
    seen_step: set[tuple[int, int]] = set()
    quiet_until = p.learn_rows
    if c.size:
        seen_class[int(c[0])] = 1
    for t in range(1, c.size):
        a, b = int(c[t - 1]), int(c[t])
        new_step = (a, b) not in seen_step
        familiar = seen_class.get(a, 0) >= p.min_class_count and seen_class.get(b, 0) >= p.min_class_count
        seen_step.add((a, b))
        seen_class[b] = seen_class.get(b, 0) + 1
        if new_step and familiar and t >= quiet_until:
            out[t] = 1.0
            quiet_until = t + p.refractory_rows
    return out
