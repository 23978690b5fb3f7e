"""The ClickHouse store: client factory, schema migrations, columnar sample inserts, derived-series SQL."""

from controlplane.store.client import QueryResult, Store, embedded_path, open_store
from controlplane.store.errors import StoreError, StoreLocked, StoreRejected, StoreUnavailable
from controlplane.store.samples import COLUMNS, SampleBatch, series_id_of

__all__ = [
    "COLUMNS",
    "QueryResult",
    "SampleBatch",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreRejected",
    "StoreUnavailable",
    "embedded_path",
    "open_store",
    "series_id_of",
]
