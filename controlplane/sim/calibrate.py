"""Calibrate the simulated replica against a real one: fit the batching curve to profiled points.

`steady_latency_ms` is what the simulator predicts for one replica offered a fixed rate for a
step (constant spacing, as the profiler sends, or Poisson); `fit_replica_model` picks the
batching curve (base_ms, per_item_ms, max_batch) whose predictions best match measured p99s
(least squares on log latency over a grid: robust, no optimiser dependency).

`replayed_quantile_ms` and `fit_replica_to_steps` do the same on the very arrivals a real step
sent (common random numbers): the replica's bulk-service queue is replayed on them, so a step
whose Poisson draw came in clumps is compared with the model under those clumps. At 70-90 % of
a batching replica's capacity the median of 225 Poisson requests moves 16-20 % (sd) from one
draw to the next, so a 15 % check on fresh draws is a coin toss even for an exact model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from controlplane.capacity.model import LoadPoint
from controlplane.sim.batch_queue import bulk_service_latency_ms
from controlplane.sim.fleet import Fleet, FleetModel
from controlplane.sim.latency import LatencyGroups, ReplicaModel

BATCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


def serve_one_replica(
    fleet: Fleet, now_s: float, tick_s: float, arrivals: float
) -> tuple[list[tuple], float]:
    """One tick of a one-replica fleet without zones -> (its LatencyGroups rows, requests served)."""
    groups, _, _ = fleet.serve(now_s, tick_s, arrivals)
    served = sum(g[0] for g in groups)
    rate = fleet.replica_load_rps or 0.0
    replica = fleet.model.replica
    rows = [(g[0] * share, 0.0, *row) for g in groups for share, row in replica.latency_rows(rate, *g[1:])]
    return rows, served


def steady_latency_ms(
    replica: ReplicaModel,
    rate_rps: float,
    step_s: float = 5.0,
    q: float = 0.99,
    tick_s: float = 0.1,
    poisson: bool = False,
    seed: int = 0,
) -> float:
    """The q-quantile latency the simulator gives one replica offered rate_rps for step_s."""
    if not (rate_rps > 0 and step_s > 0):
        raise ValueError(f"rate_rps={rate_rps} and step_s={step_s} must be > 0")
    ticks = max(1, math.ceil(step_s / tick_s))
    if poisson:
        arrivals = np.random.default_rng(seed).poisson(rate_rps * tick_s, size=ticks).astype(float)
    else:
        arrivals = np.full(ticks, rate_rps * tick_s)
    fleet = Fleet(FleetModel(replica, startup_s=0.0), 1, seed=seed)
    cols = []
    k = 0
    while k < ticks or fleet.queue:  # after the step, the stragglers drain
        rows, _ = serve_one_replica(fleet, k * tick_s, tick_s, float(arrivals[k]) if k < ticks else 0.0)
        cols += rows
        k += 1
    return LatencyGroups.from_rows(cols).quantile_ms(q)


def fit_replica_model(
    rates_rps: Sequence[float],
    latency_ms: Sequence[float],
    q: float = 0.99,
    step_s: float = 5.0,
    max_batch: int | None = None,
) -> ReplicaModel:
    """The batching curve whose q-quantile latency best matches the measured one at each rate
    (least squares on log latency over a grid, then a finer grid around the best). max_batch:
    the model's configured max_batch_size when known (Triton's model config); else fitted too,
    and a small batch with a steep per-item cost can then pass for a large one on noisy points."""
    pairs = [(r, x) for r, x in zip(rates_rps, latency_ms, strict=True) if r > 0 and x is not None and x > 0]
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 measured (rate, latency) pairs, got {len(pairs)}")

    def predict_ms(model: ReplicaModel) -> list[float]:
        return [steady_latency_ms(model, r, step_s, q=q, tick_s=0.1) for r, _ in pairs]

    return _grid_fit(predict_ms, [x for _, x in pairs], max_batch)


def _grid_fit(
    predict_ms: Callable[[ReplicaModel], Sequence[float]], measured_ms: Sequence[float], max_batch: int | None
) -> ReplicaModel:
    """The curve whose predictions (one per measurement) best match `measured_ms`, least squares
    on log latency: on a coarse grid (base_ms around the lowest latency measured, per_item_ms /
    base_ms in [0, 1.2], max_batch as given or from BATCH_GRID), then on a finer grid around it."""
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch={max_batch} must be >= 1 (or None to fit it)")
    batches = BATCH_GRID if max_batch is None else (max_batch,)
    measured = np.log(measured_ms)
    low_ms = float(np.exp(measured.min()))

    def error(model: ReplicaModel) -> float:
        return float(np.sum((np.log(predict_ms(model)) - measured) ** 2))

    def best(bases, ratios, batches) -> ReplicaModel:
        grid = itertools.product(bases, ratios, batches)
        return min((ReplicaModel(float(b), float(b * r), m) for b, r, m in grid), key=error)

    coarse = best(low_ms * np.linspace(0.5, 1.3, 9), np.linspace(0.0, 1.2, 13), batches)
    # Then a finer grid around it: near saturation the latency turns on a few percent of
    # per_item_ms, finer than the coarse grid's steps.
    ratio = coarse.per_item_ms / coarse.base_ms
    at = batches.index(coarse.max_batch)
    return best(
        coarse.base_ms * np.linspace(0.95, 1.05, 5),
        np.maximum(ratio + np.linspace(-0.06, 0.06, 7), 0.0),
        batches[max(at - 1, 0) : at + 2],
    )


@dataclass(frozen=True)
class MeasuredStep:
    """One profiling step of a real replica, request by request in send order: when each went
    out (seconds from the step's start) and its latency (None: failed). The first `warmup`
    requests met an emptier replica than the steady state's and are not compared."""

    sent_s: tuple[float, ...]
    latency_ms: tuple[float | None, ...]
    warmup: int = 0

    def __post_init__(self) -> None:
        if len(self.sent_s) != len(self.latency_ms) or not self.sent_s:
            raise ValueError(
                f"a step needs one send time per latency, at least one: got {len(self.sent_s)} send times "
                f"and {len(self.latency_ms)} latencies"
            )
        if not all(math.isfinite(t) for t in self.sent_s) or list(self.sent_s) != sorted(self.sent_s):
            raise ValueError("a step's send times must be finite and in send order")
        bad = [x for x in self.latency_ms if x is not None and not (x > 0 and math.isfinite(x))]
        if bad:
            raise ValueError(f"a step's latencies must be finite and > 0 ms (None: failed), got {bad[:3]}")

    def compared(self) -> np.ndarray:
        """Mask of the requests compared: past the warm-up, and answered (a failed one's None
        reads NaN; answered latencies are finite, checked above)."""
        return (np.arange(len(self.sent_s)) >= self.warmup) & ~np.isnan(self._latency())

    def measured_ms(self) -> np.ndarray:
        return self._latency()[self.compared()]

    def _latency(self) -> np.ndarray:
        return np.array(self.latency_ms, dtype=float)


def replayed_latency_ms(replica: ReplicaModel, steps: Sequence[MeasuredStep]) -> list[np.ndarray]:
    """Per step, its compared requests' latencies when the replica model's bulk-service queue is
    offered the step's own send times (each step starting empty; all steps in one pass)."""
    n = max(len(s.sent_s) for s in steps)
    arrive = np.full((len(steps), n), np.inf)
    for row, s in enumerate(steps):
        arrive[row, : len(s.sent_s)] = np.asarray(s.sent_s) * 1000.0
    latency = bulk_service_latency_ms(arrive, replica.base_ms, replica.per_item_ms, replica.max_batch)
    return [latency[row, : len(s.sent_s)][s.compared()] for row, s in enumerate(steps)]


def replayed_quantile_ms(replica: ReplicaModel, steps: Sequence[MeasuredStep], q: float = 0.5) -> float:
    """The q-quantile of the replayed latencies, pooled over the steps."""
    return float(np.quantile(np.concatenate(replayed_latency_ms(replica, steps)), q))


def measured_quantile_ms(steps: Sequence[MeasuredStep], q: float = 0.5) -> float:
    """The q-quantile of the measured latencies, pooled over the steps."""
    return float(np.quantile(np.concatenate([s.measured_ms() for s in steps]), q))


def fit_replica_to_steps(
    steps: Sequence[MeasuredStep], q: float = 0.5, max_batch: int | None = None
) -> ReplicaModel:
    """The batching curve whose replayed q-quantile best matches each measured step's (least
    squares on log latency, the grid of fit_replica_model)."""
    steps = [s for s in steps if s.compared().any()]
    if len(steps) < 2:
        raise ValueError(f"need at least 2 steps with answered requests past their warm-up, got {len(steps)}")

    def predict_ms(model: ReplicaModel) -> list[float]:
        return [float(np.quantile(x, q)) for x in replayed_latency_ms(model, steps)]

    return _grid_fit(predict_ms, [measured_quantile_ms([s], q) for s in steps], max_batch)


def fit_to_points(points: Sequence[LoadPoint], step_s: float = 5.0) -> ReplicaModel:
    """fit_replica_model on a profile's p99s (its failed points left out)."""
    ok = [p for p in points if not p.failed()]
    return fit_replica_model([p.offered_rps for p in ok], [p.p99_ms for p in ok], 0.99, step_s)  # type: ignore[misc]
