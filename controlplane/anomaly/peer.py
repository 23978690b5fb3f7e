"""Peer detector: each replica against the other replicas of the same model at the same time.

Fleet-wide load moves every replica together, so the peers' median moves too and nobody stands
out; one slow or failing replica does. Leave-one-out: a replica is compared with the median of
the *others* (with two replicas, with the other one), and the spread is the others' MAD with a
floor relative to their median (identical peers have zero MAD).

Pure and stateless per tick: `peer_z(values, groups) -> z`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class PeerParams:
    min_peers: int = 1  # others needed in the group (fewer: z = 0)
    rel_floor_ratio: float = 0.1  # spread never below this fraction of the peers' median
    abs_floor: float = 1e-9


@dataclass(frozen=True)
class PeerOutput:
    z: np.ndarray  # signed (x - peers' median) / spread; 0 where there are too few peers
    expected: np.ndarray  # the others' median
    spread: np.ndarray


def peer_z(
    values: np.ndarray, groups: np.ndarray, params: PeerParams = PeerParams(), floor: np.ndarray | None = None
) -> PeerOutput:
    """`values[i]` is replica i's metric, `groups[i]` the model it serves (any hashable labels);
    `floor[i]`, when given, is series i's smallest spread (in the metric's units)."""
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    z = np.zeros(x.size)
    expected = np.full(x.size, np.nan)
    spread = np.full(x.size, np.nan)
    for label in np.unique(g):
        idx = np.flatnonzero((g == label) & np.isfinite(x))
        k = idx.size
        if k - 1 < params.min_peers:
            continue
        vals = x[idx]
        # Leave-one-out matrix: row j holds the other k-1 values (k is small: replicas of a model).
        others = np.broadcast_to(vals, (k, k))[~np.eye(k, dtype=bool)].reshape(k, k - 1)
        med = np.median(others, axis=1)
        mad = MAD_TO_SIGMA * np.median(np.abs(others - med[:, None]), axis=1)
        s = np.maximum(np.maximum(mad, params.rel_floor_ratio * np.abs(med)), params.abs_floor)
        if floor is not None:
            s = np.maximum(s, floor[idx])
        z[idx] = (vals - med) / s
        expected[idx] = med
        spread[idx] = s
    return PeerOutput(z=z, expected=expected, spread=spread)
