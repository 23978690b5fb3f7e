"""Operator overrides: pause / resume, pin / unpin a replica count, set the mode, per model or `*`.

Rows are append-only (table `overrides`, migration 5). The effective state is a fold over the rows
in time order, a pure function the API and the control loop share:
  * expired rows (expires_at <= now) are ignored, so a timed pause simply stops applying;
  * for a model, its own rows and the `*` rows are applied together in time order, so a later
    `resume` of one model lifts an earlier `pause *` for that model only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ALL_MODELS = "*"
ACTIONS = ("pause", "resume", "pin", "unpin", "mode")
MODES = ("active", "advisory", "off")
MAX_TTL_S = 30 * 86400.0
MAX_PIN_REPLICAS = 10_000
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
# Which aspect of a model an action sets or clears.
_ASPECT = {"pause": "pause", "resume": "pause", "pin": "pin", "unpin": "pin", "mode": "mode"}


class OverrideRequest(BaseModel):
    """Body of POST /v1/overrides."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "chat-lm", "action": "pin", "replicas": 3, "reason": "launch day", "ttl_s": 3600},
                {"model": "*", "action": "mode", "mode": "advisory", "reason": "watch only"},
            ]
        },
    )

    model: str = Field(..., description='A model name, or "*" for all models.')
    action: Literal["pause", "resume", "pin", "unpin", "mode"]
    replicas: int | None = Field(
        None, ge=1, le=MAX_PIN_REPLICAS, description="Replica count to hold (pin only)."
    )
    mode: Literal["active", "advisory", "off"] | None = Field(
        None, description="The mode to set (mode only)."
    )
    reason: str = Field(..., min_length=1, max_length=500, description="Why (shown in the audit trail).")
    ttl_s: float | None = Field(
        None, gt=0, le=MAX_TTL_S, description="Seconds until the override lapses; null: until changed."
    )

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if v != ALL_MODELS and not _MODEL_RE.match(v):
            raise ValueError(
                f"model {v!r} is not a model name (letters, digits and _ . : / -, up to 128) or '*'"
            )
        return v

    @model_validator(mode="after")
    def _fields_fit_action(self) -> OverrideRequest:
        if self.action == "pin" and self.replicas is None:
            raise ValueError("replicas is required when action is 'pin'")
        if self.action != "pin" and self.replicas is not None:
            raise ValueError(f"replicas is only allowed with action 'pin' (action is {self.action!r})")
        if self.action == "mode" and self.mode is None:
            raise ValueError("mode is required when action is 'mode' (active, advisory or off)")
        if self.action != "mode" and self.mode is not None:
            raise ValueError(f"mode is only allowed with action 'mode' (action is {self.action!r})")
        return self


@dataclass(frozen=True)
class Override:
    """One stored override (one row of `overrides`)."""

    override_id: str
    ts_s: float
    model: str
    action: str
    replicas: int | None
    mode: str | None
    reason: str
    expires_at_s: float | None
    source: str = "api"

    def active_at(self, now_s: float) -> bool:
        return self.expires_at_s is None or self.expires_at_s > now_s

    def as_row(self) -> dict[str, Any]:
        return {
            "ts": datetime.fromtimestamp(self.ts_s, tz=UTC),
            "override_id": self.override_id,
            "model": self.model,
            "action": self.action,
            "replicas": self.replicas,
            "mode": self.mode or "",
            "reason": self.reason,
            "expires_at": None
            if self.expires_at_s is None
            else datetime.fromtimestamp(self.expires_at_s, tz=UTC),
            "source": self.source,
        }

    def as_json(self) -> dict[str, Any]:
        from controlplane.api.jsonify import iso  # noqa: PLC0415

        return {
            "override_id": self.override_id,
            "ts": iso(self.ts_s),
            "model": self.model,
            "action": self.action,
            "replicas": self.replicas,
            "mode": self.mode,
            "reason": self.reason,
            "expires_at": iso(self.expires_at_s),
            "source": self.source,
        }

    @classmethod
    def from_request(cls, req: OverrideRequest, now_s: float, source: str = "api") -> Override:
        return cls(
            override_id=uuid.uuid4().hex,
            ts_s=now_s,
            model=req.model,
            action=req.action,
            replicas=req.replicas,
            mode=req.mode,
            reason=req.reason,
            expires_at_s=None if req.ttl_s is None else now_s + req.ttl_s,
            source=source,
        )

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> Override:
        def secs(v: Any) -> float | None:
            if v is None:
                return None
            if isinstance(v, datetime):
                return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
            return float(v)

        return cls(
            override_id=str(r["override_id"]),
            ts_s=secs(r["ts"]) or 0.0,
            model=str(r["model"]),
            action=str(r["action"]),
            replicas=None if r.get("replicas") is None else int(r["replicas"]),
            mode=str(r["mode"]) or None if r.get("mode") else None,
            reason=str(r.get("reason", "")),
            expires_at_s=secs(r.get("expires_at")),
            source=str(r.get("source", "api")),
        )


@dataclass(frozen=True)
class EffectiveOverride:
    paused: bool = False
    pinned_replicas: int | None = None
    mode: str | None = None  # None: the configured mode applies


NO_OVERRIDE = EffectiveOverride()


def _fold(rows: Iterable[Override]) -> EffectiveOverride:
    paused, pinned, mode = False, None, None
    for ov in rows:
        if ov.action == "pause":
            paused = True
        elif ov.action == "resume":
            paused = False
        elif ov.action == "pin":
            pinned = ov.replicas
        elif ov.action == "unpin":
            pinned = None
        elif ov.action == "mode":
            mode = ov.mode
    return EffectiveOverride(paused=paused, pinned_replicas=pinned, mode=mode)


def _ordered(rows: Iterable[Override], now_s: float) -> list[Override]:
    live = [r for r in rows if r.active_at(now_s)]
    return sorted(live, key=lambda r: (r.ts_s, r.override_id))


def effective_overrides(rows: Iterable[Override], now_s: float) -> dict[str, EffectiveOverride]:
    """Effective override per model named in the rows, plus `*` (the all-models rows alone).

    Look a model up with `override_for(result, model)`.
    """
    live = _ordered(rows, now_s)
    models = {r.model for r in live}
    out: dict[str, EffectiveOverride] = {}
    for m in models:
        keep = (m,) if m == ALL_MODELS else (m, ALL_MODELS)
        out[m] = _fold(r for r in live if r.model in keep)
    return out


def override_for(effective: Mapping[str, EffectiveOverride], model: str) -> EffectiveOverride:
    return effective.get(model) or effective.get(ALL_MODELS) or NO_OVERRIDE


def active_overrides(rows: Iterable[Override], now_s: float) -> list[Override]:
    """The rows that currently set something: per (model, aspect) the newest live row, when it is
    a pause, a pin or a mode (a resume or unpin clears its aspect and is not listed)."""
    newest: dict[tuple[str, str], Override] = {}
    for r in _ordered(rows, now_s):
        newest[(r.model, _ASPECT.get(r.action, r.action))] = r
    live = [r for r in newest.values() if r.action in ("pause", "pin", "mode")]
    return sorted(live, key=lambda r: (r.model, r.ts_s))
