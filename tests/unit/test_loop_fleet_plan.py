"""From per-model decisions to one change of a fleet whose replicas serve every model."""

from __future__ import annotations

import pytest

from controlplane.loop.fleet_plan import (
    FleetReplica,
    combined_weights,
    fleet_target,
    next_step,
    pick_for_removal,
    zone_for_new,
)
from controlplane.policy.decision import Decision


def dec(model, final, mode="active", policy="replicas"):
    return Decision(model=model, ts=0.0, current=2, recommended=final, final=final, mode=mode,
                    actuate=mode == "active", reason_codes=[], inputs={}, message="", policy=policy)  # fmt: skip


def reps(*spec):
    return [FleetReplica(n, z, t, w) for n, z, t, w in spec]


@pytest.mark.parametrize(
    ("decisions", "target", "model"),
    [
        ([dec("a", 3), dec("b", 5)], 5, "b"),  # the model that needs most sets the count
        ([dec("a", 3), dec("b", 9, mode="advisory")], 3, "a"),  # advisory models move nothing
        ([dec("a", None), dec("b", 4)], 4, "b"),  # no decision (stale data) is not a vote
        ([dec("a", 3, mode="off")], None, None),
        ([], None, None),
    ],
)
def test_fleet_target(decisions, target, model):
    t, top = fleet_target(decisions)
    assert t == target and (top.model if top else None) == model


def test_new_replicas_balance_zones():
    fleet = reps(("r0", "a", 0, None), ("r1", "a", 1, None), ("r2", "b", 2, None))
    assert zone_for_new(fleet, ["a", "b"]) == "b"
    assert zone_for_new([], ["a", "b"]) == "a"
    assert zone_for_new(fleet, []) is None


def test_removal_takes_the_drained_then_newest_from_the_fullest_zone():
    fleet = reps(("r0", "a", 0, 100), ("r1", "a", 5, 100), ("r2", "b", 9, 100))
    assert pick_for_removal(fleet) == "r1"  # zone a has two; r1 is newer
    fleet = reps(("r0", "a", 0, 0), ("r1", "a", 5, 100), ("r2", "b", 9, 100))
    assert pick_for_removal(fleet) == "r0"  # drained first


@pytest.mark.parametrize(
    ("target", "replace", "op"),
    [(4, (), "add"), (2, (), "remove"), (3, (), "none"), (None, (), "none"), (2, ("r2",), "replace")],
)
def test_next_step(target, replace, op):
    fleet = reps(("r0", "a", 0, None), ("r1", "b", 1, None), ("r2", "a", 2, None))
    assert next_step(target, fleet, ["a", "b"], replace).op == op


def test_weights_take_the_lowest_any_model_gives():
    assert combined_weights([{"r0": 100, "r1": 50}, {"r0": 25, "r1": 100}]) == {"r0": 25, "r1": 50}
