"""Writes what the loop decided and did to the store: decisions, actions, anomaly events,
replica spec and status. Rows are buffered per table and flushed once per tick; when the store
is unavailable they stay buffered (bounded: the oldest are dropped with an error log and a
count) and go in with the next flush that works, so a store hiccup loses nothing already decided.
Thread-safe: fleet operations finish on a worker thread and record from there.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from controlplane.actuators.result import ActuationResult
from controlplane.policy.decision import Decision

log = logging.getLogger(__name__)

TABLES = ("decisions", "actions", "anomaly_events", "replica_spec", "replica_status")


def utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, tz=UTC)


def action_row(
    ts_s: float,
    *,
    decision_id: str,
    actuator: str,
    action: str,
    mode: str,
    model: str,
    replica: str,
    params: dict[str, Any],
    res: ActuationResult,
) -> dict[str, Any]:
    return {
        "ts": utc(ts_s),
        "action_id": uuid.uuid4().hex,
        "decision_id": decision_id,
        "actuator": actuator,
        "action": action,
        "mode": mode,
        "model": model,
        "replica": replica,
        "params": json.dumps({**params, "details": res.details}, sort_keys=True, default=str),
        "outcome": res.outcome,
        "error": "" if res.ok else (res.message or str(res.status)),
        "duration_ms": res.duration_s * 1000.0,
    }


class Recorder:
    def __init__(self, store: Any, max_buffered_rows: int = 100_000) -> None:
        self.store = store
        self.max_buffered_rows = max_buffered_rows
        self._lock = threading.Lock()
        self._buf: dict[str, deque[dict]] = {t: deque() for t in TABLES}
        self.dropped_rows = 0
        self.written_rows = 0
        self.last_error: str | None = None
        self.on_action = None  # called with every action row (the loop's metrics)

    def add(self, table: str, rows: list[dict]) -> None:
        if not rows:
            return
        if table == "actions" and self.on_action is not None:
            for r in rows:
                self.on_action(r)
        with self._lock:
            self._buf[table].extend(rows)
            dropped = self._drop_oldest()
        if dropped:
            log.error(
                "store unavailable too long: dropped %d buffered rows (%d so far)", dropped, self.dropped_rows
            )

    def _drop_oldest(self) -> int:
        """Keep the buffer within its bound by dropping the oldest rows of the fullest table, so
        one table's burst does not push out every other table's record. Call with the lock
        held; returns the rows dropped."""
        over = sum(len(b) for b in self._buf.values()) - self.max_buffered_rows
        dropped = 0
        while over > 0:
            max(self._buf.values(), key=len).popleft()
            over -= 1
            dropped += 1
        self.dropped_rows += dropped
        return dropped

    def decisions(self, decisions: list[Decision]) -> None:
        self.add("decisions", [d.as_row() for d in decisions])

    def flush(self) -> int:
        """Insert what is buffered; on an error keep it for the next flush. Returns rows written."""
        written = 0
        for table in TABLES:
            with self._lock:
                rows = list(self._buf[table])
            if not rows:
                continue
            try:
                self.store.insert_rows(table, rows)
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep the rows
                self.last_error = f"{table}: {exc}"
                log.warning(
                    "recording %d %s rows failed (kept for the next flush): %s", len(rows), table, exc
                )
                continue
            with self._lock:
                # Remove what was written, by identity: rows dropped from the head meanwhile
                # (the bound, on another thread) must not make us remove unwritten rows.
                done, buf = {id(r) for r in rows}, self._buf[table]
                while buf and id(buf[0]) in done:
                    buf.popleft()
            written += len(rows)
        self.written_rows += written
        return written

    def pending(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._buf.values())
