"""Fleet adapters (instance count, replica processes) over a stub FleetManager, and their fakes.

No tritonserver here: the stub has FleetManager's methods and raises FleetError the way
serving.fleet does (same message shapes).
"""

from __future__ import annotations

import pytest

from controlplane.actuators.replicas import FakeReplicaProcesses, FleetReplicaProcesses
from controlplane.actuators.result import ActuationStatus
from controlplane.actuators.triton import FakeTritonInstances, FleetTritonInstances
from serving.fleet import FleetError, FleetRequestError, FleetUnavailable
from serving.fleet_state import FleetState, FleetStateError, ReplicaRecord

S = ActuationStatus


def _rec(name: str, zone: str = "zone-a", counts: dict | None = None) -> ReplicaRecord:
    return ReplicaRecord(
        name=name, zone=zone, region="local", slot=int(name.split("-")[1]), host="127.0.0.1",
        http_port=1, grpc_port=2, metrics_port=3, pid=None, models=["classifier-small", "chat-lm"],
        workdir="/tmp", instance_counts=dict(counts or {"classifier-small": 1, "chat-lm": 1}),
    )  # fmt: skip


class StubFleet:
    """FleetManager's surface; `raise_on[method]` makes that method raise."""

    def __init__(self, *records: ReplicaRecord) -> None:
        self.records = list(records)
        self.calls: list[tuple] = []
        self.raise_on: dict[str, Exception] = {}

    def _maybe_raise(self, method: str) -> None:
        if method in self.raise_on:
            raise self.raise_on[method]

    def state(self) -> FleetState:
        self._maybe_raise("state")
        return FleetState(replicas=list(self.records))

    def set_instance_count(self, name, model, count):
        self.calls.append(("set_instance_count", name, model, count))
        self._maybe_raise("set_instance_count")
        rec = next(r for r in self.records if r.name == name)
        rec.instance_counts[model] = count
        return rec

    def add(self, zone=None):
        self.calls.append(("add", zone))
        self._maybe_raise("add")
        rec = _rec(f"replica-{len(self.records)}", zone or "zone-a")
        self.records.append(rec)
        return rec

    def remove(self, name):
        self.calls.append(("remove", name))
        self._maybe_raise("remove")
        rec = next(r for r in self.records if r.name == name)
        self.records.remove(rec)
        return rec

    def replace(self, name):
        self.calls.append(("replace", name))
        self._maybe_raise("replace")
        old = next(r for r in self.records if r.name == name)
        new = _rec(f"replica-{len(self.records) + 5}", old.zone)
        self.records[self.records.index(old)] = new
        return new


UNREACHABLE = FleetUnavailable("replica replica-0 at http://127.0.0.1:1 is unreachable: refused")
LOAD_FAILED = FleetError("replica replica-0: loading chat-lm with 3 instance(s) failed: bad config")


@pytest.mark.parametrize(
    ("replica", "model", "count", "raise_on", "status", "called", "in_message"),
    [
        ("replica-0", "chat-lm", 3, {}, S.OK, True, "1 -> 3"),
        ("replica-0", "chat-lm", 1, {}, S.NOOP, False, "already"),
        ("replica-0", "chat-lm", 0, {}, S.REJECTED, False, "allowed range [1, 64]"),
        ("replica-0", "chat-lm", 65, {}, S.REJECTED, False, "allowed range"),
        ("replica-9", "chat-lm", 2, {}, S.REJECTED, False, "the fleet has: replica-0"),
        ("replica-0", "classifier-large", 2, {}, S.REJECTED, False, "does not serve"),
        ("replica-0", "chat-lm", 3, {"set_instance_count": UNREACHABLE}, S.UNAVAILABLE, True, "unreachable"),
        ("replica-0", "chat-lm", 3, {"set_instance_count": LOAD_FAILED}, S.REJECTED, True, "bad config"),
        (
            "replica-0",
            "chat-lm",
            3,
            {"state": FleetStateError("unreadable")},
            S.UNAVAILABLE,
            False,
            "unreadable",
        ),
        (
            "replica-0",
            "chat-lm",
            3,
            {"set_instance_count": RuntimeError("bug")},
            S.FAILED,
            True,
            "RuntimeError",
        ),
    ],
)
def test_fleet_instances_mapping(replica, model, count, raise_on, status, called, in_message):
    fleet = StubFleet(_rec("replica-0"))
    fleet.raise_on = raise_on
    res = FleetTritonInstances(fleet).set_instance_count(replica, model, count)
    assert res.status is status, res
    assert in_message in res.message
    assert bool(fleet.calls) is called
    assert res.duration_s >= 0.0


def test_fleet_instances_ok_details():
    fleet = StubFleet(_rec("replica-0"))
    res = FleetTritonInstances(fleet).set_instance_count("replica-0", "chat-lm", 4)
    assert res.details == {"replica": "replica-0", "model": "chat-lm", "count": 4, "previous": 1}
    assert fleet.calls == [("set_instance_count", "replica-0", "chat-lm", 4)]


def test_fleet_replicas_add():
    fleet = StubFleet(_rec("replica-0"))
    procs = FleetReplicaProcesses(fleet, zones=["zone-a", "zone-b"])
    res = procs.add("zone-b")
    assert (res.status, res.details) == (S.OK, {"replica": "replica-1", "zone": "zone-b"})
    res = procs.add("zone-z")
    assert res.status is S.REJECTED and "configured zones" in res.message
    assert fleet.calls == [("add", "zone-b")]  # the bad zone never reached the fleet
    fleet.raise_on["add"] = FleetError("replica replica-2 exited with code 1 during start-up; log ...")
    assert procs.add().status is S.FAILED
    fleet.raise_on["add"] = FleetRequestError("unknown zone 'q'; configured zones: zone-a")
    assert FleetReplicaProcesses(fleet).add("q").status is S.REJECTED  # no zones given: the fleet says


def test_fleet_replicas_remove_and_replace():
    fleet = StubFleet(_rec("replica-0"), _rec("replica-1", "zone-b"))
    procs = FleetReplicaProcesses(fleet)
    res = procs.remove("replica-1")
    assert (res.status, res.details) == (S.OK, {"replica": "replica-1", "zone": "zone-b"})
    assert procs.remove("replica-1").status is S.NOOP  # already gone: nothing to do
    res = procs.replace("replica-0")
    assert res.status is S.OK and res.details["replaced"] == "replica-0" and res.details["zone"] == "zone-a"
    assert procs.replace("replica-7").status is S.REJECTED
    fleet.raise_on["replace"] = FleetError("replica replica-9 not ready after 180 s")
    assert procs.replace(fleet.records[0].name).status is S.FAILED
    fleet.raise_on = {"state": FleetStateError("fleet state file is unreadable")}
    assert procs.remove("replica-0").status is S.UNAVAILABLE
    assert procs.replace("replica-0").status is S.UNAVAILABLE


def test_fake_triton_instances():
    fake = FakeTritonInstances({("r0", "m"): 1}, known=True)
    assert fake.set_instance_count("r0", "m", 2).status is S.OK
    assert fake.set_instance_count("r0", "m", 2).status is S.NOOP
    assert fake.set_instance_count("r1", "m", 2).status is S.REJECTED
    assert fake.set_instance_count("r0", "m", 0).status is S.REJECTED
    fake.fail_next(S.UNAVAILABLE)
    assert fake.set_instance_count("r0", "m", 5).status is S.UNAVAILABLE
    assert fake.counts == {("r0", "m"): 2}  # the injected failure changed nothing
    assert len(fake.calls) == 5
    assert FakeTritonInstances().set_instance_count("any", "m", 3).status is S.OK  # open mode


def test_fake_replica_processes():
    fake = FakeReplicaProcesses({"replica-0": "zone-a"}, zones=["zone-a", "zone-b"])
    res = fake.add("zone-b")
    assert res.details == {"replica": "replica-1", "zone": "zone-b"}
    assert fake.add("zone-q").status is S.REJECTED
    res = fake.replace("replica-0")
    assert res.status is S.OK and res.details["replica"] == "replica-2"
    assert fake.replicas == {"replica-1": "zone-b", "replica-2": "zone-a"}
    assert fake.remove("replica-1").status is S.OK
    assert fake.remove("replica-1").status is S.NOOP
    assert fake.replace("replica-1").status is S.REJECTED
    fake.fail_always(S.FAILED, "no capacity")
    assert fake.add().message == "no capacity"
    assert fake.replicas == {"replica-2": "zone-a"}
    assert fake.operations() == ["add", "add", "replace", "remove", "remove", "replace", "add"]
