"""Latency of one replica (a batching curve) and the latency distribution of simulated requests.

Replica (Triton dynamic batching): a batch of b requests takes
    service_ms(b) = base_ms + per_item_ms * (b - 1),   b <= max_batch
so throughput b / service_ms(b) rises with the batch size up to max_batch (the capacity
curve). At a steady per-replica rate r the batch that forms while the previous one runs is the
fixed point b = r * service_ms(b) (clipped to [1, max_batch]). With no tick-level queue, a
request's latency is the replica's own Poisson queueing, looked up in a table made by an exact
event simulation of the batcher (batch_queue.py; `latency_rows`). Behind a queue its service
latency is uniform over [s, s * (1 + busy)], s = service_ms(b).

A simulated request's latency = extra (cross-zone) + service latency + queue wait, where the
queue wait of a group of requests is 0 with probability p0 and otherwise uniform over
[wait_lo, wait_hi] (FIFO fluid queue, see fleet.py). `cdf_ms` evaluates the mixture exactly
(the sum of two uniforms has a piecewise-quadratic CDF), vectorised over groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controlplane.sim.batch_queue import idle_bands

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

    def latency_rows(
        self, rate_rps: float, p0: float, wait_lo_ms: float, wait_hi_ms: float
    ) -> list[tuple[float, tuple[float, float, float, float, float]]]:
        """(share, (svc_lo, svc_hi, p0, wait_lo, wait_hi)) LatencyGroups rows, shares summing to
        1, for requests served at a per-replica rate after the given queue wait. With no queue
        wait (p0 = 1) the rows carry the replica's own Poisson queueing instead, from the exact
        bulk-service table (batch_queue.py): a point mass at base_ms (an idle replica) and
        uniform bands of waits through the median, the p99 and the p99.9."""
        if p0 < 1.0:
            lo, hi = self.service_bounds_ms(rate_rps)
            return [(1.0, (lo, hi, p0, wait_lo_ms, wait_hi_ms))]
        base = self.base_ms
        bands = idle_bands(base, self.per_item_ms, self.max_batch, rate_rps)
        return [(share, (base, base, p_idle, lo, hi)) for share, p_idle, lo, hi in bands]

    def service_bounds_ms(self, rate_rps: float) -> tuple[float, float]:
        """(lo, hi) of the uniform service latency at a per-replica rate."""
        b = self.batch_at(rate_rps)
        s = self.service_ms(b)
        busy = min(1.0, max(rate_rps, 0.0) * s / 1000.0 / b)  # batches/s x batch duration
        return s, s * (1.0 + busy)


def rows_mean_ms(rows: list[tuple[float, tuple[float, float, float, float, float]]]) -> float:
    """Mean latency of `latency_rows`: per row the service's uniform plus the wait's, which
    comes with probability 1 - p0, weighted by the rows' shares."""
    return sum(
        share * (0.5 * (svc_lo + svc_hi) + (1.0 - p0) * 0.5 * (wait_lo + wait_hi))
        for share, (svc_lo, svc_hi, p0, wait_lo, wait_hi) in rows
    )


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

    def mean_ms(self) -> float:
        """Mean latency of all requests: per group the extra, the service's uniform, and the
        wait's, which comes with probability 1 - p0."""
        total = float(self.count.sum())
        if total <= 0:
            return float("nan")
        per_group = (
            self.extra_ms
            + 0.5 * (self.svc_lo_ms + self.svc_hi_ms)
            + (1.0 - self.p0) * 0.5 * (self.wait_lo_ms + self.wait_hi_ms)
        )
        return float(np.dot(self.count, per_group) / total)

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
