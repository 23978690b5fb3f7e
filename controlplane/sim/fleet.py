"""The simulated fleet of one model: replicas (numpy arrays, one slot per replica) and a FIFO
fluid queue in front of them.

Replicas: a scale-up starts replicas that serve from now + startup_s (billed from the order);
a scale-down removes replicas still starting first (the newest), then ready ones. A failure
(exponential, mean time between failures mtbf_s per ready replica) restarts the replica as a
Deployment would: it counts as asked for and billed, and serves again after startup_s.
Replicas are spread over zones; arrivals come from each zone in proportion to its share and
are served locally while the zone has capacity, the rest crosses zones (+cross_zone_ms).

Queue: arrivals of a tick form a cohort spread uniformly over the tick. Each tick the ready
replicas serve n_ready * max_rps * tick_s requests, oldest cohorts first. A served piece of a
cohort maps its arrival times linearly onto its service times (FIFO), so its queue wait is
linear along the piece: 0 where service would come before arrival (the replica was idle),
otherwise uniform between the ends (see latency.LatencyGroups).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from controlplane.sim.latency import ReplicaModel

LOAD_LEVEL_TAU_S = 10.0  # a replica's queue settles within a few batches; load moves slower


@dataclass(frozen=True)
class FleetModel:
    replica: ReplicaModel = ReplicaModel()
    startup_s: float = 60.0  # order -> serving
    zones: int = 1
    cross_zone_ms: float = 2.0  # added to a request served in another zone than its own
    mtbf_s: float = 0.0  # mean time between failures of one ready replica; 0: no failures

    def __post_init__(self) -> None:
        if not (self.startup_s >= 0 and math.isfinite(self.startup_s)):
            raise ValueError(f"startup_s={self.startup_s} must be a finite number of seconds >= 0")
        if self.zones < 1:
            raise ValueError(f"zones={self.zones} must be >= 1")
        if not (self.cross_zone_ms >= 0 and math.isfinite(self.cross_zone_ms)):
            raise ValueError(f"cross_zone_ms={self.cross_zone_ms} must be a finite number >= 0")
        if not (self.mtbf_s >= 0 and math.isfinite(self.mtbf_s)):
            raise ValueError(f"mtbf_s={self.mtbf_s} must be a finite number of seconds >= 0 (0: none)")


def wait_piece(w_start_s: float, w_end_s: float) -> tuple[float, float, float]:
    """A wait linear from w_start to w_end along a piece of requests, clipped at 0 ->
    (p0, lo_s, hi_s): no wait with probability p0, else uniform over [lo, hi]."""
    a, b = min(w_start_s, w_end_s), max(w_start_s, w_end_s)
    if b <= 0:
        return 1.0, 0.0, 0.0
    if a >= 0:
        return 0.0, a, b
    p0 = -a / (b - a)
    return p0, 0.0, b


class Fleet:
    """Replica slots (vectorised) and the queue of one model."""

    def __init__(self, model: FleetModel, initial_replicas: int, seed: int = 0, now_s: float = 0.0):
        if initial_replicas < 0:
            raise ValueError(f"initial_replicas={initial_replicas} must be >= 0")
        self.model = model
        self.rng = np.random.default_rng(seed)
        slots = max(16, 2 * initial_replicas)
        self.ready_at_s = np.full(slots, np.inf)
        self.alive = np.zeros(slots, dtype=bool)
        self.zone = np.zeros(slots, dtype=np.int64)
        self.queue: deque[list[float]] = deque()  # [arrival tick start, total, remaining]
        self.queue_len = 0.0
        self.failures = 0
        # Served requests per second per ready replica, smoothed over LOAD_LEVEL_TAU_S: the
        # load a replica's own batching queue sees (latency.ReplicaModel.latency_rows). One
        # tick's count would double count: its excess over what the replicas serve already
        # queues here, tick by tick.
        self.replica_load_rps: float | None = None
        self._spec = 0
        self._cache: tuple[float, float, np.ndarray] | None = None  # (from, until, ready by zone)
        self._add(initial_replicas, now_s - model.startup_s)  # ready at the start

    # ---- replicas ------------------------------------------------------------------------

    @property
    def spec(self) -> int:
        return self._spec

    def ready_mask(self, now_s: float) -> np.ndarray:
        return self.alive & (self.ready_at_s <= now_s + 1e-9)

    def ready_by_zone(self, now_s: float) -> np.ndarray:
        """Ready replicas per zone; cached until the next replica becomes ready or the fleet
        changes (most ticks change nothing: one vector pass per change, not per tick)."""
        c = self._cache
        if c is not None and c[0] <= now_s < c[1]:
            return c[2]
        mask = self.ready_mask(now_s)
        by_zone = np.bincount(self.zone[mask], minlength=self.model.zones)
        pending = self.ready_at_s[self.alive & ~mask]
        until = float(pending.min()) - 1e-9 if len(pending) else np.inf
        self._cache = (now_s, until, by_zone)
        return by_zone

    def ready(self, now_s: float) -> int:
        return int(self.ready_by_zone(now_s).sum())

    def _add(self, k: int, ordered_s: float) -> None:
        if k <= 0:
            return
        free = np.flatnonzero(~self.alive)
        if len(free) < k:
            grow = max(k - len(free), len(self.alive))
            self.ready_at_s = np.concatenate([self.ready_at_s, np.full(grow, np.inf)])
            self.alive = np.concatenate([self.alive, np.zeros(grow, dtype=bool)])
            self.zone = np.concatenate([self.zone, np.zeros(grow, dtype=np.int64)])
            free = np.flatnonzero(~self.alive)
        idx = free[:k]
        counts = np.bincount(self.zone[self.alive], minlength=self.model.zones)
        # Fill the emptiest zones first, so zones stay balanced as the fleet moves.
        order = np.argsort(counts, kind="stable")
        self.zone[idx] = order[np.arange(k) % self.model.zones]
        self.alive[idx] = True
        self.ready_at_s[idx] = ordered_s + self.model.startup_s
        self._spec += k
        self._cache = None

    def scale_to(self, replicas: int, now_s: float) -> int:
        """Set the replica count; returns the change (+ added, - removed)."""
        if replicas < 0:
            raise ValueError(f"replicas={replicas} must be >= 0")
        delta = replicas - self.spec
        if delta > 0:
            self._add(delta, now_s)
        elif delta < 0:
            idx = np.flatnonzero(self.alive)
            # Still starting first (latest ready time), then the highest slots.
            order = np.lexsort((-idx, -self.ready_at_s[idx]))
            gone = idx[order[:-delta]]
            self.alive[gone] = False
            self.ready_at_s[gone] = np.inf
            self._spec -= len(gone)
            self._cache = None
        return delta

    def fail(self, now_s: float, tick_s: float) -> int:
        """Random failures this tick; a failed replica restarts (serves again after startup_s)."""
        if self.model.mtbf_s <= 0:
            return 0
        n = int(self.rng.binomial(self.ready(now_s), min(1.0, tick_s / self.model.mtbf_s)))
        if n:
            ready = np.flatnonzero(self.ready_mask(now_s))
            hit = self.rng.choice(ready, size=n, replace=False)
            self.ready_at_s[hit] = now_s + self.model.startup_s
            self.failures += n
            self._cache = None
        return n

    # ---- serving -------------------------------------------------------------------------

    def serve(self, now_s: float, tick_s: float, arrivals: float) -> tuple[list[tuple], float, int]:
        """One tick: queue the arrivals, serve FIFO with the ready replicas.

        Returns (groups, spill ratio, ready replicas); a group is (count, p0, wait_lo_ms,
        wait_hi_ms) for requests served this tick (service latency and spill are the caller's)."""
        by_zone = self.ready_by_zone(now_s)
        ready = int(by_zone.sum())
        if arrivals > 0:
            self.queue.append([now_s, float(arrivals), float(arrivals)])
            self.queue_len += arrivals
        work = ready * self.model.replica.max_rps * tick_s
        groups: list[tuple] = []
        used = 0.0
        q = self.queue
        while q and used < work - 1e-12:
            c = q[0]
            take = min(c[2], work - used)
            f0 = (c[1] - c[2]) / c[1]
            f1 = f0 + take / c[1]
            s0 = now_s + used / work * tick_s
            s1 = now_s + (used + take) / work * tick_s
            p0, lo, hi = wait_piece(s0 - (c[0] + f0 * tick_s), s1 - (c[0] + f1 * tick_s))
            groups.append((take, p0, lo * 1000.0, hi * 1000.0))
            used += take
            c[2] -= take
            if c[2] <= 1e-9:
                q.popleft()
        self.queue_len = max(0.0, self.queue_len - used) if q else 0.0
        self._smooth_load(used / tick_s / ready if ready else 0.0, tick_s)
        spill = 0.0
        if self.model.zones > 1 and arrivals > 0 and ready > 0:
            share = arrivals / self.model.zones  # equal shares of the arrivals per zone
            local_cap = by_zone * self.model.replica.max_rps * tick_s
            over = float(np.maximum(share - local_cap, 0.0).sum())
            spare = float(np.maximum(local_cap - share, 0.0).sum())
            spill = min(over, spare) / arrivals
        return groups, spill, ready

    def _smooth_load(self, rate_rps: float, tick_s: float) -> None:
        if self.replica_load_rps is None:
            self.replica_load_rps = rate_rps
            return
        alpha = min(1.0, tick_s / LOAD_LEVEL_TAU_S)
        self.replica_load_rps += alpha * (rate_rps - self.replica_load_rps)

    def unserved(self, end_s: float, tick_s: float) -> list[tuple]:
        """Requests still queued at the end: waits so far (they count as late if the SLO passed)."""
        out = []
        for t, total, rem in self.queue:
            f0 = (total - rem) / total
            w_hi = end_s - (t + f0 * tick_s)
            w_lo = max(0.0, end_s - (t + tick_s))
            out.append((rem, 0.0, w_lo * 1000.0, w_hi * 1000.0))
        return out
