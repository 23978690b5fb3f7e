"""The replicas the router can send to, their health, weights and outstanding requests.

- Membership comes from the fleet state file (serving.fleet_state), re-read when its mtime
  changes (checked every state_poll_interval_s). A replica's models = ReplicaRecord.models.
- Active health: `GET /v2/health/ready` per replica every health_check_interval_s; a replica
  first seen is checked at once and is not routed to until that check passes.
- Passive ejection: a connection failure takes the replica out of rotation for ejection_s,
  even if its health check still answers (the check might be cached or racing a crash).
- Weights default to 1; set through the admin API; kept by name across state reloads.
- Zone preference: `pick(..., zone=...)` keeps a request in its zone until the zone is saturated
  (balancer.zone_candidates); each spill is reported to `on_spill(zone, reason)`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from serving.fleet_state import FleetStateError, ReplicaRecord, read_state
from serving.router import balancer

log = logging.getLogger(__name__)

DEFAULT_WEIGHT = 1.0


@dataclass(eq=False)  # identity equality: `in exclude` must not compare fields
class Replica:
    record: ReplicaRecord
    weight: float = DEFAULT_WEIGHT
    healthy: bool = False
    checked: bool = False  # at least one health check has finished
    ejected_until_s: float = 0.0  # time.monotonic() until which it is out of rotation
    inflight: int = 0
    last_error: str = ""
    _urls: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.record.name

    def url(self, model: str, route: str) -> str:
        """Upstream URL, cached: no string formatting on the hot path after the first use."""
        key = (model, route)
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = f"{self.record.http_url}/v2/models/{model}/{route}"
        return url

    def ejected(self, now_s: float) -> bool:
        return now_s < self.ejected_until_s


class Registry:
    def __init__(
        self,
        state_path: Path,
        health_check_interval_s: float = 1.0,
        ejection_s: float = 5.0,
        state_poll_interval_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.state_path = Path(state_path)
        self.health_check_interval_s = health_check_interval_s
        self.ejection_s = ejection_s
        self.state_poll_interval_s = state_poll_interval_s
        self.replicas: dict[str, Replica] = {}
        self.weights: dict[str, float] = {}  # explicit weights by replica name
        self.served_models: frozenset[str] = frozenset()
        self.zones: frozenset[str] = frozenset()  # zones of the known replicas
        self.on_spill: Callable[[str, str], None] | None = None  # (zone, reason) per spilled pick
        self.state_error: str = ""
        self._by_model: dict[str, list[Replica]] = {}
        self._rr: dict[tuple, dict[str, float]] = {}
        self._rng = rng or random.Random()
        self._state_stamp: tuple[int, int, int] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []

    # --- membership ------------------------------------------------------------------
    def refresh(self) -> list[Replica]:
        """Re-read the state file if it changed; returns replicas that are new or moved."""
        try:
            st = os.stat(self.state_path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # writers rename a new file in place
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp == self._state_stamp:
            return []
        try:
            state = read_state(self.state_path)
        except FleetStateError as exc:
            # Keep routing with what we had; the writer replaces the file atomically so this
            # is a real problem, surfaced in /admin/state.
            self.state_error = str(exc)
            log.warning("%s", exc)
            return []
        self._state_stamp = stamp
        self.state_error = ""
        return self.apply_records(state.replicas)

    def apply_records(self, records: list[ReplicaRecord]) -> list[Replica]:
        fresh: list[Replica] = []
        current: dict[str, Replica] = {}
        for rec in records:
            old = self.replicas.get(rec.name)
            if old is not None and old.record.http_url == rec.http_url:
                old.record = rec  # models or metadata may have changed
                old._urls.clear()
                current[rec.name] = old
            else:
                rep = Replica(record=rec, weight=self.weights.get(rec.name, DEFAULT_WEIGHT))
                if old is not None:
                    rep.inflight = old.inflight  # requests still running on the old address
                current[rec.name] = rep
                fresh.append(rep)
        self.replicas = dict(sorted(current.items()))
        self._reindex()
        return fresh

    def _reindex(self) -> None:
        by_model: dict[str, list[Replica]] = {}
        for rep in self.replicas.values():
            for model in rep.record.models:
                by_model.setdefault(model, []).append(rep)
        self._by_model = by_model
        self.served_models = frozenset(by_model)
        self.zones = frozenset(r.record.zone for r in self.replicas.values())
        self._rr.clear()

    def set_weights(self, weights: dict[str, float]) -> None:
        """Caller validated names and values."""
        for name, w in weights.items():
            self.weights[name] = float(w)
            if name in self.replicas:
                self.replicas[name].weight = float(w)

    # --- choosing ---------------------------------------------------------------------
    def has_model(self, model: str) -> bool:
        return model in self._by_model

    def pick(
        self,
        model: str,
        exclude: tuple[Replica, ...] = (),
        zone: str = "",
        spill_inflight_per_replica: float = math.inf,
    ) -> Replica | None:
        """A healthy, non-ejected, non-drained replica serving the model, or None.

        With `zone`, one of that zone's replicas unless the zone is saturated or has none
        eligible (then any eligible replica: a spill)."""
        now = time.monotonic()
        eligible = [
            r
            for r in self._by_model.get(model, ())
            if r.healthy and r.weight > 0 and now >= r.ejected_until_s and r not in exclude
        ]
        if not eligible:
            return None
        if not zone and len(eligible) == 1:
            return eligible[0]
        cands = [balancer.Candidate(r.name, r.weight, r.inflight, r.record.zone) for r in eligible]
        if zone:
            cands, spill = balancer.zone_candidates(cands, zone, spill_inflight_per_replica)
            if spill and self.on_spill is not None:
                self.on_spill(zone, spill)
            if len(cands) == 1:
                return self.replicas[cands[0].name]
        key = (model, *(c.name for c in cands))
        counters = self._rr.get(key)
        if counters is None:
            counters = self._rr[key] = {}
        chosen = balancer.pick(cands, counters, self._rng)
        return self.replicas[chosen.name] if chosen is not None else None

    def eject(self, rep: Replica, reason: str) -> None:
        rep.ejected_until_s = time.monotonic() + self.ejection_s
        rep.last_error = reason
        log.warning("ejected replica %s for %.1f s: %s", rep.name, self.ejection_s, reason)

    # --- health -------------------------------------------------------------------------
    async def check(self, rep: Replica) -> bool:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=max(0.5, min(2.0, self.health_check_interval_s)))
        try:
            async with self._session.get(f"{rep.record.http_url}/v2/health/ready", timeout=timeout) as resp:
                await resp.read()
                ok = resp.status == 200
                if not ok:
                    rep.last_error = f"health check: HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            ok = False
            rep.last_error = f"health check: {type(exc).__name__}: {exc}"
        if ok != rep.healthy and rep.checked:
            log.warning("replica %s is now %s", rep.name, "healthy" if ok else "unhealthy")
        rep.healthy = ok
        rep.checked = True
        return ok

    async def check_all(self, reps: list[Replica] | None = None) -> None:
        reps = list(self.replicas.values()) if reps is None else reps
        if reps:
            await asyncio.gather(*(self.check(r) for r in reps))

    async def start(self) -> None:
        """Load the state file and health-check every replica before serving."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), skip_auto_headers=("User-Agent", "Accept-Encoding")
        )
        self.refresh()
        await self.check_all()
        self._tasks = [
            asyncio.create_task(self._poll_state_loop(), name="router-state-poll"),
            asyncio.create_task(self._health_loop(), name="router-health"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _poll_state_loop(self) -> None:
        while True:
            await asyncio.sleep(self.state_poll_interval_s)
            try:
                fresh = self.refresh()
                if fresh:
                    await self.check_all(fresh)
            except Exception:  # keep polling whatever happens
                log.exception("fleet state poll failed")

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_check_interval_s)
            try:
                await self.check_all()
            except Exception:
                log.exception("health check round failed")

    # --- views ---------------------------------------------------------------------------
    def snapshot(self) -> list[dict]:
        now = time.monotonic()
        return [
            {
                "name": r.name,
                "zone": r.record.zone,
                "region": r.record.region,
                "http_url": r.record.http_url,
                "models": list(r.record.models),
                "weight": r.weight,
                "healthy": r.healthy,
                "ejected": r.ejected(now),
                "ejected_for_s": round(max(0.0, r.ejected_until_s - now), 3),
                "in_rotation": r.healthy and r.weight > 0 and not r.ejected(now),
                "inflight": r.inflight,
                "last_error": r.last_error,
            }
            for r in self.replicas.values()
        ]
