"""From per-model decisions to changes of a local fleet whose replicas each serve every model.

A local replica is one tritonserver with the whole model repository, so the fleet runs the most
replicas any *active* model asks for; advisory and off models are recorded but move nothing.
Pure functions: which zone gets a new replica (the one with fewest, so zones stay balanced and a
zone loss costs least), which replica goes first on a scale-down (the one carrying least weight,
then the newest, from the fullest zone), and the weight each replica gets (the lowest any model's
routing policy gives it: a replica bad for one model is drained for all).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.policy.decision import Decision


@dataclass(frozen=True)
class FleetReplica:
    name: str
    zone: str
    started_at_s: float
    weight: float | None = None  # the router weight last set (None: never set, full)


def fleet_target(decisions: Iterable[Decision]) -> tuple[int | None, Decision | None]:
    """(replicas the fleet should run, the decision that asks for most) over active decisions."""
    active = [d for d in decisions if d.final is not None and d.mode == "active" and d.policy == "replicas"]
    if not active:
        return None, None
    top = max(active, key=lambda d: (d.final, d.model))
    return top.final, top


def zone_for_new(replicas: list[FleetReplica], zones: list[str]) -> str | None:
    """The configured zone with fewest replicas (config order breaks ties); None: no zones."""
    if not zones:
        return None
    count = Counter(r.zone for r in replicas)
    return min(zones, key=lambda z: (count.get(z, 0), zones.index(z)))


def pick_for_removal(replicas: list[FleetReplica]) -> str | None:
    if not replicas:
        return None
    count = Counter(r.zone for r in replicas)
    return min(
        replicas,
        key=lambda r: (
            -count[r.zone],
            r.weight if r.weight is not None else float("inf"),
            -r.started_at_s,
            r.name,
        ),
    ).name


@dataclass(frozen=True)
class FleetStep:
    """One change at a time: replica processes take seconds to start or stop."""

    op: str  # add | remove | replace | none
    replica: str | None = None  # remove / replace
    zone: str | None = None  # add
    reason: str = ""


def next_step(
    target: int | None, replicas: list[FleetReplica], zones: list[str], replace: Iterable[str] = ()
) -> FleetStep:
    """Replacing a bad replica comes first (it keeps the count), then moving towards target."""
    names = {r.name for r in replicas}
    for name in replace:
        if name in names:
            return FleetStep("replace", replica=name, reason="replace_after_bad")
    if target is None:
        return FleetStep("none", reason="no_active_decision")
    n = len(replicas)
    if target > n:
        return FleetStep("add", zone=zone_for_new(replicas, zones), reason="scale_up")
    if target < n:
        return FleetStep("remove", replica=pick_for_removal(replicas), reason="scale_down")
    return FleetStep("none", reason="at_target")


def combined_weights(per_model: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for weights in per_model:
        for name, w in weights.items():
            out[name] = min(out.get(name, w), w)
    return out
