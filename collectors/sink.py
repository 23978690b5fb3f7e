"""Batched, columnar writes to the store, with a bounded on-disk spool for when it is away.

A batch gets its deduplication token when it is cut and keeps it forever: the first insert, a
spooled copy and every replay after a restart all carry the same token, so the store drops a
batch it already committed (insert_deduplication_token) and no sample lands twice.
Order is kept: while the spool holds anything, new batches queue behind it.
A full spool drops the newest batch with a logged error and a metric; it never raises.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
from opentelemetry.trace import Tracer

from collectors.columns import Chunk, chunks_to_batch
from collectors.telemetry import CollectorMetrics, make_tracer
from controlplane.store.errors import StoreRejected, StoreUnavailable
from controlplane.store.samples import COLUMNS, SampleBatch

log = logging.getLogger(__name__)

_SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),
        ("target", pa.string()),
        ("zone", pa.string()),
        ("region", pa.string()),
        ("model", pa.string()),
        ("metric", pa.string()),
        ("labels", pa.map_(pa.string(), pa.string())),
        ("kind", pa.string()),
        ("value", pa.float64()),
        ("series_id", pa.uint64()),
    ]
)
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")
SUFFIX = ".arrow"


class SampleStore(Protocol):
    def insert_samples(self, batch: SampleBatch, dedup_token: str) -> int: ...


@dataclass
class FlushResult:
    rows: int = 0
    written_rows: int = 0
    spooled_rows: int = 0
    dropped_rows: int = 0
    replayed_batches: int = 0


def write_spool_file(path: Path, batch: SampleBatch) -> int:
    """Write one batch as an Arrow IPC file (atomically: temp + rename); returns its size."""
    cols = []
    for name in COLUMNS:
        col = getattr(batch, name)
        typ = _SCHEMA.field(name).type
        if isinstance(col, pa.Array | pa.ChunkedArray):
            cols.append(col.cast(typ))
        elif name == "labels":
            cols.append(pa.array([list(d.items()) for d in col], typ))
        else:
            cols.append(pa.array(np.asarray(col) if name in ("ts", "value", "series_id") else list(col), typ))
    table = pa.Table.from_arrays(cols, schema=_SCHEMA)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as fh, pa.ipc.new_file(fh, _SCHEMA, options=_IPC) as w:
        w.write_table(table)
    os.replace(tmp, path)
    return path.stat().st_size


def read_spool_file(path: Path) -> SampleBatch:
    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_file(src).read_all()
    out = {}
    for name in COLUMNS:
        col = table.column(name).combine_chunks()
        if name in ("ts", "value", "series_id"):
            out[name] = col.to_numpy()
        elif name == "labels":
            out[name] = col
        else:
            out[name] = col.dictionary_encode()
    return SampleBatch(**out)


class Spool:
    """FIFO of batches on disk: `<seq>-<dedup token>.arrow`, one batch per file."""

    def __init__(self, directory: Path, max_bytes: int):
        self.dir = Path(directory)
        self.dead_dir = self.dir / "rejected"
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.dir.glob("*.tmp"):  # a crash mid-write leaves only a temp file
            tmp.unlink(missing_ok=True)
        files = self.files()
        self.bytes = sum(f.stat().st_size for f in files)
        self._next_seq = (int(files[-1].name.split("-", 1)[0]) + 1) if files else 0

    def files(self) -> list[Path]:
        return sorted(self.dir.glob(f"*{SUFFIX}"))

    def __len__(self) -> int:
        return len(self.files())

    @staticmethod
    def token_of(path: Path) -> str:
        return path.name[: -len(SUFFIX)].split("-", 1)[1]

    def push(self, batch: SampleBatch, token: str) -> bool:
        """Append a batch; False (and nothing kept) when it would exceed max_bytes."""
        path = self.dir / f"{self._next_seq:012d}-{token}{SUFFIX}"
        size = write_spool_file(path, batch)
        if self.bytes + size > self.max_bytes:
            path.unlink(missing_ok=True)
            return False
        self._next_seq += 1
        self.bytes += size
        return True

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self.bytes -= size

    def dead_letter(self, path: Path) -> None:
        self.dead_dir.mkdir(exist_ok=True)
        size = path.stat().st_size
        os.replace(path, self.dead_dir / path.name)
        self.bytes -= size


class Sink:
    """Collects chunks, cuts batches by size or age, inserts them, spools what the store cannot take."""

    def __init__(
        self,
        store: SampleStore,
        spool_dir: Path,
        *,
        batch_max_rows: int = 200_000,
        batch_max_age_s: float = 5.0,
        spool_max_bytes: int = 1 << 30,
        metrics: CollectorMetrics | None = None,
        tracer: Tracer | None = None,
        token_prefix: str | None = None,
        clock=time.monotonic,
    ):
        self.store = store
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.batch_max_rows = batch_max_rows
        self.batch_max_age_s = batch_max_age_s
        self.metrics = metrics or CollectorMetrics()
        self.tracer = tracer or make_tracer()
        self.token_prefix = token_prefix or uuid.uuid4().hex[:12]
        self.clock = clock
        self._pending: list[Chunk] = []
        self._pending_rows = 0
        self._first_at: float | None = None
        self._batch_seq = 0
        self._update_spool_gauges()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def queue(self, chunk: Chunk) -> None:
        """Hold a chunk for the next batch (never touches the store)."""
        if len(chunk) == 0:
            return
        if self._first_at is None:
            self._first_at = self.clock()
        self._pending.append(chunk)
        self._pending_rows += len(chunk)

    def full(self) -> bool:
        return self._pending_rows >= self.batch_max_rows

    def add(self, chunk: Chunk) -> FlushResult | None:
        """Queue a chunk and flush when the batch is full."""
        self.queue(chunk)
        return self.flush() if self.full() else None

    def due(self) -> bool:
        return self._first_at is not None and self.clock() - self._first_at >= self.batch_max_age_s

    def flush_if_due(self) -> FlushResult | None:
        return self.flush() if self.due() else None

    def new_token(self) -> str:
        self._batch_seq += 1
        return f"{self.token_prefix}-{self._batch_seq:08d}-{uuid.uuid4().hex[:8]}"

    def flush(self) -> FlushResult:
        """Cut the pending chunks into one batch and deliver it (after anything spooled)."""
        result = FlushResult()
        self.replay(result)
        if not self._pending:
            return result
        batch = chunks_to_batch(self._pending)
        token = self.new_token()
        self._pending, self._pending_rows, self._first_at = [], 0, None
        result.rows = len(batch)
        if len(self.spool) == 0:
            outcome = self._insert(batch, token)
            if outcome == "ok":
                result.written_rows += len(batch)
                return result
        self._to_spool(batch, token, result)
        return result

    def replay(self, result: FlushResult | None = None) -> bool:
        """Insert spooled batches in order; True when the spool is empty afterwards."""
        result = result or FlushResult()
        for path in self.spool.files():
            try:
                batch = read_spool_file(path)
            except (OSError, pa.ArrowInvalid) as exc:
                log.error(
                    "spool file %s is unreadable (%s); moved to %s", path.name, exc, self.spool.dead_dir
                )
                self.spool.dead_letter(path)
                self.metrics.samples_dropped.labels("spool_unreadable").inc(0)
                continue
            outcome = self._insert(batch, Spool.token_of(path), replay=True)
            if outcome == "unavailable":
                break
            if outcome == "rejected":  # refused twice: keep it aside instead of blocking the queue
                log.error(
                    "store rejected spooled batch %s again; moved to %s", path.name, self.spool.dead_dir
                )
                self.spool.dead_letter(path)
                self.metrics.samples_dropped.labels("rejected").inc(len(batch))
                result.dropped_rows += len(batch)
            else:
                self.spool.remove(path)
                result.written_rows += len(batch)
                result.replayed_batches += 1
        self._update_spool_gauges()
        return len(self.spool) == 0

    def close(self) -> FlushResult:
        """Final flush (what the store cannot take stays spooled for the next start)."""
        return self.flush()

    # --- internals ------------------------------------------------------------------------
    def _insert(self, batch: SampleBatch, token: str, replay: bool = False) -> str:
        with self.tracer.start_as_current_span("collector.insert") as span:
            span.set_attribute("rows", len(batch))
            span.set_attribute("dedup_token", token)
            t0 = time.perf_counter()
            try:
                self.store.insert_samples(batch, dedup_token=token)
            except StoreUnavailable as exc:
                span.set_attribute("outcome", "unavailable")
                if replay:
                    log.info("store still unavailable (%s); %d spooled batches wait", exc, len(self.spool))
                else:
                    log.warning("store unavailable (%s); batch %s goes to the spool", exc, token)
                return "unavailable"
            except StoreRejected as exc:
                span.set_attribute("outcome", "rejected")
                log.error("store rejected batch %s: %s", token, exc)
                return "rejected"
            self.metrics.insert_duration.observe(time.perf_counter() - t0)
            self.metrics.samples_written.inc(len(batch))
            span.set_attribute("outcome", "ok")
            return "ok"

    def _to_spool(self, batch: SampleBatch, token: str, result: FlushResult) -> None:
        try:
            kept = self.spool.push(batch, token)
            reason = "spool_full"
        except OSError as exc:  # e.g. ENOSPC: the disk is full before the spool bound is reached
            log.error("cannot write spool file in %s: %s", self.spool.dir, exc)
            kept, reason = False, "spool_write_error"
        if kept:
            self.metrics.samples_spooled.inc(len(batch))
            result.spooled_rows += len(batch)
        else:
            log.error(
                "%s: spool %s holds %d of %d bytes; newest batch %s (%d samples) dropped",
                reason,
                self.spool.dir,
                self.spool.bytes,
                self.spool.max_bytes,
                token,
                len(batch),
            )
            self.metrics.spool_full.inc()
            self.metrics.samples_dropped.labels(reason).inc(len(batch))
            result.dropped_rows += len(batch)
        self._update_spool_gauges()

    def _update_spool_gauges(self) -> None:
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_batches.set(len(self.spool))
