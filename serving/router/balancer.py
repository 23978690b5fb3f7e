"""Pick a replica: smooth weighted round-robin, checked against a second weighted sample.

The first choice comes from smooth weighted round-robin (nginx's algorithm), so sequential
traffic follows the weights exactly rather than within sampling noise. A second choice is
sampled at random by weight (power of two choices); it wins only when it has strictly fewer
outstanding requests per unit of weight, so under concurrency load moves away from a replica
that is slow or busy. Weight 0 means drained: never picked.

Zone preference (`zone_candidates`): a request from a zone is kept on that zone's replicas
unless the zone is saturated (mean in-flight per replica >= the spill threshold) or has no
eligible replica; then every eligible replica is a candidate (it spills to other zones/regions).

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
    zone: str = ""


# Why a request left its zone (label of the spill counter).
SPILL_SATURATED = "saturated"  # the zone's mean in-flight per replica reached the threshold
SPILL_NO_REPLICA = "no_replica"  # no eligible replica in the zone (none, drained, ejected, tried)


def zone_inflight_per_replica(candidates: Sequence[Candidate], zone: str) -> float | None:
    """Mean in-flight requests over the zone's live (weight > 0) candidates; None: no such candidate.

    Per replica, not per unit of weight: weights are relative shares on any scale (1 or 100),
    while the threshold is a count of requests a replica is working on."""
    n = 0
    total = 0
    for c in candidates:
        if c.zone == zone and c.weight > 0:
            n += 1
            total += c.inflight
    return total / n if n else None


def zone_candidates(
    candidates: Sequence[Candidate], zone: str, spill_inflight_per_replica: float
) -> tuple[Sequence[Candidate], str]:
    """(candidates to balance over, spill reason or "").

    No zone asked for -> all candidates, no spill. The zone's live candidates while their mean
    in-flight is below spill_inflight_per_replica; otherwise all candidates (the saturated zone
    stays among them: the balancer's least-loaded check moves load off it)."""
    if not zone:
        return candidates, ""
    mean = zone_inflight_per_replica(candidates, zone)
    if mean is None:
        return candidates, SPILL_NO_REPLICA
    if mean >= spill_inflight_per_replica:
        return candidates, SPILL_SATURATED
    return [c for c in candidates if c.zone == zone and c.weight > 0], ""


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
