"""`SampleBatch`: the columnar unit collectors hand to `Store.insert_samples`.

Columns are equal-length sequences (numpy arrays, lists, or pyarrow arrays), in this order:
ts (float seconds since epoch, numpy datetime64, or datetime), target, zone, region, model,
metric, labels (dict per row, without `model`), kind, value (Float64, units normalised at
ingest), series_id (UInt64, stable hash of target, metric and sorted labels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

COLUMNS = ("ts", "target", "zone", "region", "model", "metric", "labels", "kind", "value", "series_id")
KINDS = ("counter", "gauge", "histogram", "summary", "untyped")


def series_id_of(target: str, metric: str, labels: Mapping[str, str]) -> int:
    """A stable 64-bit series id (blake2b, 8 bytes): a convenience for tests and static writers.

    Collectors compute their own; the store only needs it stable per (target, metric, labels).
    """
    h = hashlib.blake2b(digest_size=8)
    for part in (target, metric, *(f"{k}={labels[k]}" for k in sorted(labels))):
        h.update(part.encode())
        h.update(b"\x00")
    return int.from_bytes(h.digest(), "little")


@dataclass
class SampleBatch:
    ts: Any
    target: Any
    zone: Any
    region: Any
    model: Any
    metric: Any
    labels: Any
    kind: Any
    value: Any
    series_id: Any

    def __len__(self) -> int:
        return len(self.ts)

    def lengths(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple | Mapping[str, Any]]) -> SampleBatch:
        """Build a batch from row tuples (column order) or dicts.

        Dict rows may leave out zone/region/model ('' by default), labels ({}), kind ('gauge')
        and series_id (then computed with `series_id_of`); ts, target, metric and value are required.
        """
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for row in rows:
            if not isinstance(row, Mapping):
                row = dict(zip(COLUMNS, row, strict=True))
            labels = dict(row.get("labels") or {})
            full = {
                "ts": row["ts"],
                "target": row["target"],
                "zone": row.get("zone", ""),
                "region": row.get("region", ""),
                "model": row.get("model", ""),
                "metric": row["metric"],
                "labels": labels,
                "kind": row.get("kind", "gauge"),
                "value": float(row["value"]),
            }
            sid = row.get("series_id")
            if sid is None:
                ident = {**labels, "model": full["model"]} if full["model"] else labels
                sid = series_id_of(full["target"], full["metric"], ident)
            full["series_id"] = sid
            for c in COLUMNS:
                cols[c].append(full[c])
        return cls(**cols)
