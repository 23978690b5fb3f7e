"""The store on the real embedded engine: migrations, inserts, dedup, rollups, errors.

chDB runs one engine per process: a process can open another path only after closing the
first, so each store test module opens its own store and closes it at module end.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from controlplane.store import SampleBatch, StoreRejected, StoreUnavailable, open_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store-engine") / "clickhouse"
    st = open_store(f"chdb:///{path}")
    yield st
    st.close()


def _batch(target: str, n: int = 4, t0: float | None = None, step_s: float = 15.0) -> SampleBatch:
    t0 = t0 or (time.time() // 60 * 60 - 300)
    rows = []
    for i in range(n):
        rows.append(
            dict(
                ts=t0 + i * step_s,
                target=target,
                model="m",
                metric="nv_inference_count",
                kind="counter",
                value=10.0 * (i + 1),
            )
        )
        rows.append(
            dict(
                ts=t0 + i * step_s,
                target=target,
                metric="nv_gpu_utilization",
                kind="gauge",
                value=0.5,
                labels={"gpu_uuid": "G0"},
            )
        )
    return SampleBatch.from_rows(rows)


def test_migrations_are_recorded_and_idempotent(store):
    assert store.applied_migrations() == [1, 2, 3, 4, 5]
    assert store.migrate() == []
    tables = set(
        store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").column("name")
    )
    for t in (
        "samples",
        "samples_1m",
        "samples_1h",
        "fleet_1m",
        "fleet_1h",
        "anomaly_events",
        "forecasts",
        "decisions",
        "actions",
        "replica_spec",
        "replica_status",
        "schema_migrations",
    ):
        assert t in tables, t


def test_reopening_applies_a_changed_ttl(store):
    again = open_store(store.dsn, raw_ttl_days=3, rollup_ttl_days=30)
    try:
        engines = dict(
            again.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()").rows
        )
        assert "toIntervalDay(3)" in engines["samples"]
        assert "toIntervalDay(30)" in engines["fleet_1m"]
        assert again.applied_migrations() == [1, 2, 3, 4, 5]
    finally:
        again.close()
        open_store(store.dsn).close()  # back to the defaults


def test_replayed_batch_leaves_one_copy_and_feeds_rollups_once(store):
    batch = _batch("dedup-r")
    assert store.insert_samples(batch, "batch-1") == 8
    store.insert_samples(batch, "batch-1")  # the collector replays it after a timeout
    raw = store.query("SELECT count() FROM samples WHERE target = 'dedup-r'").rows[0][0]
    assert raw == 8
    for table in ("samples_1m", "samples_1h"):
        cnt, inc = store.query(
            f"SELECT sum(count), sum(increase) FROM {table} WHERE target = 'dedup-r'"
        ).rows[0]
        assert (cnt, inc) == (8, 30.0), table
    cnt, inc = store.query(
        "SELECT sum(count), sum(increase) FROM fleet_1m WHERE metric = 'nv_inference_count' AND model = 'm'"
    ).rows[0]
    assert cnt >= 4 and inc == pytest.approx(
        30.0
        * store.query(
            "SELECT uniqExact(target) FROM samples WHERE metric = 'nv_inference_count' AND model = 'm'"
        ).rows[0][0]
    )


def test_first_and_last_values_in_rollups(store):
    store.insert_samples(_batch("lastval-r"), "lastval-1")
    first, last, lo, hi = store.query(
        "SELECT min(first_value).2, max(last_value).2, min(min_value), max(max_value) "
        "FROM samples_1h WHERE target = 'lastval-r' AND metric = 'nv_inference_count'"
    ).rows[0]
    assert (first, last, lo, hi) == (10.0, 40.0, 10.0, 40.0)


def test_rollups_stay_exact_across_batches_and_merges(store):
    # Two batches in different minutes of one hour, the later one inserted first: readers that
    # aggregate get the same answer before and after the engine merges the projected rows.
    t0 = time.time() // 3600 * 3600 - 7200
    store.insert_samples(_batch("merge-r", t0=t0 + 120), "merge-2")
    store.insert_samples(_batch("merge-r", t0=t0), "merge-1")
    sql = (
        "SELECT sum(count), sum(increase), min(first_value).2, max(last_value).2, min(min_value), max(max_value) "
        "FROM {t} WHERE target = 'merge-r' AND metric = 'nv_inference_count'"
    )
    raw = store.query(
        "SELECT count(), sum(delta), argMin(value, ts), argMax(value, ts), min(value), max(value) "
        "FROM samples WHERE target = 'merge-r' AND metric = 'nv_inference_count'"
    ).rows[0]
    want = (8, raw[1], 10.0, 40.0, 10.0, 40.0)
    assert raw == want
    for t in ("samples_1m", "samples_1h"):
        assert store.query(sql.format(t=t)).rows[0] == want, t
        store.command(f"OPTIMIZE TABLE {t} FINAL")
        assert store.query(sql.format(t=t)).rows[0] == want, t
    assert store.query("SELECT count() FROM samples_1h WHERE target = 'merge-r'").rows[0][0] == 2


def test_columnar_numpy_batch(store):
    n = 1000
    t0 = time.time() - 120
    batch = SampleBatch(
        ts=t0 + np.arange(n) * 0.01,
        target=np.array(["np-r"] * n, dtype=object),
        zone=np.array(["z"] * n, dtype=object),
        region=np.array(["r"] * n, dtype=object),
        model=np.array(["m"] * n, dtype=object),
        metric=np.array(["x_total"] * n, dtype=object),
        labels=np.array([{"k": "v"}] * n, dtype=object),
        kind=np.array(["counter"] * n, dtype=object),
        value=np.arange(n, dtype=np.float64),
        series_id=np.full(n, 42, dtype=np.uint64),
    )
    assert store.insert_samples(batch, "np-1") == n
    cnt, inc, lbl = store.query(
        "SELECT count(), sum(delta), any(labels['k']) FROM samples WHERE target = 'np-r'"
    ).rows[0]
    assert (cnt, inc, lbl) == (n, n - 1.0, "v")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: setattr(b, "model", b.model[:-1]), "model has 7"),
        (lambda b: setattr(b, "value", ["x"] * len(b)), "column 'value'"),
        (lambda b: setattr(b, "series_id", [-1] * len(b)), "column 'series_id'"),
        (lambda b: setattr(b, "labels", [1] * len(b)), "column 'labels'"),
    ],
)
def test_bad_batches_are_rejected_with_the_column_named(store, mutate, needle):
    batch = _batch("bad-r")
    mutate(batch)
    with pytest.raises(StoreRejected, match=needle):
        store.insert_samples(batch, "bad-1")
    assert store.query("SELECT count() FROM samples WHERE target = 'bad-r'").rows[0][0] == 0


def test_a_token_is_required(store):
    with pytest.raises(StoreRejected, match="token"):
        store.insert_samples(_batch("tok-r"), "")


def test_bad_sql_is_rejected_not_unavailable(store):
    with pytest.raises(StoreRejected, match="query failed"):
        store.query("SELECT no_such_column FROM samples")


def test_query_result_shapes(store):
    res = store.query("SELECT 1 AS a, 'x' AS b")
    assert res.column_names == ("a", "b") and res.to_dicts() == [{"a": 1, "b": "x"}]


def test_control_plane_row_insert(store):
    store.insert_rows(
        "decisions",
        [
            {
                "ts": time.time(),
                "decision_id": "d1",
                "policy": "p",
                "mode": "observe",
                "model": "m",
                "replica": "r",
                "action": "none",
                "params": "{}",
                "reason_codes": ["LATENCY_P99_HIGH"],
                "inputs": "{}",
                "confidence_ratio": 0.5,
            }
        ],
    )
    assert store.query("SELECT reason_codes FROM decisions WHERE decision_id = 'd1'").rows == [
        (["LATENCY_P99_HIGH"],)
    ]


@pytest.mark.parametrize(
    ("dsn", "error", "needle"),
    [
        ("postgres://x", StoreRejected, "unsupported store DSN"),
        ("chdb://relative/path", StoreRejected, "absolute path"),
        ("http://127.0.0.1:9/db", StoreUnavailable, "127.0.0.1"),
    ],
)
def test_bad_dsns(store, dsn, error, needle):
    with pytest.raises(error, match=needle):
        open_store(dsn, connect_timeout_s=2)


def test_another_path_in_the_same_process_is_a_clear_error(store, tmp_path):
    with pytest.raises(StoreUnavailable, match="another embedded store open"):
        open_store(f"chdb:///{tmp_path / 'other'}")
