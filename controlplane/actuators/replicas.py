"""Port: local replica processes (add in a zone, remove, replace) through serving.fleet.

These block until the replica is ready or stopped (FleetManager waits up to its
ready_timeout_s), so the loop calls them from its own thread, never from an event loop.
"""

from __future__ import annotations

from typing import Protocol

from controlplane.actuators.result import ActuationResult, ActuationStatus, FakeBehaviour, result, timed
from controlplane.actuators.triton import FleetLike
from serving.fleet import FleetError, FleetRequestError
from serving.fleet_state import FleetStateError


class ReplicaProcesses(Protocol):
    def add(self, zone: str | None = None) -> ActuationResult: ...
    def remove(self, name: str) -> ActuationResult: ...
    def replace(self, name: str) -> ActuationResult: ...


class FleetReplicaProcesses:
    """ReplicaProcesses over serving.fleet.FleetManager.

    add: an unknown zone is REJECTED (checked against `zones` when given); a replica that does
    not come up is FAILED. remove of an absent replica is a NOOP (already in the wanted state).
    replace of an absent replica is REJECTED. An unreadable state file is UNAVAILABLE.
    Details carry `replica` (the new one for add/replace) and `zone`.
    """

    def __init__(self, manager: FleetLike, zones: list[str] | None = None) -> None:
        self.manager = manager
        self.zones = list(zones) if zones is not None else None

    def add(self, zone: str | None = None) -> ActuationResult:
        return timed("add", lambda: self._add(zone))

    def remove(self, name: str) -> ActuationResult:
        return timed("remove", lambda: self._remove(name))

    def replace(self, name: str) -> ActuationResult:
        return timed("replace", lambda: self._replace(name))

    def _names(self) -> list[str]:
        return sorted(r.name for r in self.manager.state().replicas)

    def _add(self, zone: str | None) -> ActuationResult:
        if zone is not None and self.zones is not None and zone not in self.zones:
            return result(
                ActuationStatus.REJECTED, f"unknown zone {zone!r}; configured zones: {self.zones}", zone=zone
            )
        try:
            rec = self.manager.add(zone)
        except FleetError as exc:
            status = (
                ActuationStatus.REJECTED if isinstance(exc, FleetRequestError) else ActuationStatus.FAILED
            )
            return result(status, str(exc), zone=zone)
        except FleetStateError as exc:
            return result(ActuationStatus.UNAVAILABLE, str(exc), zone=zone)
        return result(ActuationStatus.OK, f"added {rec.name} in {rec.zone}", replica=rec.name, zone=rec.zone)

    def _remove(self, name: str) -> ActuationResult:
        try:
            if name not in self._names():
                return result(
                    ActuationStatus.NOOP, f"no replica named {name!r}: already absent", replica=name
                )
            rec = self.manager.remove(name)
        except FleetStateError as exc:
            return result(ActuationStatus.UNAVAILABLE, str(exc), replica=name)
        except FleetError as exc:
            return result(ActuationStatus.FAILED, str(exc), replica=name)
        return result(ActuationStatus.OK, f"removed {rec.name}", replica=rec.name, zone=rec.zone)

    def _replace(self, name: str) -> ActuationResult:
        try:
            names = self._names()
            if name not in names:
                return result(
                    ActuationStatus.REJECTED,
                    f"no replica named {name!r}; the fleet has: {', '.join(names) or '(none)'}",
                    replaced=name,
                )
            rec = self.manager.replace(name)
        except FleetStateError as exc:
            return result(ActuationStatus.UNAVAILABLE, str(exc), replaced=name)
        except FleetError as exc:
            return result(ActuationStatus.FAILED, str(exc), replaced=name)
        return result(
            ActuationStatus.OK,
            f"replaced {name} with {rec.name}",
            replica=rec.name,
            replaced=name,
            zone=rec.zone,
        )


class FakeReplicaProcesses(FakeBehaviour):
    """In-memory ReplicaProcesses: `replicas` maps name -> zone; new names are replica-<n>."""

    def __init__(self, replicas: dict[str, str] | None = None, zones: list[str] | None = None) -> None:
        super().__init__()
        self.replicas: dict[str, str] = dict(replicas or {})
        self.zones = list(zones) if zones is not None else None
        self._next = len(self.replicas)

    def _new_name(self) -> str:
        while f"replica-{self._next}" in self.replicas:
            self._next += 1
        return f"replica-{self._next}"

    def add(self, zone: str | None = None) -> ActuationResult:
        injected = self._call("add", zone=zone)
        if injected:
            return injected
        if zone is not None and self.zones is not None and zone not in self.zones:
            return result(ActuationStatus.REJECTED, f"unknown zone {zone!r}", zone=zone)
        name = self._new_name()
        self.replicas[name] = zone or (self.zones[0] if self.zones else "zone-a")
        return result(ActuationStatus.OK, f"added {name}", replica=name, zone=self.replicas[name])

    def remove(self, name: str) -> ActuationResult:
        injected = self._call("remove", name=name)
        if injected:
            return injected
        if name not in self.replicas:
            return result(ActuationStatus.NOOP, f"{name} already absent", replica=name)
        zone = self.replicas.pop(name)
        return result(ActuationStatus.OK, f"removed {name}", replica=name, zone=zone)

    def replace(self, name: str) -> ActuationResult:
        injected = self._call("replace", name=name)
        if injected:
            return injected
        if name not in self.replicas:
            return result(ActuationStatus.REJECTED, f"no replica named {name!r}", replaced=name)
        new = self._new_name()
        zone = self.replicas.pop(name)
        self.replicas[new] = zone
        return result(
            ActuationStatus.OK, f"replaced {name} with {new}", replica=new, replaced=name, zone=zone
        )
