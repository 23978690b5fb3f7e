"""An in-memory stand-in for controlplane.store's Store (insert_samples + dedup by token)."""

from __future__ import annotations

from collectors.columns import column_as_list
from collectors.sink import StoreRejected, StoreUnavailable
from controlplane.store.samples import COLUMNS


class FakeStore:
    def __init__(self):
        self.rows: list[tuple] = []  # (target, metric, labels items, ts, value)
        self.tokens: list[str] = []
        self.down = False
        self.reject = False
        self.calls = 0

    def insert_samples(self, batch, dedup_token: str) -> int:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("fake store is down")
        if self.reject:
            raise StoreRejected("fake store rejects this batch")
        if dedup_token in self.tokens:  # what insert_deduplication_token does in ClickHouse
            return 0
        self.tokens.append(dedup_token)
        c = {name: column_as_list(getattr(batch, name)) for name in COLUMNS}
        for i in range(len(batch)):
            self.rows.append(
                (
                    c["target"][i],
                    c["metric"][i],
                    tuple(sorted(c["labels"][i].items())),
                    float(c["ts"][i]),
                    float(c["value"][i]),
                    c["model"][i],
                    c["kind"][i],
                    int(c["series_id"][i]),
                )
            )
        return len(batch)
