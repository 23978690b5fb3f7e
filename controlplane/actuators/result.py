"""The value every actuator returns instead of raising (OpenTelemetry-SDK style result enum)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class ActuationStatus(StrEnum):
    OK = "ok"  # the change was applied
    NOOP = "noop"  # nothing to do: the target already had the requested value
    REJECTED = "rejected"  # the request is invalid or not allowed (bad value, unknown name, 401/403)
    UNAVAILABLE = "unavailable"  # transient: unreachable, overloaded or a write conflict; retry later
    FAILED = "failed"  # attempted and failed for another reason


@dataclass(frozen=True)
class ActuationResult:
    status: ActuationStatus
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the target is now in the requested state (OK or NOOP)."""
        return self.status in (ActuationStatus.OK, ActuationStatus.NOOP)

    @property
    def retryable(self) -> bool:
        return self.status is ActuationStatus.UNAVAILABLE

    @property
    def outcome(self) -> str:
        """The store's `actions.outcome` value: ok | skipped | failed."""
        if self.status is ActuationStatus.OK:
            return "ok"
        return "skipped" if self.status is ActuationStatus.NOOP else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "message": self.message,
            "details": self.details,
            "duration_s": round(self.duration_s, 6),
        }


def result(status: ActuationStatus, message: str = "", **details: Any) -> ActuationResult:
    return ActuationResult(status, message, details)


def timed(action: str, fn: Callable[[], ActuationResult]) -> ActuationResult:
    """Run one actuation, stamp its duration, and turn an unexpected exception into FAILED.

    Ports never raise: the loop records the result and carries on.
    """
    start = time.monotonic()
    try:
        res = fn()
    except Exception as exc:  # noqa: BLE001 - a port returns a value, whatever went wrong
        res = ActuationResult(
            ActuationStatus.FAILED,
            f"{action}: unexpected {type(exc).__name__}: {exc}",
            {"exception": type(exc).__name__},
        )
    return replace(res, duration_s=time.monotonic() - start)


class FakeBehaviour:
    """Shared by the in-memory fakes: records every call and returns injected failures.

    `calls` holds `(operation, {arguments})` in call order, failed calls included.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._queued: deque[ActuationResult] = deque()
        self._always: ActuationResult | None = None

    def fail_next(
        self,
        status: ActuationStatus = ActuationStatus.FAILED,
        message: str = "injected failure",
        times: int = 1,
    ) -> None:
        """The next `times` calls return this result and change nothing."""
        self._queued.extend(ActuationResult(status, message) for _ in range(times))

    def fail_always(
        self, status: ActuationStatus = ActuationStatus.UNAVAILABLE, message: str = "injected outage"
    ) -> None:
        self._always = ActuationResult(status, message)

    def heal(self) -> None:
        self._queued.clear()
        self._always = None

    def _call(self, operation: str, **arguments: Any) -> ActuationResult | None:
        """Record the call; an injected failure to return, or None to go ahead."""
        self.calls.append((operation, arguments))
        if self._queued:
            return self._queued.popleft()
        return self._always

    def operations(self) -> list[str]:
        return [op for op, _ in self.calls]
