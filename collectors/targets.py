"""What to scrape: fleet replicas from the fleet state file plus static targets from config,
split over collector shards by rendezvous (highest-random-weight) hashing.

Rendezvous hashing: each target goes to the shard with the highest hash(target, shard). Going from
N to N+1 shards moves only the targets the new shard wins, about 1/(N+1) of them; the rest stay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from controlplane.config import CollectConfig
from serving.fleet_state import FleetStateError, read_state


@dataclass(frozen=True)
class Target:
    name: str
    metrics_url: str | None
    stats_url: str | None  # Triton HTTP base URL (…/v2/models/stats is appended); None skips the stats API
    zone: str = ""
    region: str = ""
    kind: str = "triton"  # triton | dcgm | exposition


def _weight(target: str, shard: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{target}\x00{shard}".encode(), digest_size=8).digest(), "big")


def owner_shard(target_name: str, shard_count: int) -> int:
    return max(range(shard_count), key=lambda s: _weight(target_name, s))


def assign(targets: list[Target], shard_index: int, shard_count: int) -> list[Target]:
    """The targets that shard `shard_index` of `shard_count` scrapes."""
    if shard_count <= 1:
        return list(targets)
    return [t for t in targets if owner_shard(t.name, shard_count) == shard_index]


def fleet_targets(state_path: Path, with_stats: bool = True) -> list[Target]:
    """One target per replica in the fleet state file (missing file: none)."""
    state = read_state(state_path)
    return [
        Target(r.name, r.metrics_url, r.http_url if with_stats else None, r.zone, r.region, "triton")
        for r in state.replicas
    ]


def static_targets(cfg: CollectConfig) -> list[Target]:
    return [Target(t.name, t.metrics_url, t.stats_url, t.zone, t.region, t.kind) for t in cfg.static_targets]


def discover(cfg: CollectConfig, state_path: Path | None) -> list[Target]:
    """All targets of this shard; an unreadable state file keeps the static targets (and is raised
    only when there is nothing else to scrape)."""
    found = static_targets(cfg)
    if cfg.from_fleet_state and state_path is not None:
        try:
            names = {t.name for t in found}
            found += [t for t in fleet_targets(state_path, cfg.stats_api) if t.name not in names]
        except FleetStateError:
            if not found:
                raise
    return assign(found, cfg.shard_index, cfg.shard_count)
