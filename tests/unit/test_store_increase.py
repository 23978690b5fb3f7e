"""IncreaseTracker: the reset-safe per-sample increase computed at insert (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.store.increase import IncreaseTracker, is_cumulative


def _run(tr: IncreaseTracker, rows, seed=None, commit=True):
    sid = np.array([r[0] for r in rows], np.uint64)
    ts = np.array([r[1] for r in rows], np.int64)
    val = np.array([r[2] for r in rows], np.float64)
    delta, staged = tr.compute(sid, ts, val, np.ones(len(rows), bool), seed=seed)
    if commit:
        tr.commit(staged)
    return delta.tolist()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([10, 20, 35], [0, 10, 15]),  # first sample has no predecessor
        ([10, 20, 30, 5, 15], [0, 10, 10, 5, 10]),  # reset: the new value counts from zero
        ([10, 10, 10], [0, 0, 0]),
        ([100, 0, 0, 3], [0, 0, 0, 3]),  # reset to zero
    ],
)
def test_deltas(values, expected):
    rows = [(1, i * 15000, v) for i, v in enumerate(values)]
    assert _run(IncreaseTracker(), rows) == expected


def test_rows_may_come_interleaved_and_unsorted():
    rows = [(2, 30000, 7), (1, 15000, 20), (2, 0, 1), (1, 0, 10), (2, 15000, 4)]
    assert _run(IncreaseTracker(), rows) == [3, 10, 0, 0, 3]


def test_state_carries_across_batches():
    tr = IncreaseTracker()
    _run(tr, [(1, 0, 10), (1, 15000, 20)])
    assert _run(tr, [(1, 30000, 25), (1, 45000, 2)]) == [5, 2]


def test_uncommitted_batch_is_recomputed_identically():
    tr = IncreaseTracker()
    _run(tr, [(1, 0, 10)])
    first = _run(tr, [(1, 15000, 30)], commit=False)  # insert failed: not committed
    assert _run(tr, [(1, 15000, 30)]) == first == [20]


def test_replayed_or_old_samples_count_nothing():
    tr = IncreaseTracker()
    _run(tr, [(1, 0, 10), (1, 15000, 20), (1, 30000, 30)])
    assert _run(tr, [(1, 0, 10), (1, 15000, 20)]) == [0, 0]
    # an old row is not a predecessor of a new one: the new one is measured from the known last
    assert _run(tr, [(1, 15000, 20), (1, 45000, 33)]) == [0, 3]


def test_unknown_series_is_seeded_from_the_store():
    asked = []

    def seed(sids, before_ms):
        asked.append((sids.tolist(), before_ms))
        return np.array([7], np.uint64), np.array([0], np.int64), np.array([100.0])

    tr = IncreaseTracker()
    assert _run(tr, [(7, 15000, 130), (8, 15000, 5)], seed=seed) == [30, 0]
    assert asked == [([7, 8], 15000)]
    _run(tr, [(7, 30000, 131), (8, 30000, 6)], seed=seed)
    assert len(asked) == 1  # known now: no second lookup


@pytest.mark.parametrize(
    ("kind", "metric", "expected"),
    [
        ("counter", "nv_inference_count", True),
        ("gauge", "nv_gpu_utilization", False),
        ("histogram", "vllm:time_to_first_token_seconds_bucket", True),
        ("histogram", "vllm:time_to_first_token_seconds_sum", True),
        ("summary", "rpc_duration_seconds", False),  # quantile samples are gauges
        ("summary", "rpc_duration_seconds_count", True),
        ("untyped", "x_total", False),
    ],
)
def test_is_cumulative(kind, metric, expected):
    assert is_cumulative(kind, metric) is expected
