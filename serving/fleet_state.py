"""The fleet state file: which local Triton replicas exist, where they listen, and their zone.

Written by `fleetpilot fleet ...` (serving.fleet), read by the router, the collectors and the
control plane, each in its own process. Writes are atomic (temp file + rename) under a file
lock so that readers never see half a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

STATE_VERSION = 1


@dataclass
class ReplicaRecord:
    name: str  # e.g. "replica-0"; unique within the fleet
    zone: str
    region: str
    slot: int  # port slot: ports are base + 3*slot (+0 http, +1 grpc, +2 metrics)
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    pid: int | None
    models: list[str]
    workdir: str  # per-replica folder: log, faults.json, rendered model repository
    started_at_s: float = field(default_factory=time.time)
    device: str = "cpu"  # "cpu" or "gpu": where this replica's model instances run
    instance_counts: dict[str, int] = field(default_factory=dict)  # model -> instances now loaded
    cache_off: bool = False  # response cache disabled by fault injection

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def faults_path(self) -> Path:
        return Path(self.workdir) / "faults.json"

    @property
    def log_path(self) -> Path:
        return Path(self.workdir) / "tritonserver.log"

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(http_url=self.http_url, grpc_url=self.grpc_url, metrics_url=self.metrics_url)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ReplicaRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class FleetState:
    replicas: list[ReplicaRecord] = field(default_factory=list)
    updated_at_s: float = 0.0

    def by_name(self, name: str) -> ReplicaRecord | None:
        return next((r for r in self.replicas if r.name == name), None)


class FleetStateError(RuntimeError):
    """The state file exists but cannot be read."""


def lock_for(path: Path) -> FileLock:
    """Lock held by writers for the whole read-modify-write of the state file."""
    return FileLock(str(path) + ".lock", timeout=60)


def read_state(path: Path) -> FleetState:
    """Read the state file; a missing file is an empty fleet."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return FleetState()
    except (OSError, ValueError) as exc:
        raise FleetStateError(f"fleet state file {path} is unreadable: {exc}") from exc
    if raw.get("version") != STATE_VERSION:
        raise FleetStateError(
            f"fleet state file {path} has version {raw.get('version')}, expected {STATE_VERSION}"
        )
    return FleetState(
        replicas=[ReplicaRecord.from_json(r) for r in raw.get("replicas", [])],
        updated_at_s=float(raw.get("updated_at_s", 0.0)),
    )


def write_state(path: Path, state: FleetState) -> None:
    """Atomically replace the state file (call with lock_for(path) held)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state.updated_at_s = time.time()
    body = {
        "version": STATE_VERSION,
        "updated_at_s": state.updated_at_s,
        "replicas": [r.to_json() for r in state.replicas],
    }
    tmp = path.with_suffix(f".tmp.{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=2))
    os.replace(tmp, path)
