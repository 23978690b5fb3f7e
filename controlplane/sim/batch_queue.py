"""Latency of one batching replica under Poisson arrivals, from an exact event simulation.

A Triton replica with dynamic batching is a bulk-service queue: when the replica frees up it
takes everything waiting (up to max_batch) as one batch, which runs for
base_ms + per_item_ms * (b - 1). A request that arrives at an idle replica is served alone at
once (latency exactly base_ms); one that arrives while a batch runs waits for it to end, and at
moderate load often for the next one too, because Poisson arrivals come in clumps. No closed
form gives that distribution, and the fluid fixed point (batch = rate x service) leaves out the
clumps: it read a real replica's median 20-25 % low at 70 % load.

So the simulator looks the distribution up in a table made once per batching curve by
simulating the queue event by event (a few thousand arrivals on a grid of utilisations, all
grid points and replications advanced together as numpy arrays). The table is in units of
base_ms against utilisation = rate / max_rps, so it depends only on per_item_ms / base_ms and
max_batch: the calibration fit's whole grid of curves shares a few dozen tables.

Per utilisation the table keeps three bands that `LatencyGroups` rows can carry: the idle
replica's point mass at base_ms with the waits up to the median, the waits from the median to
the p99, and those from the p99 to the p99.9, each uniform within its band. So the simulated
median and p99 are the event simulation's, and the tail above the p99 is kept.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

UTIL_GRID = np.linspace(0.0, 0.95, 39)  # above 0.95 a tick-level queue carries the excess
_ARRIVALS = 1500  # per replication
_WARMUP = 150  # arrivals dropped from each replication's start (it starts empty)
_REPS = 8
_SEED = 7  # fixed: the same curve always gets the same table


def simulate_latency_ms(
    rates_per_ms: np.ndarray, base_ms: float, per_item_ms: float, max_batch: int, n: int, reps: int, seed: int
) -> np.ndarray:
    """Latency (ms) of every request of `reps` independent replications per rate, shape
    (rates, reps, n). Each replication starts empty; arrivals are Poisson."""
    rates = np.repeat(np.asarray(rates_per_ms, dtype=float), reps)
    gaps = np.random.default_rng(seed).exponential(1.0, (rates.size, n))
    latency = bulk_service_latency_ms(
        np.cumsum(gaps, axis=1) / rates[:, None], base_ms, per_item_ms, max_batch
    )
    return latency.reshape(len(rates_per_ms), reps, n)


def bulk_service_latency_ms(
    arrive_ms: np.ndarray, base_ms: float, per_item_ms: float, max_batch: int
) -> np.ndarray:
    """Latency (ms) of each request of independent replicas, one per row of arrive_ms (sorted
    arrival times in ms; a row shorter than the others is padded with +inf, whose latency comes
    back inf). Each replica starts empty, so rows may be Poisson draws or a real step's sends."""
    q_n, n = arrive_ms.shape
    arrive = np.concatenate([np.asarray(arrive_ms, dtype=float), np.full((q_n, max_batch), np.inf)], axis=1)
    real = np.isfinite(arrive[:, :n]).sum(axis=1)  # requests per row, padding left out
    latency = np.full((q_n, n), np.inf)
    nxt = np.zeros(q_n, dtype=np.int64)  # first request not yet in a batch
    free_ms = np.zeros(q_n)  # when the replica finishes its current batch
    offsets = np.arange(max_batch)
    queues = np.arange(q_n)
    while True:
        q = queues[nxt < real]
        if q.size == 0:
            return latency
        first = nxt[q]
        start = np.maximum(free_ms[q], arrive[q, first])
        cols = first[:, None] + offsets
        window = arrive[q[:, None], cols]
        taken = window <= start[:, None]  # everything already waiting, up to max_batch
        taken[:, 0] = True
        batch = taken.sum(axis=1)  # arrivals are sorted: the taken ones are a prefix
        end = start + base_ms + per_item_ms * (batch - 1)
        keep = taken & (cols < n)
        latency[np.broadcast_to(q[:, None], cols.shape)[keep], cols[keep]] = (end[:, None] - window)[keep]
        free_ms[q] = end
        nxt[q] = first + batch


def max_rps_per_ms(per_ratio: float, max_batch: int) -> float:
    """Most requests per ms a replica with base_ms = 1 serves (full batches back to back)."""
    return max_batch / (1.0 + per_ratio * (max_batch - 1))


TAIL_QUANTILE = 0.999  # the top band ends here (the sample maximum is one request's luck)


def band_table_row(latency: np.ndarray, base: float) -> tuple[float, ...]:
    """(share_1, p_idle_1, x_1, share_2, x_2, x_3) of three bands that carry a latency sample:
    band 1 is the idle replica's point mass at `base` mixed with the waits in [0, x_1] (p_idle_1
    of it is the point mass), band 2 the waits in [x_1, x_2], band 3 those in [x_2, x_3]; each
    band's waits are uniform. The band edges sit at the sample's median and p99."""
    idle = np.isclose(latency, base, rtol=1e-9, atol=1e-9)
    p_idle = float(idle.mean())
    waits = latency[~idle] - base
    if waits.size == 0 or p_idle >= 0.99:
        return 1.0, 1.0, 0.0, 0.0, 0.0, 0.0
    # The sample's q-quantile is the waits' (q - p_idle) / (1 - p_idle) quantile.
    c_1 = (0.5 - p_idle) / (1.0 - p_idle) if p_idle < 0.5 else 0.5
    c_2 = (0.99 - p_idle) / (1.0 - p_idle)
    c_3 = max((TAIL_QUANTILE - p_idle) / (1.0 - p_idle), c_2)
    x_1, x_2, x_3 = np.quantile(waits, [c_1, c_2, c_3])
    busy = 1.0 - p_idle
    share_1 = p_idle + busy * c_1
    return share_1, p_idle / share_1, float(x_1), busy * (c_2 - c_1), float(x_2), float(max(x_3, x_2))


@lru_cache(maxsize=512)
def normalized_table(per_ratio: float, max_batch: int) -> np.ndarray:
    """`band_table_row`s per UTIL_GRID point, waits in units of base_ms."""
    rates = np.maximum(UTIL_GRID, 1e-3) * max_rps_per_ms(per_ratio, max_batch)
    latency = simulate_latency_ms(rates, 1.0, per_ratio, max_batch, _ARRIVALS, _REPS, _SEED)
    return np.array([band_table_row(lat[:, _WARMUP:].ravel(), 1.0) for lat in latency])


def idle_bands(
    base_ms: float, per_item_ms: float, max_batch: int, rate_rps: float
) -> list[tuple[float, float, float, float]]:
    """(share, p_idle, wait_lo_ms, wait_hi_ms) per band of a replica's latency beyond base_ms at
    a steady Poisson rate: the shares sum to 1; a request of a band waits 0 with probability
    p_idle, else uniform over [wait_lo, wait_hi]. Interpolated on the utilisation grid, clamped
    to its ends."""
    ratio = round(per_item_ms / base_ms, 9)  # one table per curve shape
    table = normalized_table(ratio, max_batch)
    util = max(rate_rps, 0.0) / 1000.0 * base_ms / max_rps_per_ms(ratio, max_batch)
    s_1, p_1, x_1, s_2, x_2, x_3 = (float(np.interp(util, UTIL_GRID, table[:, j])) for j in range(6))
    bands = [(s_1, p_1, 0.0, x_1 * base_ms), (s_2, 0.0, x_1 * base_ms, x_2 * base_ms)]
    bands.append((max(1.0 - s_1 - s_2, 0.0), 0.0, x_2 * base_ms, x_3 * base_ms))
    return [b for b in bands if b[0] > 1e-12]
