"""Combiner explanations and the incident lifecycle on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.anomaly import combine, incidents
from controlplane.anomaly.tick import Layout, SeriesKey, detect_tick, init_state


def _evidence(**kw):
    base = dict(
        observed=np.array([70.0, 20.0]), expected=np.array([20.0, 20.0]), spread=np.array([2.0, 2.0]),
        robust_z=np.array([0.0, 0.0]), peer_z=np.array([0.0, 0.0]), change=np.array([False, False]),
        multivariate=np.array([0.0, 0.0]),
    )  # fmt: skip
    base.update(kw)
    return combine.Evidence(**base)


@pytest.mark.parametrize(
    "kw, score0, fired",
    [
        ({}, 0.0, ()),  # no evidence
        ({"robust_z": np.array([8.0, 0.0])}, 1.0, ("robust",)),  # full ramp
        ({"robust_z": np.array([5.5, 0.0])}, 0.5, ("robust",)),  # half ramp
        (
            {"robust_z": np.array([5.5, 0.0]), "peer_z": np.array([4.25, 0.0])},
            0.75,
            ("peer", "robust"),
        ),  # noisy-OR
        ({"change": np.array([True, False])}, 1.0, ("changepoint",)),
    ],
)
def test_combiner_score_and_explanation(kw, score0, fired):
    ev = _evidence(**kw)
    score, parts = combine.combine(ev)
    assert score[0] == pytest.approx(score0) and score[1] == 0.0
    ex = combine.explain(0, "latency_ms", ev, parts)
    assert set(ex.detectors) == set(fired)
    assert (ex.metric, ex.observed, ex.expected, ex.expected_low, ex.expected_high) == (
        "latency_ms",
        70,
        20,
        14,
        26,
    )
    assert "latency_ms=70" in ex.text()


def _finding(score, observed=70.0):
    ex = combine.Explanation("latency_ms", observed, 20.0, 14.0, 26.0, ("peer",))
    return incidents.Finding("m", "replica-1", "latency_ms", score, ex, zone="z1")


def test_incident_lifecycle_on_a_fake_clock():
    p = incidents.IncidentParams(open_score=0.6, close_score=0.3, close_after_s=30, cooldown_s=120)
    st = incidents.IncidentState()
    # t=0: a finding at 0.7 (warning is 0.75, so "info") opens an incident: one event.
    st, ev = incidents.step(st, [_finding(0.7)], 0.0, p)
    assert [e.kind for e in ev] == ["opened"] and ev[0].severity == "info"
    first_id = ev[0].event_id
    # t=5, t=10: the same anomaly persists: duplicates are suppressed, no event per sample.
    st, ev = incidents.step(st, [_finding(0.7)], 5.0, p)
    st, ev2 = incidents.step(st, [_finding(0.65)], 10.0, p)
    assert ev == [] and ev2 == [] and st.suppressed == 2
    # t=15: it gets worse (0.95 = critical): one "updated" event with the new observation.
    st, ev = incidents.step(st, [_finding(0.95, observed=120.0)], 15.0, p)
    assert (
        [e.kind for e in ev] == ["updated"] and ev[0].severity == "critical" and ev[0].observed_value == 120
    )
    # t=20..40: quiet (no finding); it has not been quiet for 30 s yet at t=40.
    for t in (20.0, 30.0, 40.0):
        st, ev = incidents.step(st, [], t, p)
        assert ev == []
    # t=45: 30 s since the last finding above close_score: closed, and cooling down.
    st, ev = incidents.step(st, [], 45.0, p)
    assert [e.kind for e in ev] == ["closed"] and not st.open
    # t=60: it flaps back at the same severity within the cool-down: suppressed, no event.
    st, ev = incidents.step(st, [_finding(0.95)], 60.0, p)
    assert ev == []
    # t=200: after the cool-down a new incident (new id) may open.
    st, ev = incidents.step(st, [_finding(0.7)], 200.0, p)
    assert [e.kind for e in ev] == ["opened"] and ev[0].event_id != first_id


def test_event_matches_the_anomaly_events_table():
    from controlplane.store.schema import Layout as StoreLayout
    from controlplane.store.schema import _events

    ddl = _events(StoreLayout())[0]
    cols = [
        line.strip().split()[0]
        for line in ddl.split("(", 1)[1].split(") ENGINE")[0].splitlines()
        if line.strip()
    ]
    assert tuple(cols) == incidents.COLUMNS
    _, ev = incidents.step(incidents.IncidentState(), [_finding(0.9)], 1_700_000_000.0)
    row = ev[0].as_row()
    assert row["model"] == "m" and row["replica"] == "replica-1" and row["zone"] == "z1"
    assert row["reason_codes"][0] == "opened" and row["ts"].tzinfo is not None


def test_engine_tick_attributes_a_slow_replica():
    keys = [SeriesKey("m", f"replica-{r}", "latency_ms") for r in range(4)]
    layout = Layout.build(keys)
    st = init_state(layout)
    rng = np.random.default_rng(0)
    events = []
    for t in range(60):
        lat = 20 * (1 + 0.3 * np.sin(t / 8)) * (1 + 0.02 * rng.standard_normal(4))
        if t >= 40:
            lat[1] += 50
        st, _, ev = detect_tick(st, layout, 1_700_000_000.0 + 5 * t, lat)
        events += [(t, e) for e in ev]
    assert events, "the slow replica must raise an incident"
    t0, first = events[0]
    assert (
        t0 == 40 and first.replica == "replica-1" and first.metric == "latency_ms" and first.kind == "opened"
    )
    assert {e.replica for _, e in events} == {"replica-1"}


def _two_replica_run(metric, direction, normal, fault, fault_ticks, ticks=60):
    """Two replicas of one model, a steady metric (5 % noise); replica-1 reads `fault` on the
    given ticks. -> the (tick, replica, kind) of opened and closed incidents."""
    keys = [SeriesKey("m", f"replica-{r}", metric) for r in range(2)]
    layout = Layout.build(keys, direction=[direction, direction], floor=[0.1, 0.1])
    st = init_state(layout)
    rng = np.random.default_rng(3)
    out = []
    for t in range(ticks):
        x = normal * (1 + 0.05 * rng.standard_normal(2))
        if t in fault_ticks:
            x[1] = fault
        st, _, ev = detect_tick(st, layout, 1_700_000_000.0 + 5 * t, x)
        out += [(t, e.replica, e.kind) for e in ev if e.kind in ("opened", "closed")]
    return out


def test_two_replicas_the_healthy_peer_is_not_blamed_for_the_others_change():
    # replica-1 reloads and reads a perfect cache hit ratio for a tick: low is the bad side, so
    # replica-0 (0.52, as always) looks low next to it; it did not move, so it is not flagged
    assert _two_replica_run("cache_hit_ratio", -1, np.array([0.52, 0.52]), 1.0, {40}) == []


@pytest.mark.parametrize(
    "metric, direction, normal, fault",
    [
        ("latency_ms", +1, 20.0, 700.0),  # 35x slower
        ("cache_hit_ratio", -1, 0.52, 0.0),  # the cache is gone
        ("gpu_util_ratio", 0, 0.5, 0.95),  # both sides are bad: without blame both were flagged
    ],
)
def test_two_replicas_the_faulty_one_is_flagged_for_as_long_as_the_fault_lasts(
    metric, direction, normal, fault
):
    # replica-1 moved from its own history, replica-0 did not: only replica-1 opens an incident,
    # and it stays open for the whole fault, though replica-1's own detector takes the new level
    # as normal within a few ticks (its peer's noise is then the bigger move)
    events = _two_replica_run(metric, direction, np.array([normal, normal]), fault, set(range(40, 200)), 200)
    assert events == [(40, "replica-1", "opened")]
