"""The sweep's pure parts: which rate comes next, step summaries, the stored row."""

from __future__ import annotations

import json

import pytest

from controlplane.capacity.model import LoadPoint, Slo, capacity_at_slo
from controlplane.capacity.profile import (
    ProfileResult,
    ReplicaKind,
    SweepOptions,
    curve_row,
    next_rate_rps,
    point_from_results,
    step_meets,
)
from serving.replay.results import RequestResult

OPTS = SweepOptions(step_s=1, start_rps=10, max_rps=200, bisect_steps=2)


def sweep(capacity_rps: float, opts: SweepOptions = OPTS) -> list[float]:
    """Rates visited against a replica that is good exactly up to `capacity_rps`."""
    history: list[tuple[float, bool]] = []
    while (rate := next_rate_rps(history, opts)) is not None:
        history.append((rate, rate <= capacity_rps))
        assert len(history) < 30
    return [r for r, _ in history]


@pytest.mark.parametrize(
    "capacity, want",
    [
        # Doubling 10..80, 160 bad; bisect 120 (good), 140 (bad).
        (130, [10, 20, 40, 80, 160, 120, 140]),
        # Never bad: stops at max_rps (200, not 320).
        (1000, [10, 20, 40, 80, 160, 200]),
        # The first rate already fails: nothing to bisect towards.
        (5, [10]),
        # Bad at 20: bisect 15 (good), 17.5 (bad).
        (16, [10, 20, 15, 17.5]),
    ],
)
def test_sweep_rates(capacity, want):
    assert sweep(capacity) == want


def test_no_bisection_when_asked_for_none():
    assert sweep(130, SweepOptions(step_s=1, start_rps=10, max_rps=200, bisect_steps=0)) == [
        10,
        20,
        40,
        80,
        160,
    ]


@pytest.mark.parametrize(
    "point, ok",
    [
        (LoadPoint(100, 100, 10.0), True),
        (LoadPoint(100, 100, 25.0), False),  # over the SLO
        (LoadPoint(100, 100, 10.0, error_ratio=0.05), False),  # errors
        (LoadPoint(100, 60, 10.0), False),  # fell behind
        (LoadPoint(100, 100, None), False),  # nothing came back
    ],
)
def test_step_meets(point, ok):
    assert step_meets(point, Slo(p99_ms=20)) is ok


def _res(i, status="ok", latency=5.0, ttft=None, tokens=0):
    return RequestResult(i, 0, 0, 0, status, "m", "standard", latency_ms=latency, ttft_ms=ttft, tokens=tokens)


def test_point_from_results():
    results = [_res(i, latency=float(i + 1)) for i in range(99)] + [_res(99, status="timeout", latency=None)]
    p = point_from_results(results, rate_rps=50, wall_s=2.0)
    assert p.requests == 100 and p.error_ratio == 0.01 and p.achieved_rps == 49.5
    assert p.p99_ms == pytest.approx(98.02)
    assert p.ttft_p99_ms is None and p.itl_p99_ms is None


def test_point_from_stream_results_measures_ttft_and_inter_token():
    # 16 tokens, first after 20 ms, done at 170 ms: 150 ms over 15 gaps = 10 ms per token.
    p = point_from_results([_res(0, latency=170.0, ttft=20.0, tokens=16)], rate_rps=1, wall_s=1.0)
    assert p.ttft_p99_ms == 20.0 and p.itl_p99_ms == pytest.approx(10.0)


def test_curve_row_matches_the_table():
    steps = [LoadPoint(10, 10, 5.0, requests=10), LoadPoint(20, 20, 30.0, requests=20)]
    result = ProfileResult(
        "classifier-small",
        "http://127.0.0.1:1",
        ReplicaKind("cpu", 1),
        OPTS,
        steps,
        capacity_at_slo(steps, Slo(p99_ms=20)),
        1000.0,
        1010.0,
    )
    row = curve_row(result)
    assert row["replica_kind"] == "cpu-x1" and row["slo_metric"] == "p99_ms" and row["slo_ms"] == 20
    assert row["capacity_rps"] == pytest.approx(16.0) and row["lower_bound"] == 0
    points = json.loads(row["points"])
    assert len(points["steps"]) == 2 and points["fitted"]["p99_ms"]["latency_ms"] == [5.0, 30.0]
    assert json.loads(row["inputs"])["step_s"] == 1


def test_poisson_arrivals_span_the_step_with_random_gaps():
    import numpy as np

    from controlplane.capacity.profile import due_times_s

    even = due_times_s(5, 10.0, "constant", np.random.default_rng(0))
    assert even == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    due = due_times_s(400, 20.0, "poisson", np.random.default_rng(0))
    gaps = np.diff(due)
    assert due[0] == 0.0 and all(gaps > 0)
    assert due[-1] + gaps.mean() == pytest.approx(20.0, rel=0.01)  # n / rate seconds in all
    assert 0.7 < gaps.std() / gaps.mean() < 1.3  # exponential gaps: coefficient of variation ~1


def test_unknown_arrival_pattern_is_refused():
    with pytest.raises(ValueError, match="arrivals='bursty' must be one of constant, poisson"):
        SweepOptions(arrivals="bursty")


def test_steps_send_fresh_inputs_unless_seeded():
    # The response cache keys on input bytes and outlives a sweep: by default every step (of
    # this sweep or any later one) draws new inputs; a fixed seed repeats them.
    from controlplane.capacity.profile import _planned, step_rng

    def body(opts, step):
        return _planned("classifier-small", 0, step_rng(opts, step), opts).body

    fresh = SweepOptions()
    assert body(fresh, 0) != body(fresh, 0)
    seeded = SweepOptions(seed=7)
    assert body(seeded, 0) == body(seeded, 0) != body(seeded, 1)
