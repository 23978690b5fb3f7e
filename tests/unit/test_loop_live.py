"""The loop's live view: window arithmetic on cumulative counters, and detection on it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from controlplane.anomaly.tick import SeriesKey
from controlplane.loop import live
from controlplane.loop.detect import (
    RATIO_MIN_TRIALS,
    Detector,
    memory_growth_bytes_per_s,
    observe,
    ratio_window,
)
from controlplane.loop.live import LiveWindow, TargetSample, build_view, histogram_quantile, window_stats
from tests.unit.loop_fakes import SimReplica

M = "classifier-small"


def sample(ts, values, target="r0"):
    return TargetSample(ts, target, "zone-a", {(M, k, ""): v for k, v in values.items()})


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (10.0, 25.0, 15.0),  # normal increase
        (100.0, 7.0, 7.0),  # a restart: the new value is the increase, never negative
        (None, 5.0, None),  # unknown old value
        (5.0, None, None),  # the series vanished
    ],
)
def test_increase_is_reset_safe(old, new, expected):
    assert live.increase(old, new) == expected


def test_window_stats_rates_latency_and_errors():
    old = sample(0.0, {live.SUCCESS: 100, live.FAILURE: 0, live.REQUEST_US: 100 * 5000, live.QUEUE_US: 0})
    new = sample(10.0, {live.SUCCESS: 300, live.FAILURE: 50, live.REQUEST_US: 100 * 5000 + 200 * 8000,
                        live.QUEUE_US: 200 * 1000})  # fmt: skip
    w = window_stats(old, new, M)
    assert w.rate_rps == pytest.approx(20.0)
    assert w.error_ratio == pytest.approx(50 / 250)
    assert w.latency_ms == pytest.approx(8.0)
    assert w.queue_ms == pytest.approx(1.0)


def test_a_failure_counter_that_appears_counts_from_zero():
    # Triton creates the failure series with the first failure: absent before means 0.
    w = window_stats(sample(0.0, {live.SUCCESS: 10}), sample(2.0, {live.SUCCESS: 20, live.FAILURE: 5}), M)
    assert w.error_ratio == pytest.approx(5 / 15)


def test_cache_collapse_reads_as_zero_hits_not_as_missing():
    old = sample(0.0, {live.SUCCESS: 10, live.CACHE_HITS: 8, live.CACHE_MISSES: 2})
    on = window_stats(old, sample(2.0, {live.SUCCESS: 20, live.CACHE_HITS: 16, live.CACHE_MISSES: 4}), M)
    assert on.cache_hit_ratio == pytest.approx(0.8)
    off = window_stats(old, sample(2.0, {live.SUCCESS: 20}), M)  # cache reloaded off: its series are gone
    assert off.cache_hit_ratio == 0.0
    never = window_stats(sample(0.0, {live.SUCCESS: 1}), sample(2.0, {live.SUCCESS: 9}), M)
    assert never.cache_hit_ratio is None  # a model without a cache is not a collapse
    # The counts behind the ratios: lookups while the cache answers, the requests served once it
    # is gone (its 0 was measured over them), none for a model without a cache.
    view = live.LiveView(2.0, {(M, "on"): on, (M, "off"): off, (M, "never"): never}, {}, {}, {}, (M,))
    trials = {(k.replica, k.metric): n for k, n in observe(view, {}, 12.0).trials.items()}
    assert trials == {
        ("on", "error_ratio"): 10.0,
        ("on", "cache_hit_ratio"): 10.0,
        ("off", "error_ratio"): 10.0,
        ("off", "cache_hit_ratio"): 10.0,
        ("never", "error_ratio"): 8.0,
    }


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ({10.0: 50, 20.0: 100, math.inf: 100}, 0.5, 10.0),
        ({10.0: 50, 20.0: 100, math.inf: 100}, 0.75, 15.0),  # linear inside the bucket
        ({10.0: 0, 20.0: 0, math.inf: 10}, 0.99, 20.0),  # in +Inf: the highest finite bound
        ({10.0: 0, math.inf: 0}, 0.99, None),  # nothing observed
    ],
)
def test_histogram_quantile(buckets, q, expected):
    assert histogram_quantile(buckets, q) == (pytest.approx(expected) if expected is not None else None)


def test_chunks_of_one_scrape_merge_and_old_scrapes_are_ignored():
    lw = LiveWindow()
    lw.add(sample(10.0, {live.SUCCESS: 5}))
    lw.add(TargetSample(10.0, "r0", "zone-a", {("", live.PROCESS_RSS, ""): 1e9}))
    lw.add(sample(5.0, {live.SUCCESS: 1}))  # older than what we have: ignored
    (h,) = lw.histories().values()
    assert (
        len(h) == 1
        and h[0].values[("", live.PROCESS_RSS, "")] == 1e9
        and h[0].values[(M, live.SUCCESS, "")] == 5
    )


def _fleet_view(lw, now):
    return build_view(lw.histories(), now, detect_window_s=2, stable_window_s=10, short_window_s=4)


def test_one_slow_replica_is_flagged_and_its_faster_peer_is_not():
    lw, det = LiveWindow(), Detector()
    reps = [SimReplica("r0"), SimReplica("r1")]
    events, now = [], 0.0
    for tick in range(40):
        now = 2.0 * (tick + 1)
        for r in reps:
            slow = 50.0 if (r.name == "r1" and tick >= 30) else 0.0
            r.advance(M, 2.0, 20.0, 2.0 + 0.1 * (tick % 3) + slow, cache_hit_ratio=0.5)
            lw.add(r.sample(now))
        view = _fleet_view(lw, now)
        observed = observe(view, {k: list(v) for k, v in lw.histories().items()}, 12.0)
        events += det.tick(now, observed.values, observed.trials)
    opened = [e for e in events if e.kind == "opened"]
    assert [(e.replica, e.metric) for e in opened] == [("r1", "latency_ms")]
    assert opened[0].ts.timestamp() <= 2.0 * 31 + 2.0  # within one interval of the first slow scrape


def _cache_draws(
    seed: int, ticks: int, with_trials: bool, collapse_at: int, rate_rps: float = 15.0
) -> list[tuple[int, str, str]]:
    """Two equal replicas (half the requests repeated: Bin(2 * rate_rps, 0.5) cache hits per 2-s
    scrape) until r1's cache collapses at tick `collapse_at` -> (tick, replica, metric) opened."""
    rng = np.random.default_rng(seed)
    lw, det = LiveWindow(), Detector()
    reps = [SimReplica("r0"), SimReplica("r1")]
    n = int(2 * rate_rps)
    opened = []
    for tick in range(ticks):
        now = 2.0 * (tick + 1)
        for r in reps:
            hits = 0 if (r.name == "r1" and tick >= collapse_at) else rng.binomial(n, 0.5)
            r.advance(M, 2.0, rate_rps, 2.0, cache_hit_ratio=hits / n)
            lw.add(r.sample(now))
        view = _fleet_view(lw, now)
        observed = observe(view, {k: list(v) for k, v in lw.histories().items()}, 12.0)
        events = det.tick(now, observed.values, observed.trials if with_trials else None)
        opened += [(tick, e.replica, e.metric) for e in events if e.kind == "opened"]
    return opened


@pytest.mark.parametrize("seed", [27, 36])
def test_two_equal_caches_drawn_apart_are_not_a_fault_and_a_collapse_still_is(seed):
    # These draws opened a cache incident on a healthy replica when the peer comparison judged the
    # ratios by a fixed floor (seed 27 at tick 20, 36 at tick 53: the clean period of a CI run of
    # the live-fault test saw one); 8 seeds of 60 did in 600 ticks, none with the counts.
    assert [o for o in _cache_draws(seed, 60, with_trials=False, collapse_at=60) if o[0] < 60]
    opened = _cache_draws(seed, 70, with_trials=True, collapse_at=60)
    assert opened and opened[0][1:] == ("r1", "cache_hit_ratio"), opened
    assert opened[0][0] <= 61, "a collapse over 30 lookups is still seen within one scrape"
    assert all(t >= 60 for t, _, _ in opened), opened


def test_a_low_traffic_ratio_reaches_back_until_it_holds_enough_requests():
    lw, rep = LiveWindow(), SimReplica("r0")
    for tick in range(12):
        rep.advance(M, 2.0, 5.0, 2.0, error_ratio=0.1 if tick >= 9 else 0.0, cache_hit_ratio=0.5)
        lw.add(rep.sample(2.0 * (tick + 1)))
    h = list(lw.histories()["r0"])
    w = _fleet_view(lw, 24.0).per_replica[(M, "r0")]
    assert w.requests == 10  # one 2-s scrape at 5 rps
    r = ratio_window(w, h)
    assert (r.window_s, r.requests, r.end_s) == (6.0, RATIO_MIN_TRIALS, 24.0)
    assert r.error_ratio == pytest.approx(0.1)
    assert (
        observe(_fleet_view(lw, 24.0), {"r0": h}, 12.0).trials[SeriesKey(M, "r0", "error_ratio", "zone-a")]
        == 30
    )
    # Enough requests in the window itself: unchanged; the window is not the newest scrape's: unchanged.
    busy = replace(w, requests=40.0)
    assert ratio_window(busy, h) is busy
    assert ratio_window(w, h[:-1]) is w
    # A history shorter than the reach: the longest window there is.
    assert ratio_window(w, h[-3:]).window_s == 4.0


def test_a_low_traffic_collapse_is_found_over_enough_lookups_and_noise_is_not():
    # 5 rps: 10 lookups per 2-s scrape. Judged per scrape, 0 of 10 against 5 of 10 is a 2.5-sigma
    # draw: with a fixed floor, equal caches drawn apart opened 1-3 false incidents in 150 ticks
    # and 7 collapses of 20 went unseen for 100 s. Read over 30 lookups, the collapse is seen in
    # 2-5 scrapes (seed 1: 5; seed 18's was hidden by the blame its peer kept for a spike up).
    for seed in (0, 1, 18):
        opened = _cache_draws(seed, 260, with_trials=True, collapse_at=250, rate_rps=5.0)
        assert opened and opened[0][1:] == ("r1", "cache_hit_ratio"), (seed, opened)
        assert 250 <= opened[0][0] <= 255, (seed, opened)


def test_memory_growth_slope():
    h = [
        TargetSample(float(t), "r0", "", {("", live.PROCESS_RSS, ""): 1e9 + 40e6 * max(0, t - 5)})
        for t in range(10)
    ]
    assert memory_growth_bytes_per_s(h, 4.0) == pytest.approx(40e6)
    assert abs(memory_growth_bytes_per_s(h[:3], 4.0)) < 1.0
    assert memory_growth_bytes_per_s(h[:2], 4.0) is None  # too few points


def test_token_models_are_timed_by_time_to_first_token_and_end_to_end_histograms():
    # A decoupled model's Triton request duration ends when execute() hands the request to the
    # engine: 1 ms here. The engine's own TTFT (150 ms) is what a slow replica shows.
    old = sample(0.0, {live.SUCCESS: 0, live.REQUEST_US: 0, live.TTFT_SUM_S: 0.0, live.TTFT_COUNT: 0})
    new_vals = {live.SUCCESS: 10, live.REQUEST_US: 10 * 1000, live.TTFT_SUM_S: 1.5, live.TTFT_COUNT: 10}
    new = TargetSample(2.0, "r0", "zone-a", {(M, k, ""): v for k, v in new_vals.items()})
    for le, n in ((0.1, 0), (0.25, 10), (float("inf"), 10)):
        new.values[(M, live.E2E_BUCKETS_S, str(le))] = n
    w = window_stats(old, new, M)
    assert w.latency_ms == pytest.approx(150.0)
    assert 100.0 < w.p99_ms <= 250.0  # from the end-to-end buckets, in ms
    assert all(m in live.WANTED for m in (live.TTFT_SUM_S, live.TTFT_COUNT, live.E2E_BUCKETS_S))


def test_model_mean_latency_is_request_weighted_over_the_replicas_in_rotation():
    def win(target, ok, latency_ms):
        old = sample(0.0, {live.SUCCESS: 0, live.REQUEST_US: 0}, target)
        new = sample(10.0, {live.SUCCESS: ok, live.REQUEST_US: ok * latency_ms * 1000.0}, target)
        return window_stats(old, new, M)

    stable = [win("r0", 100, 5.0), win("r1", 300, 9.0), win("r2", 50, 400.0)]
    agg = live.aggregate(M, stable, stable, exclude_latency=frozenset({"r2"}))  # r2 is being drained
    assert agg.mean_latency_ms == pytest.approx((100 * 5.0 + 300 * 9.0) / 400)
    assert live.aggregate(M, [], []).mean_latency_ms is None
