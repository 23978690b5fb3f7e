"""The controller lease (one active controller per data dir) and the recorder's outage buffer."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from controlplane.actuators.result import ActuationStatus, result
from controlplane.loop.lease import Lease
from controlplane.loop.recorder import Recorder, action_row
from tests.unit.loop_fakes import ListStore


def test_a_second_controller_stays_passive_until_the_first_one_is_gone(tmp_path):
    path = tmp_path / "controller.lease"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from controlplane.loop.lease import Lease
            lease = Lease({str(path)!r})
            assert lease.try_acquire()
            print("held", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        second = Lease(path)
        assert not second.try_acquire()  # passive
        assert second.holder()["pid"] == holder.pid
        holder.kill()  # the holder dies without releasing: the OS drops its lock
        holder.wait()
        assert second.try_acquire()
        second.release()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_recorder_keeps_rows_through_an_outage_and_bounds_the_buffer():
    store = ListStore()
    rec = Recorder(store, max_buffered_rows=5)
    row = action_row(0.0, decision_id="d", actuator="replicas", action="add", mode="active", model="m",
                     replica="r", params={}, res=result(ActuationStatus.FAILED, "no capacity"))  # fmt: skip
    assert row["outcome"] == "failed" and row["error"] == "no capacity"
    store.down = True
    rec.add("actions", [dict(row, action_id=str(i)) for i in range(3)])
    assert rec.flush() == 0 and rec.pending() == 3 and rec.last_error
    rec.add("actions", [dict(row, action_id=str(i)) for i in range(3, 8)])  # over the bound
    assert rec.pending() == 5 and rec.dropped_rows == 3  # the oldest went, counted
    store.down = False
    assert rec.flush() == 5
    assert [r["action_id"] for r in store.rows["actions"]] == ["3", "4", "5", "6", "7"]


def test_recorder_bound_holds_across_tables_and_logs_each_drop(caplog):
    store = ListStore()
    store.down = True
    rec = Recorder(store, max_buffered_rows=4)
    rec.add("decisions", [{"i": i} for i in range(4)])  # at the bound: nothing dropped, no log
    assert rec.dropped_rows == 0 and not caplog.records
    # A burst on another table: the fullest table loses its oldest rows first, so the total
    # stays bounded and neither table's record is wiped out by the other's.
    rec.add("actions", [{"i": i} for i in range(6)])
    assert rec.pending() == 4 and rec.dropped_rows == 6
    assert any("dropped 6 buffered rows" in r.getMessage() for r in caplog.records)
    store.down = False
    assert rec.flush() == 4
    assert [r["i"] for r in store.rows["actions"]] == [4, 5]
    assert [r["i"] for r in store.rows["decisions"]] == [2, 3]
