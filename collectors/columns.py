"""Turn parsed scrapes into SampleBatch columns without touching a row.

Per-series columns of a target's SeriesTable are gathered by series index (numpy / Arrow take)
and concatenated. String columns are Arrow DictionaryArrays over the process-wide interned
strings (collectors.strings), labels an Arrow Map array: the store hands them to ClickHouse's
LowCardinality and Map columns as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from collectors.exposition import LABELS_TYPE, SeriesTable
from collectors.strings import STRINGS
from controlplane.store.samples import SampleBatch


@dataclass
class Chunk:
    """Samples of one target at one scrape time, as indices into the target's series table."""

    ts_s: float
    target: str
    zone: str
    region: str
    table: SeriesTable
    idx: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)


def _dict_column(codes: list[np.ndarray], dictionary: pa.Array) -> pa.DictionaryArray:
    c = np.concatenate(codes) if codes else np.empty(0, np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(c, pa.int32()), dictionary)


def chunks_to_batch(chunks: list[Chunk]) -> SampleBatch:
    ts, value, sid, labels = [], [], [], []
    codes: dict[str, list[np.ndarray]] = {
        c: [] for c in ("target", "zone", "region", "model", "metric", "kind")
    }
    for ch in chunks:
        n = len(ch.idx)
        if n == 0:
            continue
        cols = ch.table.arrays()
        ts.append(np.full(n, ch.ts_s, dtype=np.float64))
        for name, s in (("target", ch.target), ("zone", ch.zone), ("region", ch.region)):
            codes[name].append(np.full(n, STRINGS.code(s), dtype=np.int32))
        for name in ("model", "metric", "kind"):
            codes[name].append(cols[f"{name}_code"][ch.idx])
        sid.append(cols["series_id"][ch.idx])
        value.append(ch.values)
        labels.append(ch.table.labels_arrow().take(pa.array(ch.idx)))
    dictionary = STRINGS.dictionary()  # taken after interning every string above
    return SampleBatch(
        ts=np.concatenate(ts) if ts else np.empty(0, np.float64),
        target=_dict_column(codes["target"], dictionary),
        zone=_dict_column(codes["zone"], dictionary),
        region=_dict_column(codes["region"], dictionary),
        model=_dict_column(codes["model"], dictionary),
        metric=_dict_column(codes["metric"], dictionary),
        labels=pa.concat_arrays(labels) if labels else pa.array([], LABELS_TYPE),
        kind=_dict_column(codes["kind"], dictionary),
        value=np.concatenate(value) if value else np.empty(0, np.float64),
        series_id=np.concatenate(sid) if sid else np.empty(0, np.uint64),
    )


def column_as_list(col) -> list:
    """A batch column as Python values (labels as dicts): for tests and small tools, not the hot path."""
    if isinstance(col, pa.ChunkedArray | pa.Array):
        out = col.to_pylist()
        if isinstance(col.type, pa.MapType):
            return [dict(kv) for kv in out]
        return out
    return list(col.tolist() if isinstance(col, np.ndarray) else col)
