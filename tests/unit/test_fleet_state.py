"""Fleet bookkeeping without Triton: state file round trip, zone choice, port slots, liveness, faults."""

import os
import socket
import subprocess
import sys

import pytest

from serving.faults import Faults, FaultWatcher, read_faults, write_faults
from serving.fleet import FleetError, FleetManager, FleetOptions, pick_zone
from serving.fleet_state import FleetState, FleetStateError, ReplicaRecord, read_state, write_state
from serving.procs import pid_alive


def _rec(name, zone, slot=0, pid=None):
    return ReplicaRecord(
        name=name,
        zone=zone,
        region="r",
        slot=slot,
        host="127.0.0.1",
        http_port=9000 + 3 * slot,
        grpc_port=9001 + 3 * slot,
        metrics_port=9002 + 3 * slot,
        pid=pid,
        models=["m"],
        workdir="/tmp/x",
    )


def test_state_round_trip_and_urls(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, FleetState([_rec("replica-0", "zone-a"), _rec("replica-1", "zone-b", slot=1)]))
    state = read_state(path)
    assert [r.name for r in state.replicas] == ["replica-0", "replica-1"]
    r1 = state.by_name("replica-1")
    assert r1.http_url == "http://127.0.0.1:9003" and r1.metrics_url == "http://127.0.0.1:9005/metrics"
    assert r1.to_json()["grpc_url"] == "127.0.0.1:9004"


def test_missing_state_is_empty_and_corrupt_state_is_a_clear_error(tmp_path):
    assert read_state(tmp_path / "none.json").replicas == []
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FleetStateError, match="bad.json"):
        read_state(bad)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], "zone-a"),
        (["zone-a"], "zone-b"),
        (["zone-a", "zone-b"], "zone-a"),
        (["zone-b", "zone-b"], "zone-a"),
        (["elsewhere"], "zone-a"),
    ],
)
def test_new_replica_goes_to_emptiest_zone(existing, expected):
    recs = [_rec(f"r{i}", z, slot=i) for i, z in enumerate(existing)]
    assert pick_zone(("zone-a", "zone-b"), recs) == expected


def test_pid_alive_treats_exited_and_zombie_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = 50
    while deadline and proc.poll() is None and pid_alive(proc.pid):
        import time

        time.sleep(0.1)
        deadline -= 1
    assert not pid_alive(proc.pid)  # exited (zombie until reaped, or reaped)
    assert pid_alive(os.getpid())
    assert not pid_alive(None)


def test_free_slot_skips_ports_in_use(tmp_path):
    mgr = FleetManager(FleetOptions(fleet_dir=tmp_path, state_path=tmp_path / "s.json", base_port=18900))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 18900))  # slot 0's http port is taken by someone else
        s.listen()
        assert mgr._free_slot(FleetState()) == 1
    assert mgr._free_slot(FleetState([_rec("replica-0", "zone-a", slot=0)])) == 1


def test_operations_on_unknown_replica_name_the_fleet(tmp_path):
    path = tmp_path / "s.json"
    write_state(path, FleetState([_rec("replica-0", "zone-a")]))
    mgr = FleetManager(FleetOptions(fleet_dir=tmp_path, state_path=path))
    with pytest.raises(FleetError, match=r"no replica named 'replica-9'; the fleet has: replica-0"):
        mgr.remove("replica-9")
    with pytest.raises(FleetError, match="instance count"):
        mgr.set_instance_count("replica-0", "m", 0)
    with pytest.raises(FleetError, match="unknown zone 'zone-q'"):
        mgr.add(zone="zone-q")


def test_faults_file_validation_and_watcher(tmp_path):
    path = tmp_path / "faults.json"
    watcher = FaultWatcher(path)
    assert watcher.poll() == Faults()
    write_faults(path, Faults(added_latency_ms=25, error_rate_ratio=0.5))
    assert watcher.poll().added_latency_ms == 25
    with pytest.raises(ValueError, match="error_rate_ratio"):
        write_faults(path, Faults(error_rate_ratio=1.5))
    assert read_faults(path).error_rate_ratio == 0.5  # the bad write changed nothing
    os.utime(path, ns=(1, 1))
    path.write_text("{half written")
    assert watcher.poll().added_latency_ms == 25  # a torn file keeps the last good faults
    path.unlink()
    assert watcher.poll() == Faults()
