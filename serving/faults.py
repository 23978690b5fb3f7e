"""Per-replica fault injection, switched at run time without restarting the replica.

The fleet writes `<replica workdir>/faults.json`; model code (serving/models) re-reads it when
its mtime changes (one stat per request) and applies it. The path reaches the models through
the FAULTS_FILE_ENV environment variable of the tritonserver process. `cache_off` is not
applied by the models (the response cache answers before a model runs): the fleet reloads the
cached models with `response_cache { enable: false }` through Triton's model load API.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FAULTS_FILE_ENV = "FLEETPILOT_FAULTS_FILE"


@dataclass(frozen=True)
class Faults:
    added_latency_ms: float = 0.0  # sleep added to each batch the model runs (ms; chat-lm: each request)
    # Sleep added per request in that batch (ms): compute that grows with the batch, as on a
    # GPU, so throughput rises with batch size up to a limit (the simulator's batching curve).
    added_latency_per_item_ms: float = 0.0
    error_rate_ratio: float = 0.0  # fraction of requests failed with an error (0-1)
    cache_off: bool = False  # response cache disabled on this replica
    memory_growth_mb_per_s: float = 0.0  # resident memory leaked per second while active (MiB/s)

    def validate(self) -> Faults:
        if self.added_latency_ms < 0 or self.added_latency_ms > 600_000:
            raise ValueError(f"added_latency_ms={self.added_latency_ms} outside 0..600000")
        if not 0 <= self.added_latency_per_item_ms <= 60_000:
            raise ValueError(f"added_latency_per_item_ms={self.added_latency_per_item_ms} outside 0..60000")
        if not 0.0 <= self.error_rate_ratio <= 1.0:
            raise ValueError(f"error_rate_ratio={self.error_rate_ratio} outside 0..1")
        if self.memory_growth_mb_per_s < 0 or self.memory_growth_mb_per_s > 1024:
            raise ValueError(f"memory_growth_mb_per_s={self.memory_growth_mb_per_s} outside 0..1024")
        return self

    @property
    def active(self) -> bool:
        return self != Faults()


def write_faults(path: Path, faults: Faults) -> None:
    faults.validate()
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(faults)))
    os.replace(tmp, path)


def read_faults(path: Path) -> Faults:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return Faults()
    known = {k: raw[k] for k in Faults.__dataclass_fields__ if k in raw}
    return Faults(**known).validate()


class FaultWatcher:
    """Cheap per-request view of the faults file: re-reads only when the mtime changes."""

    def __init__(self, path: str | os.PathLike | None = None):
        env_path = os.environ.get(FAULTS_FILE_ENV)
        self.path = Path(path) if path else (Path(env_path) if env_path else None)
        self._mtime_ns: int | None = None
        self.current = Faults()

    def poll(self) -> Faults:
        if self.path is None:
            return self.current
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            self._mtime_ns, self.current = None, Faults()
            return self.current
        if mtime_ns != self._mtime_ns:
            try:
                self.current = read_faults(self.path)
                self._mtime_ns = mtime_ns
            except (ValueError, OSError):
                pass  # half-written or invalid: keep the last good faults
        return self.current
