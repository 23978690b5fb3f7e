"""Pick a replica: smooth weighted round-robin, checked against a second weighted sample.

The first choice comes from smooth weighted round-robin (nginx's algorithm), so sequential
traffic follows the weights exactly rather than within sampling noise. A second choice is
sampled at random by weight (power of two choices); it wins only when it has strictly fewer
outstanding requests per unit of weight, so under concurrency load moves away from a replica
that is slow or busy. Weight 0 means drained: never picked.

No I/O and no clock: the round-robin counters live in a dict the caller owns.
"""

from __future__ import annotations

import random
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    name: str
    weight: float  # relative share of traffic; 0 = drained
    inflight: int  # requests this router has outstanding on the replica


def smooth_round_robin(candidates: Sequence[Candidate], current: MutableMapping[str, float]) -> Candidate:
    """Next candidate by smooth weighted round-robin; updates `current` (the only state)."""
    total = 0.0
    best: Candidate | None = None
    best_score = 0.0
    for c in candidates:
        score = current.get(c.name, 0.0) + c.weight
        current[c.name] = score
        total += c.weight
        if best is None or score > best_score:
            best, best_score = c, score
    assert best is not None
    current[best.name] = best_score - total
    return best


def weighted_sample(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    total = sum(c.weight for c in candidates)
    x = rng.random() * total
    for c in candidates:
        x -= c.weight
        if x < 0:
            return c
    return candidates[-1]


def _load(c: Candidate) -> float:
    return c.inflight / c.weight


def pick(
    candidates: Sequence[Candidate], current: MutableMapping[str, float], rng: random.Random
) -> Candidate | None:
    """Choose among candidates (None when no candidate has a positive weight)."""
    live = [c for c in candidates if c.weight > 0]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    first = smooth_round_robin(live, current)
    others = [c for c in live if c is not first]
    second = weighted_sample(others, rng)
    return second if _load(second) < _load(first) else first
