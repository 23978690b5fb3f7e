"""Resident memory of each local replica's process tree (tritonserver plus its backend stubs).

Triton's own CPU memory metric is machine-wide, so it cannot tell which replica leaks; the python
backend runs each model instance in a child process, so the tree is summed. Read from /proc
(Linux); a replica whose process is gone is skipped (its `up` series already says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

from serving.fleet_state import FleetStateError, read_state

log = logging.getLogger(__name__)

METRIC = "process_resident_memory_bytes"  # the name Prometheus client libraries use
PROC = Path("/proc")


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return 0  # kernel threads and zombies have no VmRSS


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        return []
    return out


def tree_rss_bytes(pid: int, max_procs: int = 256) -> int | None:
    """RSS of pid and all its descendants; None when pid itself is gone."""
    root = _rss_bytes(pid)
    if root is None:
        return None
    total, todo, seen = root, _children(pid), {pid}
    while todo and len(seen) < max_procs:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        rss = _rss_bytes(p)
        if rss is not None:
            total += rss
            todo += _children(p)
    return total


class ProcMemSampler:
    """(replica, zone, region, rss_bytes) for each replica in the fleet state file with a live pid."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = Path(state_path)

    def sample(self) -> list[tuple[str, str, str, float]]:
        try:
            state = read_state(self.state_path)
        except FleetStateError as exc:
            log.debug("fleet state unreadable for memory sampling: %s", exc)
            return []
        out = []
        for rec in state.replicas:
            if rec.pid is None:
                continue
            rss = tree_rss_bytes(rec.pid)
            if rss is not None:
                out.append((rec.name, rec.zone, rec.region, float(rss)))
        return out
