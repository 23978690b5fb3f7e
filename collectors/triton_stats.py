"""Triton's statistics API (`GET /v2/models/stats`) as samples named `triton_stats_*`.

Everything there is cumulative since the model loaded (counters), except memory usage (gauge).
Older servers lack batch_stats, memory_usage, cache_hit/cache_miss and response_stats: a missing
field simply yields no sample. response_stats (one entry per streamed response index) is skipped
on purpose: its keys grow with generation length (label explosion).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

STATS_PATH = "/v2/models/stats"
TOKEN_HEADER = "triton-access-token"

# (metric name, labels without model, kind, value)
StatSample = tuple[str, dict[str, str], str, float]


def _duration_pair(prefix: str, d: Any, labels: dict[str, str]) -> Iterator[StatSample]:
    if not isinstance(d, dict):
        return
    if "count" in d:
        yield f"{prefix}_count", labels, "counter", float(d["count"])
    if "ns" in d:
        yield f"{prefix}_ns", labels, "counter", float(d["ns"])


def stats_samples(body: dict) -> Iterator[tuple[str, StatSample]]:
    """(model, sample) pairs from a /v2/models/stats response body."""
    for ms in body.get("model_stats") or []:
        model = str(ms.get("name", ""))
        base = {"version": str(ms.get("version", ""))}
        for field in ("inference_count", "execution_count"):
            if field in ms:
                yield model, (f"triton_stats_{field}", base, "counter", float(ms[field]))
        if ms.get("last_inference"):
            yield model, ("triton_stats_last_inference_ms", base, "gauge", float(ms["last_inference"]))
        for name, d in (ms.get("inference_stats") or {}).items():
            for s in _duration_pair(f"triton_stats_{name}", d, base):
                yield model, s
        for bs in ms.get("batch_stats") or []:
            labels = {**base, "batch_size": str(bs.get("batch_size", ""))}
            for name, d in bs.items():
                if name != "batch_size":
                    for s in _duration_pair(f"triton_stats_batch_{name}", d, labels):
                        yield model, s
        for mu in ms.get("memory_usage") or []:
            labels = {**base, "kind": str(mu.get("type", "")), "device_id": str(mu.get("id", ""))}
            if "byte_size" in mu:
                yield model, ("triton_stats_memory_usage_bytes", labels, "gauge", float(mu["byte_size"]))


def stats_headers(access_token: str | None) -> dict[str, str]:
    return {TOKEN_HEADER: access_token} if access_token else {}
