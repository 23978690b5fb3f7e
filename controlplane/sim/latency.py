"""Latency of one replica (a batching curve) and the latency distribution of simulated requests.

Replica (Triton dynamic batching): a batch of b requests takes
    service_ms(b) = base_ms + per_item_ms * (b - 1),   b <= max_batch
so throughput b / service_ms(b) rises with the batch size up to max_batch (the capacity
curve). At a steady per-replica rate r the batch that forms while the previous one runs is the
fixed point b = r * service_ms(b) (clipped to [1, max_batch]). With no queue, a request finds
the replica idle with probability 1 - busy (busy: the replica's busy fraction) and is served at
once in s = service_ms(b); otherwise it first waits out the batch in progress, uniform over
[0, s] (`latency_row`). Behind a queue its service latency is uniform over [s, s * (1 + busy)].

A simulated request's latency = extra (cross-zone) + service latency + queue wait, where the
queue wait of a group of requests is 0 with probability p0 and otherwise uniform over
[wait_lo, wait_hi] (FIFO fluid queue, see fleet.py). `cdf_ms` evaluates the mixture exactly
(the sum of two uniforms has a piecewise-quadratic CDF), vectorised over groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_MIN_WIDTH_MS = 1e-6  # a zero-width uniform is a point mass; this keeps the formula finite


@dataclass(frozen=True)
class ReplicaModel:
    """One replica's batching curve. Defaults: an LLM-sized replica (about 17.8 rps at most)."""

    base_ms: float = 150.0  # one request alone
    per_item_ms: float = 50.0  # each further request in the batch
    max_batch: int = 16

    def __post_init__(self) -> None:
        if not (self.base_ms > 0 and math.isfinite(self.base_ms)):
            raise ValueError(f"replica base_ms={self.base_ms} must be a finite number > 0")
        if not (self.per_item_ms >= 0 and math.isfinite(self.per_item_ms)):
            raise ValueError(f"replica per_item_ms={self.per_item_ms} must be a finite number >= 0")
        if self.max_batch < 1:
            raise ValueError(f"replica max_batch={self.max_batch} must be >= 1")

    def service_ms(self, batch: float) -> float:
        return self.base_ms + self.per_item_ms * (min(max(batch, 1.0), self.max_batch) - 1.0)

    @property
    def max_rps(self) -> float:
        """Throughput at the largest batch: the most one replica serves."""
        return self.max_batch * 1000.0 / self.service_ms(self.max_batch)

    def batch_at(self, rate_rps: float) -> float:
        """Steady-state batch size at a per-replica rate (fixed point, clipped to [1, max_batch])."""
        r = max(rate_rps, 0.0) / 1000.0  # per ms
        denom = 1.0 - r * self.per_item_ms
        if denom <= 0:
            return float(self.max_batch)
        return min(max(r * (self.base_ms - self.per_item_ms) / denom, 1.0), float(self.max_batch))

    def latency_row(
        self, rate_rps: float, p0: float, wait_lo_ms: float, wait_hi_ms: float
    ) -> tuple[float, float, float, float, float]:
        """(svc_lo, svc_hi, p0, wait_lo, wait_hi) of a LatencyGroups row for requests served at a
        per-replica rate after the given queue wait. With no queue wait (p0 = 1) the wait columns
        carry the batch in progress instead: none with probability 1 - busy, else uniform over
        [0, s]. So at moderate load most requests take s, and the tail 2 s, as a real batcher's do
        (a uniform over [s, s * (1 + busy)] put the median too high and the p99 too low)."""
        lo, hi = self.service_bounds_ms(rate_rps)
        if p0 < 1.0:
            return lo, hi, p0, wait_lo_ms, wait_hi_ms
        busy = hi / lo - 1.0
        # A request that waits joins the batch formed meanwhile: the arrivals over half a batch.
        waited_ms = self.service_ms(self.batch_at(rate_rps) + max(rate_rps, 0.0) * lo / 2000.0)
        return lo, lo, 1.0 - busy, waited_ms - lo, waited_ms

    def service_bounds_ms(self, rate_rps: float) -> tuple[float, float]:
        """(lo, hi) of the uniform service latency at a per-replica rate."""
        b = self.batch_at(rate_rps)
        s = self.service_ms(b)
        busy = min(1.0, max(rate_rps, 0.0) * s / 1000.0 / b)  # batches/s x batch duration
        return s, s * (1.0 + busy)


def row_mean_ms(row: tuple[float, float, float, float, float]) -> float:
    """Mean latency of a `latency_row` (svc_lo, svc_hi, p0, wait_lo, wait_hi): the service's
    uniform plus the wait's, which comes with probability 1 - p0."""
    svc_lo, svc_hi, p0, wait_lo, wait_hi = row
    return 0.5 * (svc_lo + svc_hi) + (1.0 - p0) * 0.5 * (wait_lo + wait_hi)


def _g(z: np.ndarray) -> np.ndarray:
    z = np.maximum(z, 0.0)
    return 0.5 * z * z


def cdf_sum_uniform(x, a1, b1, a2, b2) -> np.ndarray:
    """P(U1 + U2 <= x) for independent U1 ~ U[a1, b1], U2 ~ U[a2, b2] (arrays broadcast)."""
    # A (near) point mass becomes a tiny uniform ending at it, so P(X <= point) counts it.
    b1 = np.asarray(b1, dtype=float)
    b2 = np.asarray(b2, dtype=float)
    l1 = np.maximum(b1 - a1, _MIN_WIDTH_MS)
    l2 = np.maximum(b2 - a2, _MIN_WIDTH_MS)
    a1 = b1 - l1
    a2 = b2 - l2
    num = _g(x - a1 - a2) - _g(x - b1 - a2) - _g(x - a1 - b2) + _g(x - b1 - b2)
    return np.clip(num / (l1 * l2), 0.0, 1.0)


def cdf_uniform(x, a, b) -> np.ndarray:
    b = np.asarray(b, dtype=float)
    width = np.maximum(b - a, _MIN_WIDTH_MS)
    return np.clip((x - (b - width)) / width, 0.0, 1.0)


@dataclass
class LatencyGroups:
    """Groups of requests that share one latency distribution (columns, one row per group)."""

    count: np.ndarray
    extra_ms: np.ndarray
    svc_lo_ms: np.ndarray
    svc_hi_ms: np.ndarray
    p0: np.ndarray  # probability of no queue wait
    wait_lo_ms: np.ndarray
    wait_hi_ms: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> LatencyGroups:
        """From (count, extra_ms, svc_lo, svc_hi, p0, wait_lo, wait_hi) tuples, one per group."""
        arr = np.array(rows, dtype=float) if rows else np.zeros((0, 7))
        return cls(*(arr[:, i] for i in range(7)))

    def cdf(self, x_ms: float) -> np.ndarray:
        """Per group: fraction of its requests with latency <= x_ms."""
        y = x_ms - self.extra_ms
        no_wait = cdf_uniform(y, self.svc_lo_ms, self.svc_hi_ms)
        waited = cdf_sum_uniform(y, self.svc_lo_ms, self.svc_hi_ms, self.wait_lo_ms, self.wait_hi_ms)
        return self.p0 * no_wait + (1.0 - self.p0) * waited

    def fraction_within(self, x_ms: float) -> float:
        total = float(self.count.sum())
        if total <= 0:
            return float("nan")
        return float(np.dot(self.count, self.cdf(x_ms)) / total)

    def quantile_grid_ms(self, q: float, points: int = 256) -> float:
        """The q-quantile read off the CDF on a grid of `points` latencies (one vectorised pass;
        resolution max latency / points): cheap enough to run on every decision."""
        total = float(self.count.sum())
        if total <= 0:
            return float("nan")
        top = float(np.max(self.extra_ms + self.svc_hi_ms + self.wait_hi_ms)) + 1e-6
        xs = np.linspace(0.0, top, points)
        y = xs[:, None] - self.extra_ms[None, :]
        no_wait = cdf_uniform(y, self.svc_lo_ms, self.svc_hi_ms)
        waited = cdf_sum_uniform(y, self.svc_lo_ms, self.svc_hi_ms, self.wait_lo_ms, self.wait_hi_ms)
        frac = ((self.p0 * no_wait + (1.0 - self.p0) * waited) @ self.count) / total
        i = int(np.searchsorted(frac, q - 1e-12))
        return float(xs[min(i, points - 1)])

    def quantile_ms(self, q: float, tol_ms: float = 0.01) -> float:
        """The q-quantile of all requests' latency (bisection on the exact mixture CDF)."""
        if float(self.count.sum()) <= 0:
            return float("nan")
        lo = 0.0
        hi = float(np.max(self.extra_ms + self.svc_hi_ms + self.wait_hi_ms)) + 1.0
        while hi - lo > max(tol_ms, 1e-9 * hi):
            mid = 0.5 * (lo + hi)
            if self.fraction_within(mid) >= q:
                hi = mid
            else:
                lo = mid
        return hi
