"""Simulator pieces, table-driven: the batching curve, the latency mixture, the FIFO fluid queue,
startup delay, failures, zones, and the trace -> arrivals binning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.sim.fleet import Fleet, FleetModel, wait_piece
from controlplane.sim.latency import LatencyGroups, ReplicaModel, cdf_sum_uniform, rows_mean_ms
from controlplane.sim.workload import (
    Workload,
    counts_from_offsets,
    expected_per_tick,
    load_workload,
    scale_counts,
    smoothed_rate_rps,
)
from serving.replay.traces import TraceError

R = ReplicaModel(base_ms=100.0, per_item_ms=50.0, max_batch=8)  # s(8) = 450 ms -> 17.78 rps


@pytest.mark.parametrize(
    ("batch", "service_ms"),
    [(1, 100.0), (2, 150.0), (8, 450.0), (20, 450.0), (0.5, 100.0)],  # clipped to [1, max_batch]
)
def test_batching_curve_service_time(batch, service_ms):
    assert R.service_ms(batch) == pytest.approx(service_ms)


def test_throughput_rises_with_batch_up_to_the_limit():
    thr = [b * 1000.0 / R.service_ms(b) for b in range(1, 9)]
    assert all(b > a for a, b in zip(thr, thr[1:], strict=False))
    assert R.max_rps == pytest.approx(8 * 1000.0 / 450.0)


@pytest.mark.parametrize(
    ("rate_rps", "batch"),
    [
        (0.0, 1.0),
        (5.0, 1.0),  # fixed point 5 * (0.05) / (1 - 0.25) = 0.33 -> clipped to 1
        (12.0, 12 * 0.05 / (1 - 0.6)),  # b = r (base - per) / (1 - r per) = 1.5
        (17.0, 17 * 0.05 / (1 - 0.85)),  # 5.67
        (19.0, 8.0),  # beyond max throughput: the largest batch
    ],
)
def test_steady_state_batch_is_the_fixed_point(rate_rps, batch):
    b = R.batch_at(rate_rps)
    assert b == pytest.approx(batch)
    if 1 < b < R.max_batch:  # a batch of b forms while the previous one runs
        assert b == pytest.approx(rate_rps * R.service_ms(b) / 1000.0)


def test_latency_rows_without_a_queue_carry_the_replicas_own_poisson_queueing():
    # 4 rps on R (base 100 ms, per item 50 ms, max 8): utilisation 0.4 / (8 / 450 ms) = 0.225.
    rows = R.latency_rows(4.0, 1.0, 0.0, 0.0)
    assert sum(share for share, _ in rows) == pytest.approx(1.0)
    assert all(row[:2] == (100.0, 100.0) for _, row in rows)  # an idle replica serves at once
    g = LatencyGroups.from_rows([(share, 0.0, *row) for share, row in rows])
    # The exact batch queue (batch_queue.py) at this load: most requests find it idle, and the
    # tail waits out a batch in progress and its own.
    assert g.quantile_ms(0.5) == pytest.approx(100.0, abs=1.0)
    assert 180.0 < g.quantile_ms(0.99) < 320.0
    assert rows_mean_ms(rows) == pytest.approx(
        sum(s * (r[0] + (1 - r[2]) * 0.5 * (r[3] + r[4])) for s, r in rows)
    )
    # Heavier load: a longer wait at every quantile.
    heavy = LatencyGroups.from_rows([(s, 0.0, *r) for s, r in R.latency_rows(14.0, 1.0, 0.0, 0.0)])
    assert heavy.quantile_ms(0.5) > g.quantile_ms(0.5) + 20 and heavy.quantile_ms(0.99) > g.quantile_ms(0.99)
    # Behind a queue: the queue's wait, and service uniform over [s, s * (1 + busy)].
    assert R.latency_rows(4.0, 0.3, 50.0, 80.0) == [(1.0, pytest.approx((100.0, 140.0, 0.3, 50.0, 80.0)))]


@pytest.mark.parametrize(
    ("x", "a1", "b1", "a2", "b2", "want"),
    [
        (1.0, 0, 1, 0, 1, 0.5),  # triangle on [0, 2]: half below its middle
        (0.5, 0, 1, 0, 1, 0.125),  # 0.5^2 / 2
        (1.5, 0, 1, 0, 1, 0.875),
        (2.0, 0, 1, 0, 1, 1.0),
        (3.0, 0, 2, 0, 1, 1.0),
        (1.5, 0, 2, 0, 1, (1.5 - 0.5) / 2),  # trapezoid: flat part, slope 1/2
        (10.0, 10, 10, 0, 0, 1.0),  # two point masses at 10
        (9.99, 10, 10, 0, 0, 0.0),
    ],
)
def test_cdf_of_the_sum_of_two_uniforms(x, a1, b1, a2, b2, want):
    assert float(cdf_sum_uniform(x, a1, b1, a2, b2)) == pytest.approx(want, abs=1e-6)


def test_cdf_agrees_with_sampling():
    rng = np.random.default_rng(1)
    s = rng.uniform(200, 500, 200_000) + rng.uniform(0, 900, 200_000)
    for x in (300.0, 700.0, 1000.0, 1300.0):
        assert float(cdf_sum_uniform(x, 200, 500, 0, 900)) == pytest.approx(np.mean(s <= x), abs=0.005)


def test_latency_groups_attainment_and_quantile():
    g = LatencyGroups(
        count=np.array([90.0, 10.0]),
        extra_ms=np.array([0.0, 0.0]),
        svc_lo_ms=np.array([100.0, 100.0]),
        svc_hi_ms=np.array([100.0, 100.0]),
        p0=np.array([1.0, 0.0]),  # 90 requests never wait, 10 wait U[1000, 2000] ms
        wait_lo_ms=np.array([0.0, 1000.0]),
        wait_hi_ms=np.array([0.0, 2000.0]),
    )
    assert g.fraction_within(1000.0) == pytest.approx(0.9, abs=1e-6)
    assert g.fraction_within(1600.0) == pytest.approx(0.95, abs=1e-6)  # half of the waiters are done
    assert g.quantile_ms(0.99) == pytest.approx(100 + 1000 + 900, abs=0.05)
    # 90 x 100 ms + 10 x (100 + 1500 ms mean wait)
    assert g.mean_ms() == pytest.approx((90 * 100 + 10 * 1600) / 100)


@pytest.mark.parametrize(
    ("w0", "w1", "want"),
    [
        (-1.0, -0.5, (1.0, 0.0, 0.0)),  # served before arriving: the replica was idle, no wait
        (0.5, 1.5, (0.0, 0.5, 1.5)),
        (1.5, 0.5, (0.0, 0.5, 1.5)),
        (-1.0, 1.0, (0.5, 0.0, 1.0)),  # half of the piece waits, uniformly up to 1 s
    ],
)
def test_wait_piece(w0, w1, want):
    assert wait_piece(w0, w1) == pytest.approx(want)


def one_replica_fleet(startup_s=0.0, replicas=1, **kw):
    return Fleet(
        FleetModel(ReplicaModel(base_ms=100.0, per_item_ms=0.0, max_batch=1), startup_s, **kw), replicas
    )


@pytest.mark.parametrize(
    ("arrivals", "served", "queue_after", "max_wait_ms"),
    [
        (5.0, 5.0, 0.0, 0.0),  # under capacity (10 rps): no queue, no wait
        (10.0, 10.0, 0.0, 0.0),  # exactly at capacity: keeps up (fluid)
        (20.0, 10.0, 10.0, 500.0),  # twice the capacity: half waits; the last served waited 0.5 s
    ],
)
def test_fluid_queue_one_tick(arrivals, served, queue_after, max_wait_ms):
    f = one_replica_fleet()
    groups, spill, ready = f.serve(0.0, 1.0, arrivals)
    assert ready == 1 and spill == 0.0
    assert sum(g[0] for g in groups) == pytest.approx(served)
    assert f.queue_len == pytest.approx(queue_after)
    assert max(g[3] for g in groups) == pytest.approx(max_wait_ms)


def test_queue_is_fifo_and_a_backlog_drains_with_growing_then_shrinking_waits():
    f = one_replica_fleet()
    f.serve(0.0, 1.0, 20.0)  # 10 left waiting
    groups, _, _ = f.serve(1.0, 1.0, 0.0)  # the 10 left from tick 0 are served in tick 1
    assert sum(g[0] for g in groups) == pytest.approx(10.0)
    # They arrived over [0.5, 1.0) and are served over [1.0, 2.0): waits from 0.5 s to 1.0 s.
    assert groups[0][1:] == pytest.approx((0.0, 500.0, 1000.0))
    assert f.queue_len == 0.0


def test_startup_delay_billed_but_not_serving():
    f = one_replica_fleet(startup_s=30.0)
    f.scale_to(3, now_s=0.0)
    assert f.spec == 3
    assert f.ready(0.0) == 1 and f.ready(29.0) == 1 and f.ready(30.0) == 3
    _, _, ready = f.serve(10.0, 1.0, 25.0)
    assert ready == 1 and f.queue_len == pytest.approx(15.0)  # one replica serves 10 of 25


def test_scale_down_removes_starting_replicas_first():
    f = one_replica_fleet(startup_s=30.0, replicas=2)
    f.scale_to(4, now_s=0.0)  # 2 ready, 2 starting
    assert f.scale_to(2, now_s=1.0) == -2
    assert f.spec == 2 and f.ready(1.0) == 2  # the ready ones stay


def test_failures_restart_replicas():
    f = Fleet(FleetModel(R, startup_s=60.0, mtbf_s=10.0), 100, seed=3)
    n = f.fail(0.0, 1.0)  # p = 0.1 each
    assert 0 < n < 30 and f.spec == 100 and f.ready(0.0) == 100 - n and f.ready(60.0) == 100


def test_zones_spill_to_spare_capacity():
    f = Fleet(FleetModel(ReplicaModel(100.0, 0.0, 1), 0.0, zones=2), 2)  # 10 rps per replica, one a zone
    f.scale_to(1, now_s=0.0)  # one zone left with a replica
    _, spill, ready = f.serve(0.0, 1.0, 8.0)
    assert ready == 1 and spill == pytest.approx(0.5)  # the empty zone's half of the users cross
    g = Fleet(FleetModel(ReplicaModel(100.0, 0.0, 1), 0.0, zones=2), 3)  # zones hold 2 and 1
    _, spill, _ = g.serve(0.0, 1.0, 24.0)  # 12 per zone: the 1-replica zone sends 2 across
    assert spill == pytest.approx(2 / 24)


# ---- workload --------------------------------------------------------------------------------


def test_counts_from_offsets():
    assert counts_from_offsets(np.array([0.1, 0.9, 1.0, 3.5]), 1.0).tolist() == [2, 1, 0, 1]
    with pytest.raises(TraceError):
        counts_from_offsets(np.array([]), 1.0)


def test_expected_per_tick_integrates_the_rate():
    # 10 rps for 1.5 s then 20 rps for 1.5 s: ticks of 1 s get 10, 15, 20
    exp = expected_per_tick(np.array([0.0, 1.5]), np.array([1.5, 1.5]), np.array([10.0, 20.0]), 1.0)
    assert exp.tolist() == pytest.approx([10.0, 15.0, 20.0])


def test_scale_counts_keeps_the_total_and_spreads_bursts():
    rng = np.random.default_rng(0)
    c = np.zeros(1000, dtype=np.int64)
    c[::100] = 50  # bursts
    out = scale_counts(c, 4.0, rng)
    assert out.sum() == 4 * c.sum()
    assert out.max() < 4 * 50  # copies are shifted: bursts do not stack 4 high
    half = scale_counts(c, 0.5, np.random.default_rng(0))
    assert abs(half.sum() - c.sum() / 2) < 0.2 * c.sum()


def test_smoothed_rate():
    w = Workload("w", 1.0, np.array([0, 10, 0, 10]))
    assert smoothed_rate_rps(w, 2.0).tolist() == pytest.approx([0.0, 5.0, 5.0, 5.0])


def test_load_workload_rate_and_token_traces(tmp_path):
    rate = tmp_path / "r.csv"
    rate.write_text("ts_s,rate_rps\n0,100\n10,0\n")
    w = load_workload(rate, tick_s=1.0, seed=1)
    assert w.ticks == 20 and w.intensity_rps is not None
    assert 800 < w.counts[:10].sum() < 1200 and w.counts[10:].sum() == 0
    jl = tmp_path / "t.jsonl"
    jl.write_text(
        "".join(f'{{"timestamp": {ms}, "input_length": 5, "output_length": 3}}\n' for ms in (0, 500, 2500))
    )
    w = load_workload(jl)
    assert w.counts.tolist() == [2, 0, 1] and w.intensity_rps is None
    bad = tmp_path / "bad.csv"
    bad.write_text("ts_s,rate_rps\n0,-3\n")
    with pytest.raises(TraceError, match="line 2"):
        load_workload(bad)
    with pytest.raises(ValueError, match="tick_s"):
        load_workload(rate, tick_s=0.0)
    assert math.isfinite(w.duration_s)


def test_grid_quantile_agrees_with_the_exact_one():
    rng = np.random.default_rng(4)
    n = 12
    lo = rng.uniform(100, 300, n)
    w_lo = rng.uniform(0, 500, n)
    g = LatencyGroups(
        count=rng.uniform(1, 50, n),
        extra_ms=np.zeros(n),
        svc_lo_ms=lo,
        svc_hi_ms=lo * 1.5,
        p0=rng.uniform(0, 1, n),
        wait_lo_ms=w_lo,
        wait_hi_ms=w_lo + rng.uniform(0, 1000, n),
    )
    exact = g.quantile_ms(0.99)
    top = float(np.max(g.svc_hi_ms + g.wait_hi_ms))
    assert abs(g.quantile_grid_ms(0.99) - exact) <= top / 255 + 0.01
