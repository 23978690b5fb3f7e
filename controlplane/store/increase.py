"""Reset-safe per-sample increase of cumulative series, computed at insert time.

Every rollup sums `delta` (the increase since the previous sample of the same series), so a
per-minute counter increase is additive across inserts, targets and time buckets, and fleet
rollups can be pre-aggregated across replicas. The rule is the contract's:
delta = v - prev if v >= prev else v (a reset counts from zero), 0 for a series' first sample.

State (last ts/value per series) lives in this process. It is staged per batch and committed
only after the insert succeeded, so a batch that failed and is replayed gets the same deltas.
A sample not newer than the known last sample of its series (a replay or reordering) gets 0,
so an increase is never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CUMULATIVE_SUFFIXES = ("_bucket", "_sum", "_count")

# (series_ids, last_ts_ms, last_values) of series that have history before a given time.
SeedFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def is_cumulative(kind: str, metric: str) -> bool:
    """Counters and the `_bucket/_sum/_count` parts of histograms and summaries only grow (until a reset)."""
    if kind == "counter":
        return True
    return kind in ("histogram", "summary") and metric.endswith(CUMULATIVE_SUFFIXES)


@dataclass
class Staged:
    """Last sample per series of one batch, applied to the tracker on commit."""

    series_id: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray


class IncreaseTracker:
    def __init__(self, reseed_after_ms: int = 300_000) -> None:
        # Sorted by series id: lookups are one searchsorted per batch, not a dict hit per row.
        self._sid = np.empty(0, np.uint64)
        self._ts = np.empty(0, np.int64)
        self._val = np.empty(0, np.float64)
        # A cached value older than this (relative to the new sample) is re-read from the store,
        # since another collector may have written the series meanwhile.
        self.reseed_after_ms = reseed_after_ms

    def __len__(self) -> int:
        return len(self._sid)

    def _lookup(self, sids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._sid) == 0:
            n = len(sids)
            return np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n)
        pos = np.searchsorted(self._sid, sids)
        pos_c = np.minimum(pos, len(self._sid) - 1)
        found = self._sid[pos_c] == sids
        return found, np.where(found, self._ts[pos_c], 0), np.where(found, self._val[pos_c], 0.0)

    def compute(
        self,
        sid: np.ndarray,
        ts_ms: np.ndarray,
        value: np.ndarray,
        cumulative: np.ndarray,
        seed: SeedFn | None = None,
    ) -> tuple[np.ndarray, Staged | None]:
        """Deltas for one batch (0 where not cumulative) and the state to commit after the insert."""
        delta = np.zeros(len(sid), np.float64)
        idx = np.flatnonzero(cumulative)
        if idx.size == 0:
            return delta, None
        s, t, v = sid[idx], ts_ms[idx], value[idx]
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        first = np.ones(len(s), bool)
        first[1:] = s[1:] != s[:-1]
        run = np.cumsum(first) - 1  # run number of each row
        heads = np.flatnonzero(first)

        head_sid, head_ts = s[heads], t[heads]
        found, known_ts, known_val = self._lookup(head_sid)
        stale = ~found | (head_ts - known_ts > self.reseed_after_ms)
        if seed is not None and stale.any():
            ask = np.flatnonzero(stale)
            ss, st, sv = seed(head_sid[ask], int(head_ts[ask].min()))
            if len(ss):
                o = np.argsort(ss)
                ss, st, sv = ss[o], st[o], sv[o]
                pos = np.minimum(np.searchsorted(ss, head_sid[ask]), len(ss) - 1)
                hit = ss[pos] == head_sid[ask]
                use = ask[hit]
                # Only a newer stored sample replaces the cached one.
                newer = st[pos[hit]] > np.where(found[use], known_ts[use], -1)
                use, p = use[newer], pos[hit][newer]
                found[use], known_ts[use], known_val[use] = True, st[p], sv[p]

        # Per-row view of the series' known last sample.
        k_found, k_ts, k_val = found[run], known_ts[run], known_val[run]
        old = k_found & (t <= k_ts)  # already accounted for: replay or out-of-order
        prev = np.empty_like(v)
        prev[1:] = v[:-1]
        has_row_prev = ~first
        has_row_prev[1:] &= ~old[:-1]  # an old row is not a usable predecessor
        use_known = ~has_row_prev & k_found
        prev = np.where(use_known, k_val, prev)
        has_prev = (has_row_prev | use_known) & ~old
        d = np.where(v >= prev, v - prev, v)
        d = np.where(has_prev, d, 0.0)
        out = np.empty_like(d)
        out[order] = d
        delta[idx] = out

        tails = np.append(heads[1:] - 1, len(s) - 1)
        fresh = ~(k_found[tails] & (t[tails] <= k_ts[tails]))
        tails = tails[fresh]
        return delta, Staged(s[tails], t[tails], v[tails])

    def commit(self, staged: Staged | None) -> None:
        if staged is None or len(staged.series_id) == 0:
            return
        found, known_ts, _ = self._lookup(staged.series_id)
        if found.all():
            pos = np.searchsorted(self._sid, staged.series_id)
            newer = staged.ts_ms > known_ts
            self._ts[pos[newer]] = staged.ts_ms[newer]
            self._val[pos[newer]] = staged.value[newer]
            return
        sid = np.concatenate([self._sid, staged.series_id])
        ts = np.concatenate([self._ts, staged.ts_ms])
        val = np.concatenate([self._val, staged.value])
        order = np.lexsort((ts, sid))
        sid, ts, val = sid[order], ts[order], val[order]
        last = np.ones(len(sid), bool)
        last[:-1] = sid[:-1] != sid[1:]
        self._sid, self._ts, self._val = sid[last], ts[last], val[last]
