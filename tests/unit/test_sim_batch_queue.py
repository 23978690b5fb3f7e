"""The exact batch-queue table behind the simulator's per-replica latency (batch_queue.py)."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.sim.batch_queue import (
    band_table_row,
    bulk_service_latency_ms,
    idle_bands,
    simulate_latency_ms,
)
from controlplane.sim.calibrate import (
    MeasuredStep,
    fit_replica_model,
    fit_replica_to_steps,
    measured_quantile_ms,
    replayed_latency_ms,
    replayed_quantile_ms,
    steady_latency_ms,
)
from controlplane.sim.latency import ReplicaModel


def _steady(latency: np.ndarray, warmup: int = 500) -> np.ndarray:
    return latency[:, warmup:].ravel()


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7])
def test_batch_of_one_is_md1_with_the_pollaczek_khinchine_wait(rho):
    # max_batch 1, service D: mean wait = rho D / (2 (1 - rho)); an arrival finds it idle 1 - rho.
    latency = _steady(simulate_latency_ms(np.array([rho / 10.0]), 10.0, 5.0, 1, 6000, 8, seed=3)[0])
    assert latency.mean() == pytest.approx(10.0 + rho * 10.0 / (2 * (1 - rho)), rel=0.06)
    assert np.isclose(latency, 10.0).mean() == pytest.approx(1 - rho, abs=0.02)


def test_batching_takes_everything_waiting_so_load_past_single_request_capacity_stays_stable():
    # Base 10 ms, 2 ms per extra item, batches up to 16: 0.15 requests per ms is 1.5x what
    # batches of one could serve, yet the queue stays bounded because batches grow.
    latency = _steady(simulate_latency_ms(np.array([0.15]), 10.0, 2.0, 16, 6000, 4, seed=5)[0])
    assert np.isfinite(latency).all() and latency.max() < 200.0
    assert latency.min() >= 10.0


def test_bands_reproduce_the_samples_median_and_p99():
    rng = np.random.default_rng(0)
    sample = np.concatenate([np.full(300, 1.0), 1.0 + rng.exponential(2.0, 700)])
    share_1, p_idle_1, x_1, share_2, x_2, x_3 = band_table_row(sample, 1.0)
    assert share_1 * p_idle_1 == pytest.approx(0.3)  # the point mass at base
    assert share_1 == pytest.approx(0.5) and share_2 == pytest.approx(0.49)
    assert 1.0 + x_1 == pytest.approx(np.quantile(sample, 0.5), rel=1e-2)  # up to interpolation
    assert 1.0 + x_2 == pytest.approx(np.quantile(sample, 0.99), rel=1e-2)
    assert x_3 >= x_2


def test_an_idle_replica_is_one_band_served_at_once():
    assert idle_bands(100.0, 50.0, 8, 0.0) == [(1.0, pytest.approx(1.0, abs=0.01), 0.0, 0.0)]


def test_bands_scale_with_base_ms_at_the_same_utilisation():
    small = idle_bands(10.0, 5.0, 8, 600.0)  # 600 rps on a 10 ms curve ...
    large = idle_bands(100.0, 50.0, 8, 60.0)  # ... is 60 rps on the same curve 10x slower
    assert [b[0] for b in small] == pytest.approx([b[0] for b in large])
    assert [b[3] * 10 for b in small] == pytest.approx([b[3] for b in large])


def test_the_calibration_fit_recovers_a_simulated_curve_given_its_max_batch():
    truth = ReplicaModel(80.0, 40.0, 64)
    rates = [5.0, 8.0, 11.0, 14.0, 17.0, 19.0]
    medians = [steady_latency_ms(truth, r, 2.0, q=0.5) for r in rates]
    fit = fit_replica_model(rates, medians, q=0.5, step_s=2.0, max_batch=64)
    assert fit.max_batch == 64
    assert fit.base_ms == pytest.approx(80.0, rel=0.06) and fit.per_item_ms == pytest.approx(40.0, rel=0.08)
    for r, m in zip(rates, medians, strict=True):
        assert steady_latency_ms(fit, r, 2.0, q=0.5) == pytest.approx(m, rel=0.05)


def test_steady_latency_rises_with_load_and_matches_the_exact_queue():
    # One replica, 0.1 s ticks of constant arrivals: the latency is the table's (Poisson within).
    model = ReplicaModel(150.0, 50.0, 16)
    exact = simulate_latency_ms(np.array([0.012]), 150.0, 50.0, 16, 20000, 4, seed=11)[0]
    assert steady_latency_ms(model, 12.0, 60.0, q=0.5) == pytest.approx(np.median(_steady(exact)), rel=0.05)
    assert steady_latency_ms(model, 12.0, 60.0, q=0.99) == pytest.approx(
        np.quantile(_steady(exact), 0.99), rel=0.1
    )
    medians = [steady_latency_ms(model, r, 20.0, q=0.5) for r in (2.0, 6.0, 10.0, 14.0)]
    assert medians == sorted(medians) and medians[-1] > 2 * medians[0]


def test_the_fit_needs_two_points_and_a_real_max_batch():
    with pytest.raises(ValueError, match="at least 2"):
        fit_replica_model([5.0], [80.0])
    with pytest.raises(ValueError, match="max_batch=0"):
        fit_replica_model([5.0, 6.0], [80.0, 81.0], max_batch=0)


def _poisson_step(rng, rate_rps: float, n: int = 100) -> np.ndarray:
    return np.cumsum(rng.exponential(1.0 / rate_rps, n))


def test_a_replayed_step_is_the_exact_queue_on_its_own_arrivals():
    model = ReplicaModel(80.0, 40.0, 16)
    rng = np.random.default_rng(2)
    sends = [_poisson_step(rng, r, n) for r, n in ((8.0, 60), (15.0, 100))]  # rows of unequal length
    steps = [MeasuredStep(tuple(s), (1.0,) * len(s), warmup=10) for s in sends]
    replayed = replayed_latency_ms(model, steps)
    for s, got in zip(sends, replayed, strict=True):
        alone = bulk_service_latency_ms(s[None] * 1000.0, 80.0, 40.0, 16)[0]
        assert got == pytest.approx(alone[10:])  # the warm-up is left out, the padding ignored
    assert np.isfinite(np.concatenate(replayed)).all() and min(map(min, replayed)) >= 80.0 - 1e-9
    # A request alone on an idle replica is served in exactly one batch's time.
    assert replayed_latency_ms(model, [MeasuredStep((0.0, 10.0), (1.0, 1.0))])[0] == pytest.approx(
        [80.0, 80.0]
    )


def test_the_same_arrivals_fit_recovers_a_curve_from_noisy_steps():
    truth = ReplicaModel(78.0, 45.0, 64)
    rng = np.random.default_rng(1)

    def step(rate):
        sent = _poisson_step(rng, rate)
        latency = bulk_service_latency_ms(sent[None] * 1000.0, 78.0, 45.0, 64)[0]
        latency *= np.exp(rng.normal(0.0, 0.05, latency.size))  # a real replica's service jitter
        return MeasuredStep(tuple(sent), tuple(latency), warmup=25)

    fit = fit_replica_to_steps([step(r) for r in (6, 9, 12, 14, 16, 17, 18, 19.5, 6.6, 13.2, 18.7)], 0.5, 64)
    assert fit.base_ms == pytest.approx(truth.base_ms, rel=0.05)
    assert fit.per_item_ms == pytest.approx(truth.per_item_ms, rel=0.05)
    for rate in (11.0, 15.4, 19.8):  # fresh steps, compared on their own arrivals
        checked = [step(rate) for _ in range(3)]
        assert replayed_quantile_ms(fit, checked) == pytest.approx(measured_quantile_ms(checked), rel=0.1)


def test_a_measured_step_names_what_is_wrong_with_it():
    with pytest.raises(ValueError, match="one send time per latency"):
        MeasuredStep((0.0, 1.0), (5.0,))
    with pytest.raises(ValueError, match="send order"):
        MeasuredStep((1.0, 0.5), (5.0, 5.0))
    with pytest.raises(ValueError, match="finite"):
        MeasuredStep((0.0, float("nan")), (5.0, 5.0))
    with pytest.raises(ValueError, match="latencies must be finite and > 0 ms"):
        MeasuredStep((0.0, 1.0), (5.0, float("inf")))
    with pytest.raises(ValueError, match=r"got \[0.0\]"):
        MeasuredStep((0.0, 1.0), (5.0, 0.0))
    failed = MeasuredStep((0.0, 1.0, 2.0), (5.0, None, 7.0), warmup=1)
    assert failed.measured_ms().tolist() == [7.0]  # the warm-up and the failed request are not compared
    with pytest.raises(ValueError, match="at least 2 steps"):
        fit_replica_to_steps([failed, MeasuredStep((0.0,), (None,))])
