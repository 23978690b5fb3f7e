"""`open_store` and `Store`: one clickhouse-connect client, migrations at open, columnar inserts.

DSNs: `chdb:///abs/path` (embedded engine, one process per path) or
`http(s)://user:pass@host:8123/db` (a server or a cluster's Distributed tables).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa

from controlplane.store.errors import StoreError, StoreLocked, StoreRejected, StoreUnavailable
from controlplane.store.increase import IncreaseTracker, Staged, is_cumulative
from controlplane.store.samples import COLUMNS, SampleBatch
from controlplane.store.schema import (
    MIGRATIONS_TABLE,
    Layout,
    migrations_table_ddl,
    render_migrations,
    ttl_alters,
)

# ClickHouse error codes that mean "try again later", not "this data is bad".
_RETRYABLE_CODES = {
    3,  # UNEXPECTED_END_OF_FILE
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica lost Keeper)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
}
_CODE_RE = re.compile(r"Code: (\d+)")
_STRING_COLS = ("target", "zone", "region", "model", "metric", "kind")
_ARROW_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("target", pa.dictionary(pa.int32(), pa.string())),
        ("zone", pa.dictionary(pa.int32(), pa.string())),
        ("region", pa.dictionary(pa.int32(), pa.string())),
        ("model", pa.dictionary(pa.int32(), pa.string())),
        ("metric", pa.dictionary(pa.int32(), pa.string())),
        ("labels", pa.map_(pa.string(), pa.string())),
        ("kind", pa.dictionary(pa.int32(), pa.string())),
        ("value", pa.float64()),
        ("series_id", pa.uint64()),
        ("delta", pa.float64()),
    ]
)


@dataclass
class QueryResult:
    column_names: tuple[str, ...]
    rows: list[tuple]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, r, strict=True)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.column_names.index(name)
        return [r[i] for r in self.rows]


def _short(exc: BaseException, limit: int = 400) -> str:
    msg = " ".join(str(exc).split())
    return msg if len(msg) <= limit else msg[:limit] + "..."


def classify(exc: BaseException, what: str) -> StoreError:
    """Map a clickhouse-connect/chDB exception onto StoreUnavailable or StoreRejected."""
    from clickhouse_connect.driver import exceptions as ce  # noqa: PLC0415

    if isinstance(exc, StoreError):
        return exc
    text = str(exc)
    if "already initialized with path" in text:
        # Same process, another path: chDB runs one engine (one path) per process.
        return StoreUnavailable(
            f"{what}: this process already has another embedded store open; close it first ({_short(exc)})"
        )
    if "EmbeddedServer" in text:
        return StoreLocked(f"{what}: the embedded store is already open in another process ({_short(exc)})")
    if isinstance(exc, ce.OperationalError | ConnectionError | TimeoutError | OSError):
        return StoreUnavailable(f"{what}: store unreachable: {_short(exc)}")
    m = _CODE_RE.search(text)
    if m and int(m.group(1)) in _RETRYABLE_CODES:
        return StoreUnavailable(f"{what}: store busy or degraded: {_short(exc)}")
    return StoreRejected(f"{what}: {_short(exc)}")


def _ts_ms(col: Any) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray | pa.Array):
        if pa.types.is_timestamp(col.type):
            return col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
        col = col.to_numpy()
    arr = np.asarray(col)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ms]").astype(np.int64)
    if arr.dtype == object and len(arr) and hasattr(arr[0], "timestamp"):
        return np.fromiter((round(x.timestamp() * 1000) for x in arr), np.int64, len(arr))
    return np.rint(arr.astype(np.float64) * 1000.0).astype(np.int64)


def _dict_array(col: Any) -> pa.DictionaryArray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, pa.DictionaryArray):
        return col.cast(pa.dictionary(pa.int32(), pa.string()))
    if isinstance(col, pa.Array):
        return col.cast(pa.string()).dictionary_encode()
    if isinstance(col, np.ndarray) and col.dtype != object:
        col = col.astype(str)
    return pa.array(col, type=pa.string()).dictionary_encode()


def _labels_array(col: Any) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, pa.Array):
        return col.cast(pa.map_(pa.string(), pa.string()))
    return pa.array(list(col) if isinstance(col, np.ndarray) else col, type=pa.map_(pa.string(), pa.string()))


def _numeric(col: Any, dtype: Any) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray | pa.Array):
        col = col.to_numpy(zero_copy_only=False)
    return np.asarray(col, dtype=dtype)


_TIME_COLUMNS = ("ts", "target_ts", "window_start", "window_end")


def _time_cell(name: str, v: Any) -> Any:
    """Epoch seconds in a time column become an aware datetime (what the driver serialises)."""
    if name in _TIME_COLUMNS and isinstance(v, int | float):
        return datetime.fromtimestamp(v, tz=UTC)
    return v


def _series_ids(col: Any) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray | pa.Array):
        col = col.to_numpy(zero_copy_only=False)
    if not isinstance(col, np.ndarray):
        # A list of Python ints above 2**63 would otherwise silently become float64.
        if not all(isinstance(x, int | np.integer) and 0 <= x < 1 << 64 for x in col):
            raise ValueError("series ids must be integers in [0, 2**64)")
        return np.array(col, dtype=np.uint64)
    arr = col
    if arr.dtype.kind == "u":
        return arr.astype(np.uint64, copy=False)
    if arr.dtype.kind == "i":
        if len(arr) and arr.min() < 0:
            raise ValueError("series ids are unsigned 64-bit integers; found a negative one")
        return arr.astype(np.uint64)
    if arr.dtype.kind == "O":
        return np.array([int(x) for x in arr], dtype=np.uint64)  # raises OverflowError for out-of-range ids
    raise ValueError(f"series ids must be integers, not {arr.dtype}")


class Store:
    """A connected, migrated store. Thread-safe: calls are serialised (chDB handles are not shared-safe)."""

    def __init__(self, client: Any, dsn: str, layout: Layout) -> None:
        self.client = client
        self.dsn = dsn
        self.layout = layout
        self.embedded = dsn.startswith("chdb:")
        self._lock = threading.RLock()
        self._tracker = IncreaseTracker()
        self.seed_lookback_s = 3600.0  # how far back the last value of an unknown series is looked up
        self.open_s = 0.0

    # ---- queries ---------------------------------------------------------------------------
    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> QueryResult:
        with self._lock:
            try:
                res = self.client.query(sql, parameters=parameters, settings=settings)
            except Exception as exc:
                raise classify(exc, "query failed") from exc
        return QueryResult(tuple(res.column_names), [tuple(r) for r in res.result_rows])

    def query_df(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ):
        with self._lock:
            try:
                return self.client.query_df(sql, parameters=parameters, settings=settings)
            except Exception as exc:
                raise classify(exc, "query failed") from exc

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        with self._lock:
            try:
                return self.client.command(sql, settings=settings)
            except Exception as exc:
                raise classify(exc, f"statement failed ({sql.split(None, 3)[:3]})") from exc

    def close(self) -> None:
        with self._lock:
            if self.client is not None:
                try:
                    self.client.close()
                finally:
                    self.client = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- inserts ---------------------------------------------------------------------------
    def _arrow_columns(self, batch: SampleBatch) -> dict[str, Any]:
        lengths = batch.lengths()
        n = lengths["ts"]
        bad = {c: ln for c, ln in lengths.items() if ln != n}
        if bad:
            detail = ", ".join(f"{c} has {ln}" for c, ln in bad.items())
            raise StoreRejected(
                f"batch rejected: columns must have equal lengths; ts has {n} rows but {detail}"
            )
        cols: dict[str, Any] = {}
        for name in COLUMNS:
            raw = getattr(batch, name)
            try:
                if name == "ts":
                    cols[name] = _ts_ms(raw)
                elif name in _STRING_COLS:
                    cols[name] = _dict_array(raw)
                elif name == "labels":
                    cols[name] = _labels_array(raw)
                elif name == "value":
                    cols[name] = _numeric(raw, np.float64)
                else:
                    cols[name] = _series_ids(raw)
            except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
                raise StoreRejected(
                    f"batch rejected: column {name!r} cannot be converted: {_short(exc, 200)}"
                ) from exc
        return cols

    def _cumulative_mask(self, kind: pa.DictionaryArray, metric: pa.DictionaryArray) -> np.ndarray:
        kinds = kind.dictionary.to_pylist()
        metrics = metric.dictionary.to_pylist()
        table = np.array([[is_cumulative(k, m) for m in metrics] for k in kinds], dtype=bool).reshape(
            len(kinds), len(metrics)
        )
        ki = kind.indices.to_numpy(zero_copy_only=False)
        mi = metric.indices.to_numpy(zero_copy_only=False)
        if len(kinds) == 0 or len(metrics) == 0:
            return np.zeros(len(ki), bool)
        return table[ki, mi]

    def _seed(self, targets: list[str], metrics: list[str]):
        """Last stored sample of series this process has not seen (another process or a restart wrote them)."""

        def seed(sids: np.ndarray, before_ms: int):
            since_ms = before_ms - int(self.seed_lookback_s * 1000)
            sql = (
                f"SELECT series_id, argMax(value, ts), toUnixTimestamp64Milli(max(ts)) FROM samples "
                f"WHERE metric IN {_sql_list(metrics)} AND target IN {_sql_list(targets)} "
                f"AND ts >= fromUnixTimestamp64Milli({since_ms}, 'UTC') AND ts < fromUnixTimestamp64Milli({before_ms}, 'UTC') "
                f"GROUP BY series_id"
            )
            try:
                res = self.client.query(sql)
            except Exception as exc:
                raise classify(exc, "reading last values of counters") from exc
            rows = res.result_rows
            if not rows:
                return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0)
            s, v, t = zip(*rows, strict=True)
            want = set(sids.tolist())
            keep = [i for i, x in enumerate(s) if x in want]
            return (
                np.array([s[i] for i in keep], np.uint64),
                np.array([t[i] for i in keep], np.int64),
                np.array([v[i] for i in keep], np.float64),
            )

        return seed

    @staticmethod
    def _insert_settings(dedup_token: str) -> dict[str, Any]:
        return {
            "insert_deduplication_token": dedup_token,
            # The views already emit one row per key; pre-merging them on insert cost ~1.3 s per
            # 1M samples on this machine (background merges do it anyway).
            "optimize_on_insert": 0,
        }

    def insert_samples(self, batch: SampleBatch, dedup_token: str) -> int:
        """Insert one batch; a replay with the same token is dropped (and rollups are fed once).

        Returns the number of rows in the batch. Raises StoreUnavailable (retry later) or
        StoreRejected (bad batch; the message names the column).
        """
        if not dedup_token:
            raise StoreRejected("batch rejected: an insert deduplication token is required")
        cols = self._arrow_columns(batch)
        n = len(cols["ts"])
        if n == 0:
            return 0
        with self._lock:
            if self.client is None:
                raise StoreUnavailable("store is closed")
            cum = self._cumulative_mask(cols["kind"], cols["metric"])
            staged: Staged | None = None
            delta = np.zeros(n)
            if cum.any():
                sel = np.flatnonzero(cum)
                tgt = cols["target"].take(pa.array(sel)).unique().to_pylist()
                met = cols["metric"].take(pa.array(sel)).unique().to_pylist()
                delta, staged = self._tracker.compute(
                    cols["series_id"], cols["ts"], cols["value"], cum, seed=self._seed(tgt, met)
                )
            cols["delta"] = delta
            arrays = [
                pa.array(cols["ts"], type=pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                *(cols[c] for c in ("target", "zone", "region", "model", "metric", "labels", "kind")),
                pa.array(cols["value"], type=pa.float64()),
                pa.array(cols["series_id"], type=pa.uint64()),
                pa.array(delta, type=pa.float64()),
            ]
            table = pa.Table.from_arrays(arrays, schema=_ARROW_SCHEMA)
            try:
                self.client.insert_arrow("samples", table, settings=self._insert_settings(dedup_token))
            except Exception as exc:
                raise classify(exc, f"insert of {n} samples failed") from exc
            self._tracker.commit(staged)
        return n

    def insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Row insert for the low-volume control-plane tables (events, decisions, actions, ...)."""
        if not rows:
            return 0
        names = list(rows[0])
        with self._lock:
            try:
                data = [[_time_cell(c, r[c]) for c in names] for r in rows]
                self.client.insert(table, data, column_names=names)
            except KeyError as exc:
                raise StoreRejected(f"insert into {table} rejected: row without column {exc}") from exc
            except Exception as exc:
                raise classify(exc, f"insert into {table} failed") from exc
        return len(rows)

    # ---- schema ----------------------------------------------------------------------------
    def applied_migrations(self) -> list[int]:
        res = self.query(f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [int(r[0]) for r in res.rows]

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; returns the versions applied now."""
        self.command(migrations_table_ddl(self.layout))
        done = set(self.applied_migrations())
        applied = []
        for mig in render_migrations(self.layout):
            if mig.version in done:
                continue
            for stmt in mig.statements:
                self.command(stmt)
            self.command(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ({mig.version}, '{mig.name}')"
            )
            applied.append(mig.version)
        self._apply_ttl()
        return applied

    def _apply_ttl(self) -> None:
        """Bring an existing store's TTLs to the configured retention (cheap: no rewrite of old parts)."""
        res = self.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()")
        engines = dict(res.rows)
        for table, stmt in ttl_alters(self.layout).items():
            want = "toIntervalDay(" + stmt.rsplit("INTERVAL ", 1)[1].split()[0] + ")"
            if want not in engines.get(self.layout.local(table), want):
                self.command(stmt, settings={"materialize_ttl_after_modify": 0})


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_list(items: Sequence[str]) -> str:
    return "(" + ", ".join(_sql_str(x) for x in items) + ")" if items else "('')"


def embedded_path(dsn: str) -> str | None:
    """The directory of a `chdb:///path` DSN, else None."""
    if not dsn.startswith("chdb:"):
        return None
    path = dsn[len("chdb://") :] if dsn.startswith("chdb://") else dsn[len("chdb:") :]
    # chdb:///abs and chdb:////abs (an f-string over an absolute path) both mean /abs.
    return "/" + path.lstrip("/") if path.startswith("/") else path


def open_store(
    dsn: str,
    *,
    cluster: str | None = None,
    raw_ttl_days: int = 14,
    rollup_ttl_days: int = 400,
    migrate: bool = True,
    connect_timeout_s: float = 10.0,
) -> Store:
    """Connect (embedded or server) and apply pending migrations.

    Raises StoreLocked when the embedded path is held by another process, StoreUnavailable when
    a server cannot be reached, StoreRejected for a DSN that is not understood.
    """
    import clickhouse_connect  # noqa: PLC0415

    path = embedded_path(dsn)
    if path is not None and cluster:
        raise StoreRejected(
            f"store.cluster={cluster!r} needs a server DSN; the embedded engine is a single node"
        )
    t0 = time.monotonic()
    try:
        if path is not None:
            if not path.startswith("/"):
                raise StoreRejected(f"embedded DSN needs an absolute path: chdb:///abs/path (got {dsn!r})")
            client = clickhouse_connect.get_client(interface="chdb", path=path)
            database = "default"
        else:
            url = urlparse(dsn)
            if url.scheme not in ("http", "https"):
                raise StoreRejected(
                    f"unsupported store DSN {dsn!r}: use chdb:///abs/path or http(s)://user:pass@host:8123/db"
                )
            client = clickhouse_connect.get_client(dsn=dsn, connect_timeout=connect_timeout_s)
            database = client.database or "default"
    except StoreError:
        raise
    except Exception as exc:
        err = classify(exc, f"cannot open store {dsn}")
        if isinstance(err, StoreRejected) and path is None:
            err = StoreUnavailable(str(err))
        raise err from exc
    layout = Layout(
        database=database, cluster=cluster, raw_ttl_days=raw_ttl_days, rollup_ttl_days=rollup_ttl_days
    )
    store = Store(client, dsn, layout)
    store.open_s = time.monotonic() - t0
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
