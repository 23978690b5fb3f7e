"""Sink: columnar batches by size/age, spool on outage, in-order replay without duplicates, full spool."""

import logging

import numpy as np
import pyarrow as pa
import pytest

from collectors.columns import Chunk, chunks_to_batch, column_as_list
from collectors.exposition import ExpositionParser
from collectors.sink import Sink, Spool, read_spool_file, write_spool_file
from collectors.telemetry import CollectorMetrics
from tests.unit.collect_fakes import FakeStore


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def chunk(parser: ExpositionParser, ts: float, n: int = 3) -> Chunk:
    r = parser.parse("".join(f'm{{model="x",i="{i}"}} {ts + i}\n' for i in range(n)))
    return Chunk(ts, parser.target, "zone-a", "local", r.table, r.idx, r.values)


def make_sink(tmp_path, store, **kw):
    kw.setdefault("batch_max_rows", 1000)
    return Sink(
        store, tmp_path / "spool", metrics=CollectorMetrics(), clock=kw.pop("clock", FakeClock()), **kw
    )


def test_batch_columns_are_arrays_not_rows():
    p = ExpositionParser("replica-0")
    b = chunks_to_batch([chunk(p, 100.0), chunk(p, 101.0)])
    assert len(b) == 6
    assert isinstance(b.value, np.ndarray) and b.value.dtype == np.float64
    assert isinstance(b.series_id, np.ndarray) and b.series_id.dtype == np.uint64
    assert isinstance(b.metric, pa.DictionaryArray) and isinstance(b.labels, pa.MapArray)
    assert b.ts.tolist() == [100.0] * 3 + [101.0] * 3
    assert column_as_list(b.target) == ["replica-0"] * 6 and column_as_list(b.model) == ["x"] * 6
    assert column_as_list(b.labels)[1] == {"i": "1"} and column_as_list(b.kind) == ["untyped"] * 6
    assert b.series_id[0] == b.series_id[3] != b.series_id[1]


def test_flush_by_size_and_by_age(tmp_path):
    store, clock = FakeStore(), FakeClock()
    sink = make_sink(tmp_path, store, batch_max_rows=5, batch_max_age_s=10, clock=clock)
    p = ExpositionParser("r")
    assert sink.add(chunk(p, 1.0)) is None  # 3 rows < 5
    res = sink.add(chunk(p, 2.0))  # 6 rows >= 5: flushed
    assert res.written_rows == 6 and len(store.rows) == 6
    sink.add(chunk(p, 3.0))
    clock.t = 9.9
    assert sink.flush_if_due() is None
    clock.t = 10.0
    assert sink.flush_if_due().written_rows == 3


def test_outage_spools_then_replays_in_order_exactly_once(tmp_path):
    store = FakeStore()
    sink = make_sink(tmp_path, store)
    p = ExpositionParser("r")
    store.down = True
    for ts in (1.0, 2.0, 3.0):
        sink.add(chunk(p, ts))
        res = sink.flush()
        assert res.spooled_rows == 3 and res.written_rows == 0
    assert len(sink.spool) == 3 and sink.metrics.spool_bytes._value.get() > 0
    store.down = False
    sink.add(chunk(p, 4.0))
    res = sink.flush()
    assert res.replayed_batches == 3 and res.written_rows == 12
    assert [r[3] for r in store.rows] == [1.0] * 3 + [2.0] * 3 + [3.0] * 3 + [4.0] * 3  # order kept
    assert len(sink.spool) == 0 and sink.spool.bytes == 0


def test_replay_after_a_commit_whose_ack_was_lost_writes_nothing_twice(tmp_path):
    """The store committed a batch but the client saw a failure: the replay reuses the token."""
    store = FakeStore()
    sink = make_sink(tmp_path, store)
    p = ExpositionParser("r")
    batch = chunks_to_batch([chunk(p, 1.0)])
    store.insert_samples(batch, "tok-1")  # committed ...
    sink.spool.push(batch, "tok-1")  # ... yet spooled, as after a timeout
    sink.replay()
    assert len(store.rows) == 3 and len(sink.spool) == 0


def test_spool_survives_restart_and_keeps_tokens(tmp_path):
    store = FakeStore()
    store.down = True
    p = ExpositionParser("r")
    sink = make_sink(tmp_path, store)
    sink.add(chunk(p, 1.0))
    sink.flush()
    sink.add(chunk(p, 2.0))
    sink.flush()
    tokens = [Spool.token_of(f) for f in sink.spool.files()]
    # a new process: a fresh Sink over the same folder
    store.down = False
    sink2 = make_sink(tmp_path, store)
    assert len(sink2.spool) == 2
    sink2.add(chunk(ExpositionParser("r"), 3.0))
    sink2.flush()
    assert store.tokens[:2] == tokens and [r[3] for r in store.rows] == [1.0] * 3 + [2.0] * 3 + [3.0] * 3
    # the sequence continues after the old files
    store.down = True
    sink2.add(chunk(ExpositionParser("r"), 4.0))
    sink2.flush()
    assert sink2.spool.files()[0].name.startswith("000000000002-")


def test_full_spool_drops_newest_batch_logs_and_counts(tmp_path, caplog):
    store = FakeStore()
    store.down = True
    sink = make_sink(tmp_path, store, spool_max_bytes=1 << 16)
    p = ExpositionParser("r")
    kept = 0
    with caplog.at_level(logging.ERROR):
        for i in range(200):
            sink.add(chunk(p, float(i), n=50))
            res = sink.flush()
            kept += res.spooled_rows
            if res.dropped_rows:
                break
    assert res.dropped_rows == 50, "spool never filled"
    assert sink.metrics.spool_full._value.get() == 1
    assert "spool" in caplog.text and "full" in caplog.text
    assert sink.spool.bytes <= 1 << 16
    store.down = False
    sink.flush()
    assert len(store.rows) == kept  # everything that was spooled arrives, once


def test_rejected_batch_is_spooled_then_dead_lettered_not_blocking(tmp_path):
    store = FakeStore()
    sink = make_sink(tmp_path, store)
    p = ExpositionParser("r")
    store.reject = True
    sink.add(chunk(p, 1.0))
    assert sink.flush().spooled_rows == 3
    sink.add(chunk(p, 2.0))
    res = sink.flush()  # rejected again on replay -> set aside; the new batch is spooled behind it
    assert res.dropped_rows == 3 and len(list(sink.spool.dead_dir.iterdir())) == 1
    store.reject = False
    sink.flush()
    assert [r[3] for r in store.rows] == [2.0] * 3


def test_spool_file_round_trip(tmp_path):
    p = ExpositionParser("r")
    b = chunks_to_batch([chunk(p, 5.0)])
    write_spool_file(tmp_path / "x.arrow", b)
    back = read_spool_file(tmp_path / "x.arrow")
    for name in ("ts", "value", "series_id"):
        assert np.array_equal(getattr(back, name), getattr(b, name))
    for name in ("labels", "metric", "target", "kind", "model"):
        assert column_as_list(getattr(back, name)) == column_as_list(getattr(b, name))


@pytest.mark.parametrize("rows", [0])
def test_empty_flush_does_nothing(tmp_path, rows):
    store = FakeStore()
    assert make_sink(tmp_path, store).flush().rows == rows and store.calls == 0


def test_full_disk_while_spooling_drops_the_batch_with_a_clear_error_and_keeps_running(
    tmp_path, caplog, monkeypatch
):
    store = FakeStore()
    store.down = True
    sink = make_sink(tmp_path, store)
    p = ExpositionParser("r")
    sink.add(chunk(p, 1.0, n=5))
    assert sink.flush().spooled_rows == 5  # the disk still had room

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "push", disk_full)
    with caplog.at_level(logging.ERROR):
        sink.add(chunk(p, 2.0, n=5))
        res = sink.flush()
    assert res.dropped_rows == 5 and res.spooled_rows == 0
    assert "No space left on device" in caplog.text and "spool_write_error" in caplog.text
    assert sink.metrics.samples_dropped.labels("spool_write_error")._value.get() == 5
    monkeypatch.undo()
    store.down = False
    sink.add(chunk(p, 3.0, n=5))
    sink.flush()
    assert len(store.rows) == 10  # what was spooled before the disk filled, then the new batch
