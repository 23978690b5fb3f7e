"""Per-request replay results and the summary figures computed from them (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Status = Literal["ok", "error", "shed", "timeout", "dropped"]
STATUSES: tuple[str, ...] = ("ok", "error", "shed", "timeout", "dropped")


@dataclass
class RequestResult:
    index: int  # position in the trace (0-based)
    trace_offset_s: float  # arrival time in the trace (uncompressed seconds)
    scheduled_s: float  # when it was due, after time compression (seconds from replay start)
    sent_s: float | None  # when it actually went out (seconds from replay start); None if dropped
    status: Status
    model: str  # the model that answered when known (response body), else the requested one
    priority: str
    http_status: int | None = None
    latency_ms: float | None = None  # send -> last byte (stream end for chat)
    ttft_ms: float | None = None  # send -> first streamed token (chat only)
    tokens: int = 0  # tokens received
    prompt_tokens: int = 0  # prompt tokens sent (after the cap)
    max_tokens: int = 0  # tokens asked for (after the cap)
    clipped_prompt: bool = False
    clipped_output: bool = False
    replica: str | None = None  # X-Fleetpilot-Replica response header
    reason: str | None = None  # short code for non-ok results: http_500, connection, timeout, ...
    error: str | None = None  # human-readable detail

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (linear interpolation), rounded to 0.001 ms; None without data."""
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 3)


def summarize(
    results: Iterable[RequestResult],
    *,
    duration_s: float,
    max_prompt_tokens: int,
    max_generated_tokens: int,
    results_file: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summary figures of one replay. Latency percentiles are over ok requests only (a shed
    request answers fast and would flatter them); errors_by_reason counts every non-ok result."""
    results = list(results)
    by_status = Counter(r.status for r in results)
    ok = [r for r in results if r.status == "ok"]
    latencies = [r.latency_ms for r in ok if r.latency_ms is not None]
    ttfts = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    sent = [r for r in results if r.sent_s is not None]
    lags_ms = [max(0.0, (r.sent_s - r.scheduled_s) * 1000.0) for r in sent]  # type: ignore[operator]
    reasons = Counter(r.reason or r.status for r in results if r.status != "ok")
    by_replica = Counter(r.replica for r in ok if r.replica)
    by_priority: dict[str, dict[str, int]] = {}
    for r in results:
        entry = by_priority.setdefault(r.priority, {s: 0 for s in ("requests", *STATUSES)})
        entry["requests"] += 1
        entry[r.status] += 1
    summary: dict[str, Any] = {
        "requests": len(results),
        "ok": by_status["ok"],
        "errors": by_status["error"],
        "shed": by_status["shed"],
        "timeouts": by_status["timeout"],
        "dropped": by_status["dropped"],
        "duration_s": round(duration_s, 3),
        "achieved_rps": round(len(sent) / duration_s, 3) if duration_s > 0 else None,
        "ok_rps": round(len(ok) / duration_s, 3) if duration_s > 0 else None,
        "p50_ms": percentile_ms(latencies, 50),
        "p90_ms": percentile_ms(latencies, 90),
        "p99_ms": percentile_ms(latencies, 99),
        "ttft_p50_ms": percentile_ms(ttfts, 50),
        "ttft_p99_ms": percentile_ms(ttfts, 99),
        "send_lag_p99_ms": percentile_ms(lags_ms, 99),  # open-loop health: how late sends went out
        "send_lag_max_ms": round(max(lags_ms), 3) if lags_ms else None,
        "tokens_generated": sum(r.tokens for r in results),
        "prompt_tokens_sent": sum(r.prompt_tokens for r in sent),
        "clipped_prompt": sum(1 for r in results if r.clipped_prompt),
        "clipped_output": sum(1 for r in results if r.clipped_output),
        "max_prompt_tokens": max_prompt_tokens,
        "max_generated_tokens": max_generated_tokens,
        "errors_by_reason": dict(sorted(reasons.items())),
        "by_replica": dict(sorted(by_replica.items())),
        "by_priority": dict(sorted(by_priority.items())),
        "results_file": results_file,
    }
    if extra:
        summary.update(extra)
    return summary
