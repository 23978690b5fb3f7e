"""The record every policy returns; `.as_row()` is one row of the store's `decisions` table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

# Columns of `decisions` (controlplane/store/schema.py), in order.
COLUMNS = (
    "ts",
    "decision_id",
    "policy",
    "mode",
    "model",
    "replica",
    "action",
    "params",
    "reason_codes",
    "inputs",
    "confidence_ratio",
)


@dataclass(frozen=True)
class Decision:
    """`final` None is "no decision" (no data, stale data, mode off); reason_codes say why.

    For replicas, current/recommended/final are replica counts; for routing they are one
    replica's weight (`replica` names it)."""

    model: str
    ts: float  # epoch seconds (the snapshot's now_s)
    current: int | None
    recommended: int | None  # what the policy asked for, before the rails
    final: int | None  # after the rails: what is (or, in advisory mode, would be) applied
    mode: str  # active | advisory | off
    actuate: bool  # True only when active and final != current
    reason_codes: list[str]  # in the order they were applied
    inputs: dict  # the numbers that led to it
    message: str
    policy: str = "replicas"
    replica: str = ""
    action: str = ""  # derived from current/final when empty
    confidence_ratio: float = 1.0

    @property
    def no_decision(self) -> bool:
        return self.final is None

    @property
    def kind(self) -> str:
        """scale_up | scale_down | hold | none (routing policies set `action` themselves)."""
        if self.action:
            return self.action
        if self.final is None or self.current is None:
            return "none"
        if self.final > self.current:
            return "scale_up"
        if self.final < self.current:
            return "scale_down"
        return "hold"

    @property
    def decision_id(self) -> str:
        return f"{self.policy}:{self.model}:{self.replica}@{int(round(self.ts * 1000))}"

    def as_row(self) -> dict:
        params = {
            "current": self.current,
            "recommended": self.recommended,
            "final": self.final,
            "actuate": self.actuate,
            "message": self.message,
        }
        row = {
            "ts": datetime.fromtimestamp(self.ts, tz=UTC),
            "decision_id": self.decision_id,
            "policy": self.policy,
            "mode": self.mode,
            "model": self.model,
            "replica": self.replica,
            "action": self.kind,
            "params": json.dumps(params, sort_keys=True),
            "reason_codes": list(self.reason_codes),
            "inputs": json.dumps(self.inputs, sort_keys=True, default=str),
            "confidence_ratio": float(self.confidence_ratio),
        }
        return {k: row[k] for k in COLUMNS}
