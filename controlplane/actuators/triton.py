"""Port: a model's instance count on one Triton replica.

The real adapter goes through serving.fleet.FleetManager.set_instance_count, which reloads the
model with Triton's model load API and a config override (`POST /v2/repository/models/<m>/load`
with `{"parameters": {"config": "<json>"}}`): no restart, the replica keeps serving.
"""

from __future__ import annotations

from typing import Protocol

from controlplane.actuators.result import ActuationResult, ActuationStatus, FakeBehaviour, result, timed
from serving.fleet import FleetError, FleetUnavailable
from serving.fleet_state import FleetState, FleetStateError, ReplicaRecord

MIN_INSTANCES = 1
MAX_INSTANCES = 64  # FleetManager's own bound


class TritonInstances(Protocol):
    def set_instance_count(self, replica: str, model: str, count: int) -> ActuationResult: ...


class FleetLike(Protocol):
    """What the fleet adapters need of serving.fleet.FleetManager."""

    def state(self) -> FleetState: ...
    def set_instance_count(self, name: str, model: str, count: int) -> ReplicaRecord: ...
    def add(self, zone: str | None = None) -> ReplicaRecord: ...
    def remove(self, name: str) -> ReplicaRecord: ...
    def replace(self, name: str) -> ReplicaRecord: ...


def _out_of_range(count: int) -> ActuationResult | None:
    if isinstance(count, bool) or not isinstance(count, int) or not MIN_INSTANCES <= count <= MAX_INSTANCES:
        return result(
            ActuationStatus.REJECTED,
            f"instance count = {count!r} is invalid: allowed range [{MIN_INSTANCES}, {MAX_INSTANCES}]",
            count=count,
        )
    return None


def fleet_error_status(exc: FleetError) -> ActuationStatus:
    """An unreachable replica is the one case worth retrying; a wrong request or a failed load is not."""
    return ActuationStatus.UNAVAILABLE if isinstance(exc, FleetUnavailable) else ActuationStatus.REJECTED


class FleetTritonInstances:
    """TritonInstances over a local fleet (serving.fleet.FleetManager)."""

    def __init__(self, manager: FleetLike) -> None:
        self.manager = manager

    def set_instance_count(self, replica: str, model: str, count: int) -> ActuationResult:
        return timed("set_instance_count", lambda: self._set(replica, model, count))

    def _set(self, replica: str, model: str, count: int) -> ActuationResult:
        ctx = {"replica": replica, "model": model, "count": count}
        bad = _out_of_range(count)
        if bad:
            return result(bad.status, bad.message, **ctx)
        try:
            state = self.manager.state()
        except FleetStateError as exc:
            return result(ActuationStatus.UNAVAILABLE, str(exc), **ctx)
        rec = state.by_name(replica)
        if rec is None:
            names = sorted(r.name for r in state.replicas) or ["(none)"]
            return result(
                ActuationStatus.REJECTED,
                f"no replica named {replica!r}; the fleet has: {', '.join(names)}",
                **ctx,
            )
        if model not in rec.models:
            return result(
                ActuationStatus.REJECTED,
                f"replica {replica} does not serve {model!r}; it serves {rec.models}",
                **ctx,
            )
        previous = rec.instance_counts.get(model)
        if previous == count:
            return result(ActuationStatus.NOOP, f"{replica}/{model} already has {count} instance(s)", **ctx)
        try:
            self.manager.set_instance_count(replica, model, count)
        except FleetError as exc:
            return result(fleet_error_status(exc), str(exc), **ctx, previous=previous)
        return result(
            ActuationStatus.OK,
            f"{replica}/{model}: {previous} -> {count} instance(s)",
            **ctx,
            previous=previous,
        )


class FakeTritonInstances(FakeBehaviour):
    """In-memory TritonInstances: `counts[(replica, model)]`; unknown pairs are rejected when
    `known` is given, otherwise any pair is accepted (starting from `default_count`)."""

    def __init__(
        self, counts: dict[tuple[str, str], int] | None = None, known: bool = False, default_count: int = 1
    ) -> None:
        super().__init__()
        self.counts: dict[tuple[str, str], int] = dict(counts or {})
        self.known = known
        self.default_count = default_count

    def set_instance_count(self, replica: str, model: str, count: int) -> ActuationResult:
        injected = self._call("set_instance_count", replica=replica, model=model, count=count)
        if injected:
            return injected
        bad = _out_of_range(count)
        if bad:
            return bad
        key = (replica, model)
        if self.known and key not in self.counts:
            return result(ActuationStatus.REJECTED, f"unknown replica/model {replica}/{model}")
        previous = self.counts.get(key, self.default_count)
        if previous == count:
            return result(ActuationStatus.NOOP, f"{replica}/{model} already has {count} instance(s)")
        self.counts[key] = count
        return result(ActuationStatus.OK, f"{replica}/{model}: {previous} -> {count}", previous=previous)
