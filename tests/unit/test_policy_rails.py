"""Rails: each clamp table-driven, the order they apply in, reason codes, modes, the row."""

from __future__ import annotations

import pytest

from controlplane.policy import decision, rails
from controlplane.policy.rails import Clamp, RailsConfig, RailsState, Recommendation, apply_rails

CFG = RailsConfig(min_replicas=2, max_replicas=10, max_up_step=2, max_up_ratio=0.0, max_down_step=1)


@pytest.mark.parametrize(
    ("value", "want", "reason"),
    [
        (1, 2, rails.BOUNDED_MIN),
        (2, 2, rails.WITHIN_BOUNDS),
        (10, 10, rails.WITHIN_BOUNDS),
        (11, 10, rails.BOUNDED_MAX),
    ],
)
def test_bounds(value, want, reason):
    c = rails.clamp_bounds(value, CFG)
    assert (c.value, c.reason) == (want, reason) and c.message


@pytest.mark.parametrize(
    ("value", "current", "changes", "want", "reason"),
    [
        (5, 4, (), 5, rails.WITHIN_STEP),
        (9, 4, (), 6, rails.STEP_LIMITED_UP),  # +2 per interval
        (9, 4, ((90.0, 1),), 5, rails.STEP_LIMITED_UP),  # one added 10 s ago: +1 left
        (9, 4, ((30.0, 2),), 6, rails.STEP_LIMITED_UP),  # that change is outside the 60 s interval
        (1, 4, (), 3, rails.STEP_LIMITED_DOWN),  # -1 per interval
        (3, 4, ((95.0, -1),), 4, rails.STEP_LIMITED_DOWN),  # already removed one this interval
    ],
)
def test_step_limits(value, current, changes, want, reason):
    c = rails.clamp_step(value, current, 100.0, changes, CFG)
    assert (c.value, c.reason) == (want, reason)


def test_step_up_ratio_beats_the_fixed_step_on_big_fleets():
    cfg = RailsConfig(max_replicas=100, max_up_step=4, max_up_ratio=1.0)
    assert rails.clamp_step(50, 10, 0.0, (), cfg).value == 20  # +100 % of 10 > +4


@pytest.mark.parametrize(
    ("value", "current", "history", "surge", "want", "reason"),
    [
        (6, 4, ((50.0, 3),), False, 6, rails.STABLE),  # up: fast
        (3, 4, ((50.0, 4),), False, 4, rails.STABILISED_DOWN),  # a 4 within 300 s holds
        (3, 5, ((50.0, 4),), False, 4, rails.STABILISED_DOWN),  # down to the window's highest
        (3, 4, ((-250.0, 4),), False, 3, rails.STABLE),  # the 4 is older than the window
        (3, 4, (), True, 4, rails.SURGE_NO_SCALE_DOWN),  # never down in a surge
        (6, 4, (), True, 6, rails.STABLE),  # a surge does not stop scaling up
    ],
)
def test_stabilise(value, current, history, surge, want, reason):
    c = rails.stabilise(value, current, 100.0, history, surge, CFG)
    assert (c.value, c.reason) == (want, reason)


def test_up_window_keeps_the_lowest_recent_recommendation():
    cfg = RailsConfig(up_window_s=60.0)
    c = rails.stabilise(8, 4, 100.0, ((70.0, 5),), False, cfg)
    assert (c.value, c.reason) == (5, rails.STABILISED_UP)


def _apply(value, current=4, cfg=CFG, state=RailsState(), surge=False, guard=None, now_s=100.0):
    rec = Recommendation(value, ("policy_reason",), {"x": 1}, surge=surge)
    return apply_rails(rec, model="m", now_s=now_s, current=current, state=state, cfg=cfg, guard=guard)


@pytest.mark.parametrize(
    ("value", "current", "want", "codes"),
    [
        (5, 4, 5, ["policy_reason", "mode_active"]),
        (20, 4, 6, ["policy_reason", "bounded_max", "step_limited_up", "mode_active"]),
        (0, 4, 3, ["policy_reason", "bounded_min", "step_limited_down", "mode_active"]),
        (0, 1, 2, ["policy_reason", "bounded_min", "mode_active"]),  # below min: bounds lift it
    ],
)
def test_order_of_application(value, current, want, codes):
    # Codes come in application order: 20 -> 10 (bounds) -> 6 (step); 0 -> 2 (bounds) -> 3 (step).
    d, _ = _apply(value, current)
    assert d.final == want and d.reason_codes == codes and d.recommended == value


def test_stabilisation_runs_after_the_step_and_guard_after_stabilisation():
    state = RailsState(history=((50.0, 8),))
    calls = []

    def guard(value, current):
        calls.append((value, current))
        return Clamp(value, "ok", "")

    d, _ = _apply(2, current=6, state=state, guard=guard)
    # bounds 2 -> 2; step 2 -> 5; stabilisation: 8 in the window holds 6; guard not called (no move).
    assert d.final == 6 and d.reason_codes == [
        "policy_reason",
        "step_limited_down",
        "stabilised_down",
        "mode_active",
    ]
    assert calls == []
    d, _ = _apply(2, current=6, guard=guard)
    assert d.final == 5 and calls == [(5, 6)]


def test_guard_blocks_a_scale_down_and_its_reason_is_recorded():
    d, _ = _apply(3, guard=lambda v, c: Clamp(c, "blocked", "no"))
    assert d.final == 4 and d.reason_codes[-2:] == ["blocked", "mode_active"] and not d.actuate


def test_guard_does_not_block_the_max_bound():
    d, _ = _apply(
        10,
        current=12,
        cfg=RailsConfig(max_replicas=10, max_down_step=4),
        guard=lambda v, c: Clamp(c, "blocked", ""),
    )
    assert d.final == 10 and "blocked" not in d.reason_codes


def test_active_records_the_change_for_the_step_limit():
    d, st = _apply(5, current=4)
    assert d.actuate and d.kind == "scale_up" and "scale 4 -> 5" in d.message
    assert st.changes == ((100.0, 1),) and st.history == ((100.0, 5),)
    d2, _ = _apply(9, current=5, state=st, now_s=110.0)
    assert d2.final == 6  # +2 per interval, one used 10 s ago


def test_advisory_computes_everything_and_actuates_nothing():
    cfg = RailsConfig(mode="advisory", max_up_step=2, max_up_ratio=0.0)
    d, st = _apply(5, cfg=cfg)
    assert (d.final, d.actuate, d.mode) == (5, False, "advisory")
    assert d.reason_codes[-1] == "mode_advisory" and "would scale to 5" in d.message
    assert st.changes == ()  # nothing actuated, nothing counted against the step limit
    assert st.history  # but the window still learns


def test_off_is_no_decision():
    d, st = _apply(5, cfg=RailsConfig(mode="off"))
    assert d.final is None and d.no_decision and not d.actuate and d.reason_codes[-1] == "mode_off"
    assert d.kind == "none" and st == RailsState()


def test_no_recommendation_is_no_decision_and_leaves_state_alone():
    state = RailsState(history=((90.0, 4),))
    d, st = apply_rails(
        Recommendation(None, ("stale_data",)), model="m", now_s=100.0, current=4, state=state, cfg=CFG
    )
    assert d.final is None and d.reason_codes == ["stale_data"] and st is state and d.kind == "none"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"max_down_step": 0}, "max_down_step"),
        ({"down_window_s": -1}, "down_window_s"),
        ({"mode": "auto"}, "mode"),
    ],
)
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f"rails.{key}="):
        RailsConfig(**kwargs)


def test_decision_row_matches_the_decisions_table():
    from controlplane.store.schema import Layout, _events

    ddl = next(s for s in _events(Layout()) if "TABLE IF NOT EXISTS decisions" in s)
    body = ddl.split("(", 1)[1].split(") ENGINE")[0]
    cols = [line.strip().split()[0] for line in body.splitlines() if line.strip()]
    assert tuple(cols) == decision.COLUMNS
    d, _ = _apply(5)
    row = d.as_row()
    assert tuple(row) == decision.COLUMNS
    assert row["ts"].tzinfo is not None and row["policy"] == "replicas" and row["action"] == "scale_up"
    assert row["reason_codes"] == ["policy_reason", "mode_active"] and '"final": 5' in row["params"]
    assert row["inputs"] == '{"x": 1}' and row["decision_id"] == "replicas:m:@100000"


def test_hold_value_is_what_the_down_window_remembers():
    # A policy asks for 6 but only 4 of it is lasting (2 clear a backlog): the window keeps 4,
    # so once the backlog is gone the next tick may come back down to 4 at once.
    cfg = RailsConfig(min_replicas=1, max_replicas=10, max_up_step=2, max_down_step=4, down_window_s=300.0)
    rec = Recommendation(6, ("policy_reason",), {}, hold_value=4)
    d, st = apply_rails(rec, model="m", now_s=100.0, current=4, state=RailsState(), cfg=cfg)
    assert d.final == 6 and st.history == ((100.0, 4),)
    d2, _ = apply_rails(Recommendation(4), model="m", now_s=115.0, current=6, state=st, cfg=cfg)
    assert d2.final == 4 and "stabilised_down" not in d2.reason_codes
    # Without hold_value the 6 holds for the whole window (HPA's rule).
    _, st = apply_rails(Recommendation(6), model="m", now_s=100.0, current=4, state=RailsState(), cfg=cfg)
    d3, _ = apply_rails(Recommendation(4), model="m", now_s=115.0, current=6, state=st, cfg=cfg)
    assert d3.final == 6 and "stabilised_down" in d3.reason_codes
