"""Detector math and behaviour: robust seasonal, change point, novelty, peer, multivariate, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.anomaly import changepoint, multivariate, nab_detector, novelty, peer, robust

STEP_S = 300.0  # 5-minute samples
DAY = int(86_400 / STEP_S)


def _run_robust(x, start_s=0.0, params=robust.RobustParams()):
    x = np.atleast_2d(np.asarray(x, dtype=float))  # [series, time]
    st = robust.init_state(x.shape[0], params)
    z, shifted = [], []
    for t in range(x.shape[1]):
        st, out = robust.step(st, x[:, t], start_s + t * STEP_S, params)
        z.append(out.signed_z)
        shifted.append(out.shifted)
    return np.array(z).T, np.array(shifted).T


def _daily(n_days, rng, noise=0.5):
    t = np.arange(n_days * DAY)
    # Phases switch on 30-min bin boundaries (the daily model resolves 48 bins a day).
    return 50 + 20 * (np.sin(2 * np.pi * (t + 0.5) / DAY) > 0) + rng.normal(0, noise, t.size)


def test_robust_flags_a_spike_and_ignores_noise():
    rng = np.random.default_rng(0)
    x = 10 + rng.normal(0, 1, 600)
    x[400] += 15
    z, _ = _run_robust(x)
    assert abs(z[0, 400]) > 8
    assert np.abs(z[0, 50:400]).max() < 6


def test_robust_learns_the_daily_cycle_but_flags_a_missed_peak():
    rng = np.random.default_rng(1)
    x = _daily(6, rng)
    z, _ = _run_robust(x)
    # After three days the daily square wave no longer surprises...
    assert np.abs(z[0, 3 * DAY : 5 * DAY]).max() < 6
    # ...but a day whose high phase does not come does (on the level model it looks calm).
    y = x.copy()
    y[5 * DAY : 5 * DAY + DAY // 2] -= 20
    z2, _ = _run_robust(y)
    assert np.abs(z2[0, 5 * DAY : 5 * DAY + 10]).max() > 6


def test_robust_level_shift_alerts_once_then_adapts():
    rng = np.random.default_rng(2)
    x = 100 + rng.normal(0, 1, 800)
    x[500:] += 30
    z, shifted = _run_robust(x)
    big = np.flatnonzero(np.abs(z[0]) > 6)
    assert big.min() == 500
    assert big.max() < 510, "a level shift must not flood"
    assert shifted[0, 500:510].any()


@pytest.mark.parametrize(
    "z_seq, expect_change_at",
    [
        ([0.5, -0.5] * 20, None),  # noise drains against the drift
        ([0.0] * 5 + [4.0] * 6, 9),  # +4 sigma run: 2.5 per sample, crosses 12 on the 5th
        ([0.0] * 5 + [-3.0] * 10, 12),  # -3 sigma run: 1.5 per sample, crosses 12 on the 8th
        ([0.0] * 5 + [50.0] + [0.0] * 10, None),  # one capped spike is not a change
    ],
)
def test_cusum_table(z_seq, expect_change_at):
    st = changepoint.init_state(1)
    changes = []
    for z in z_seq:
        st, out = changepoint.step(st, np.array([z]))
        changes.append(bool(out.change[0]))
    got = changes.index(True) if any(changes) else None
    assert got == expect_change_at


@pytest.mark.parametrize(
    "history, current, positive",
    [
        ([2.0] * 50, 20.0, True),  # quiet series, big jump: news
        ([300.0] * 50, 250.0, False),  # a series that bursts like this all the time
        ([2.0] * 50, 3.0, False),  # below the noise floor
    ],
)
def test_novelty_is_relative_to_the_series_own_record(history, current, positive):
    st = novelty.init_state(1)
    for z in history:
        st, _ = novelty.step(st, np.array([z]))
    _, nov = novelty.step(st, np.array([current]))
    assert bool(nov[0] > 0) == positive


def test_peer_flags_the_slow_replica_while_fleet_load_moves():
    rng = np.random.default_rng(4)
    groups = np.array(["m"] * 5 + ["other"] * 3)
    flagged = []
    for t in range(100):
        load = 1 + 0.8 * np.sin(t / 10)  # fleet-wide latency swings by +-80 %
        lat = 20 * load * (1 + 0.03 * rng.standard_normal(8))
        if t >= 50:
            lat[2] += 50  # replica 2 becomes slow (+50 ms)
        z = peer.peer_z(lat, groups).z
        flagged.append(np.flatnonzero(np.abs(z) > 4).tolist())
    assert all(f == [] for f in flagged[:50]), "fleet-wide load alone must flag nobody"
    assert all(f == [2] for f in flagged[50:]), "only the slow replica stands out"


def test_peer_with_two_replicas_compares_with_the_other():
    out = peer.peer_z(np.array([10.0, 30.0]), np.array(["m", "m"]))
    assert out.expected.tolist() == [30.0, 10.0]
    assert out.z[1] > 4 and out.z[0] < -4


def test_peer_ratios_are_compared_within_their_binomial_noise():
    groups, floor = np.array(["m", "m"]), np.array([0.1, 0.1])
    # 9 cache hits of 30 against 23 of 30: two equal caches drawn 3.6 sigma apart. The floor alone
    # (0.1) puts it past 4.6, where the peer evidence alone opens an incident (combine: 0.6).
    draw = np.array([9 / 30, 23 / 30])
    assert peer.peer_z(draw, groups, floor=floor).z[0] == pytest.approx(-4.67, abs=0.01)
    p = (9 + 23 + 1) / (60 + 2)  # the pooled rate, Laplace-smoothed
    se = np.sqrt(p * (1 - p) / 30)
    z = peer.peer_z(draw, groups, floor=floor, trials=np.array([30.0, 30.0])).z
    assert z[0] == pytest.approx(-(23 - 9) / 30 / np.hypot(se, se))
    assert -4.0 < z[0] < -3.0
    # A collapse over 300 lookups each is far outside that noise: the floor still rules.
    collapse = np.array([0.0, 0.5])
    z = peer.peer_z(collapse, groups, floor=floor, trials=np.array([300.0, 300.0])).z
    assert z[0] == pytest.approx(-5.0)
    # A series without a count (a latency beside the ratios) is unchanged.
    z = peer.peer_z(draw, groups, floor=floor, trials=np.array([np.nan, np.nan])).z
    assert z[0] == pytest.approx(-4.67, abs=0.01)


def test_multivariate_flags_an_odd_combination():
    rng = np.random.default_rng(5)
    params = multivariate.MultiParams(window_rows=500, refit_every=20, min_rows=64, n_estimators=30)
    st = multivariate.init_state(6, params)
    normal = np.array([20.0, 2.0, 0.001, 0.6, 0.5, 4e9])
    for _ in range(40):
        X = normal * (1 + 0.05 * rng.standard_normal((8, 6)))
        st, out = multivariate.step(st, X, params)
    X = normal * (1 + 0.05 * rng.standard_normal((8, 6)))
    X[3] = [80.0, 30.0, 0.2, 0.05, 0.05, 4e9]  # slow, queued, failing, cache cold, GPU idle
    st, out = multivariate.step(st, X, params)
    assert out.fitted
    assert int(np.argmax(out.score)) == 3 and out.score[3] > 0.5
    assert np.delete(out.score, 3).max() < out.score[3] - 0.2


def test_streaming_truncation_leaves_the_common_prefix_identical():
    """A score at t uses only data up to t: scoring a prefix gives the same numbers."""
    rng = np.random.default_rng(6)
    x = _daily(3, rng, noise=2.0)
    x[600] += 40
    ts = np.datetime64("2024-01-01T00:00:00") + (np.arange(x.size) * 300).astype("timedelta64[s]")
    full = nab_detector.score_series(x, ts)
    for cut in (100, 577, 601):
        part = nab_detector.score_series(x[:cut], ts[:cut])
        np.testing.assert_array_equal(part, full[:cut])
    # ...and scoring it in a batch with other series changes nothing either.
    batch = nab_detector.score_many([(x[:300], ts[:300]), (x, ts)])
    np.testing.assert_array_equal(batch[1], full)
    zf, _ = _run_robust(x)
    zp, _ = _run_robust(x[:450])
    np.testing.assert_array_equal(zp, zf[:, :450])


def test_nab_scores_are_in_unit_interval_and_peak_at_the_anomaly():
    rng = np.random.default_rng(7)
    x = 10 + rng.normal(0, 1, 2000)
    x[1500] += 25
    ts = np.datetime64("2024-01-01T00:00:00") + (np.arange(x.size) * 300).astype("timedelta64[s]")
    s = nab_detector.score_series(x, ts)
    assert s.min() >= 0 and s.max() <= 1
    assert int(np.argmax(s[300:])) + 300 == 1500


@pytest.mark.parametrize(
    "values, groups, moved, blamed, want, want_blamed",
    [
        # two replicas: the one that moved from its own history keeps the evidence, and is blamed
        ([10.0, 30.0], ["m", "m"], [0.5, 9.0], [0, 0], [0, 5], [0, 1]),
        ([10.0, 30.0], ["m", "m"], [9.0, 0.5], [0, 0], [5, 0], [1, 0]),
        # blamed before: stays blamed while the gap is open, though its peer now moved more
        ([10.0, 30.0], ["m", "m"], [0.9, 0.1], [0, 1], [0, 5], [0, 1]),
        # ...unless the peer now makes a surprising move of its own, away from the blamed one (a
        # collapse after its peer spiked to the good side); a move back towards it is not one
        ([10.0, 30.0], ["m", "m"], [4.0, 0.1], [0, 1], [5, 0], [1, 0]),
        ([10.0, 30.0], ["m", "m"], [-4.0, 0.1], [0, 1], [0, 5], [0, 1]),
        # a tie (both warming up: robust z 0) keeps both and blames nobody
        ([10.0, 30.0], ["m", "m"], [0.0, 0.0], [0, 0], [5, 5], [0, 0]),
        # three replicas have a consensus: unchanged; a replica without a value is not a peer
        ([10.0, 30.0, 12.0], ["m", "m", "m"], [9.0, 0.0, 0.0], [0, 0, 0], [5, 5, 5], [0, 0, 0]),
        ([10.0, np.nan, 30.0], ["m", "m", "m"], [0.1, 0.0, 5.0], [0, 0, 0], [0, 5, 5], [0, 0, 1]),
        # groups are independent
        ([1.0, 3.0, 5.0, 6.0], ["a", "a", "b", "b"], [1, 0, 0, 2], [0, 0, 0, 0], [5, 0, 0, 5], [1, 0, 0, 1]),
    ],
)
def test_one_peer_evidence_goes_to_the_replica_that_moved(values, groups, moved, blamed, want, want_blamed):
    z = np.full(len(values), 5.0)  # every gap open
    got, now_blamed = peer.attribute_pairs(
        z, np.array(values), np.array(groups), np.array(moved, dtype=float), np.array(blamed, dtype=bool), 2.5
    )
    assert got.tolist() == want and now_blamed.astype(int).tolist() == want_blamed


def test_the_blame_moves_only_for_a_move_to_the_bad_side():
    # Latency (high is bad): replica-1 is blamed for 700 ms against 20; replica-0 reads 4 sigma
    # low (away from its peer, but faster is not a fault): the blame stays.
    z, values, groups = np.array([-6.0, 6.0]), np.array([17.0, 700.0]), np.array(["m", "m"])
    blamed = np.array([False, True])
    args = (z, values, groups, np.array([-4.0, 0.1]), blamed, 2.5)
    assert peer.attribute_pairs(*args, direction=np.array([1.0, 1.0]))[1].tolist() == [False, True]
    # Both sides bad (GPU utilisation) or cache hit ratio (low is bad): it moves.
    assert peer.attribute_pairs(*args, direction=np.array([0.0, 0.0]))[1].tolist() == [True, False]
    assert peer.attribute_pairs(*args, direction=np.array([-1.0, -1.0]))[1].tolist() == [True, False]


def test_a_closed_gap_clears_the_blame():
    z, blamed = peer.attribute_pairs(
        np.array([1.0, -1.0]), np.array([10.0, 11.0]), np.array(["m", "m"]), np.array([0.0, 9.0]),
        np.array([False, True]), 2.5,
    )  # fmt: skip
    assert z.tolist() == [1.0, -1.0] and blamed.tolist() == [False, False]
