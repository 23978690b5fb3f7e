"""Peer detector: each replica against the other replicas of the same model at the same time.

Fleet-wide load moves every replica together, so the peers' median moves too and nobody stands
out; one slow or failing replica does. Leave-one-out: a replica is compared with the median of
the *others* (with two replicas, with the other one), and the spread is the others' MAD with a
floor relative to their median (identical peers have zero MAD).

With ONE peer the comparison is symmetric: each replica is exactly as far from the other, so the
pair alone cannot say which one is odd. `attribute_pairs` gives the evidence to the one that
moved away from its own history (a two-replica fleet once flagged its healthy replica when its
peer's cache hit ratio read 1.0 for a tick while reloading).

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


def _leave_one_out(v: np.ndarray) -> np.ndarray:
    """Row j holds the other k-1 values (k is small: the replicas of one model)."""
    k = v.size
    return np.broadcast_to(v, (k, k))[~np.eye(k, dtype=bool)].reshape(k, k - 1)


def _pooled_se(ratios: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Binomial standard error of each ratio under the group's pooled rate (0 where the count is
    unknown). Laplace-smoothed: a group that saw no error still has some noise."""
    known = np.isfinite(trials) & (trials > 0)
    if not known.any():
        return np.zeros(ratios.size)
    n = np.where(known, trials, 0.0)
    p = (float(np.sum(ratios[known] * n[known])) + 1.0) / (float(n.sum()) + 2.0)
    return np.where(known, np.sqrt(p * (1.0 - p) / np.where(known, n, 1.0)), 0.0)


def peer_z(
    values: np.ndarray,
    groups: np.ndarray,
    params: PeerParams = PeerParams(),
    floor: np.ndarray | None = None,
    trials: np.ndarray | None = None,
) -> PeerOutput:
    """`values[i]` is replica i's metric, `groups[i]` the model it serves (any hashable labels);
    `floor[i]`, when given, is series i's smallest spread (in the metric's units); `trials[i]`,
    when given, the count behind a ratio this tick (requests, cache lookups; NaN: not a ratio).

    Ratios are compared as in a two-proportion z-test: if the replicas shared one rate (their
    pooled ratio), two readings would differ by chance by hypot of their binomial standard
    errors, so the spread is at least that. With one or two peers the MAD cannot see it, and a
    fixed floor cannot follow the traffic: 9 cache hits of 30 against 23 of 30 is a 3.6-sigma
    draw of two equal caches, 0 of 300 against 150 of 300 is a collapse."""
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
        others = _leave_one_out(vals)
        med = np.median(others, axis=1)
        mad = MAD_TO_SIGMA * np.median(np.abs(others - med[:, None]), axis=1)
        s = np.maximum(np.maximum(mad, params.rel_floor_ratio * np.abs(med)), params.abs_floor)
        if floor is not None:
            s = np.maximum(s, floor[idx])
        if trials is not None:
            se = _pooled_se(vals, np.asarray(trials, dtype=float)[idx])
            s = np.maximum(s, np.hypot(se, np.median(_leave_one_out(se), axis=1)))
        z[idx] = (vals - med) / s
        expected[idx] = med
        spread[idx] = s
    return PeerOutput(z=z, expected=expected, spread=spread)


def attribute_pairs(
    z: np.ndarray,
    values: np.ndarray,
    groups: np.ndarray,
    moved: np.ndarray,
    blamed: np.ndarray,
    gap_z: float,
    direction: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Peer z with one-peer groups attributed -> (z, blamed after this tick).

    `moved[i]` is how far series i moved from its own history this tick, signed (robust z).
    Of two replicas whose gap is open (either |z| >= gap_z), the one blamed before stays blamed
    while the gap lasts (its own detector soon takes the new level as normal, and then its
    peer's noise would look like the bigger move), unless the other one now makes a surprising
    move of its own (|moved| >= gap_z, larger, away from its peer and, where `direction[i]` says
    which side is bad (+1 high, -1 low, 0 both), to the bad side): a replica blamed for
    spiking to the good side of a one-sided metric would otherwise hide its peer's cache
    collapse. With nobody blamed yet, the one that moved more is; a tie (both warming up, or
    neither moved) blames nobody and keeps both z. Only the blamed one keeps its peer z. A
    closed gap clears the blame. Groups of three or more have a consensus and are unchanged."""
    out = np.array(z, dtype=float)
    now_blamed = np.zeros(out.size, dtype=bool)
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    signed_moved = np.asarray(moved, dtype=float)
    m = np.abs(signed_moved)
    bad_side = np.zeros(m.size) if direction is None else np.asarray(direction, dtype=float)
    finite = np.isfinite(x)
    labels, group_of = np.unique(g, return_inverse=True)
    pairs = np.flatnonzero(np.bincount(group_of[finite], minlength=labels.size) == 2)
    for k in pairs:  # only two-replica groups: most fleets have none
        idx = np.flatnonzero((group_of == k) & finite)
        if np.abs(out[idx]).max() < gap_z:
            continue
        a, b = idx
        if blamed[a] != blamed[b]:
            culprit, other = (a, b) if blamed[a] else (b, a)
            side = np.sign(signed_moved[other])
            away = side == np.sign(out[other]) and bad_side[other] in (0.0, side)
            if m[other] >= gap_z and m[other] > m[culprit] and away:
                culprit = other
        elif m[a] != m[b]:
            culprit = a if m[a] > m[b] else b
        else:
            continue
        now_blamed[culprit] = True
        out[b if culprit == a else a] = 0.0
    return out, now_blamed
