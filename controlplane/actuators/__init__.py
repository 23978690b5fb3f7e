"""Actuators: narrow ports the control loop acts through; each returns an ActuationResult.

One module per port, each with its real adapter and an in-memory fake next to it:
triton (instance count), replicas (local replica processes), router (weights, thresholds),
k8s (Deployment scale, HTTPRoute weights; imports the `kubernetes` client, so import it
explicitly: it is not re-exported here).
"""

from controlplane.actuators.replicas import FakeReplicaProcesses, FleetReplicaProcesses, ReplicaProcesses
from controlplane.actuators.result import ActuationResult, ActuationStatus
from controlplane.actuators.router import FakeRouterControl, HttpRouterControl, RouterControl
from controlplane.actuators.triton import FakeTritonInstances, FleetTritonInstances, TritonInstances

__all__ = [
    "ActuationResult",
    "ActuationStatus",
    "FakeReplicaProcesses",
    "FakeRouterControl",
    "FakeTritonInstances",
    "FleetReplicaProcesses",
    "FleetTritonInstances",
    "HttpRouterControl",
    "ReplicaProcesses",
    "RouterControl",
    "TritonInstances",
]
